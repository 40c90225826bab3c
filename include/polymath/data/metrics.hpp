// polymath/data/metrics.hpp — evaluation metrics on plain tensors: accuracy,
// top-k accuracy, RMSE / MAE, confusion matrix.
//
//   double acc  = polymath::data::accuracy(logits, labels);          // logits [N, C] (or [..., C]), labels [N]
//   double acc2 = polymath::data::accuracy(predictions, labels);     // integer predictions, same shape as labels
//   double top5 = polymath::data::top_k_accuracy(logits, labels, 5);
//   double e    = polymath::data::rmse(pred, target, /*skip_nan=*/true);
//   Tensor<int64_t> cm = polymath::data::confusion_matrix(logits, labels, 10);  // cm[true][pred]
//
// Conventions:
//   - Logits (float / double) have the classes on the last axis; labels
//     (any integer type) have the logits' shape without it ([N, C] with [N],
//     [B, L, C] with [B, L]). A floating first argument means logits, an
//     integer one means predictions of the labels' shape.
//   - The prediction from logits is the first index of the row maximum.
//     A row holding a NaN counts as wrong in accuracy / top-k (a model that
//     emits NaN has not predicted anything); confusion_matrix throws on it.
//   - top-k: a row is right when the label's rank is below k, the rank being
//     the number of classes with a greater logit plus those with an equal
//     logit and a smaller index (ties go to the lower index, as in argmax, so
//     top_k_accuracy(x, y, 1) == accuracy(x, y)).
//   - Labels equal to ignore_index (default -100, as PyTorch's cross entropy;
//     e.g. padding in token accuracy) are left out; other labels must lie in
//     [0, C) when C is known. Accuracy over nothing (N = 0 or every label
//     ignored) throws.
//   - rmse / mae compare tensors of equal shape in double precision; with
//     skip_nan, pairs where either side is NaN are left out (and nothing left
//     throws), otherwise a NaN gives NaN.
// Every shape mismatch throws polymath::Error naming both shapes.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../core/error.hpp"
#include "../tensor/tensor.hpp"

namespace polymath::data {

namespace detail {

inline Shape drop_last(const Shape& s) {
    Shape out;
    for (int i = 0; i + 1 < s.size(); ++i) out.push_back(s[i]);
    return out;
}

template <class T, class I>
void check_logits_labels(const Tensor<T>& logits, const Tensor<I>& labels, const char* op) {
    POLYMATH_CHECK(logits.dim() >= 1, op, "logits must have a class axis, got shape ", logits.shape());
    POLYMATH_CHECK(labels.shape() == drop_last(logits.shape()), op, "labels of shape ", labels.shape(),
                   " do not match logits of shape ", logits.shape(), " (expected ", drop_last(logits.shape()), ")");
    POLYMATH_CHECK(logits.size(-1) >= 1, op, "logits of shape ", logits.shape(), " have no classes");
}

template <class I>
void check_label(std::int64_t label, std::int64_t C, std::int64_t row, const char* op) {
    POLYMATH_CHECK(label >= 0 && label < C, op, "label ", label, " at flat index ", row, " is outside [0, ", C, ")");
}

}  // namespace detail

// Fraction of correct predictions (0..1); see the header comment.
template <class T, class I>
double accuracy(const Tensor<T>& logits_or_predictions, const Tensor<I>& labels, std::int64_t ignore_index = -100) {
    static_assert(std::is_integral_v<I>, "accuracy: labels must be an integer tensor");
    const char* op = "accuracy";
    const Tensor<I> y = labels.contiguous();
    const I* yl = y.data();
    std::int64_t right = 0, counted = 0;
    if constexpr (std::is_floating_point_v<T>) {
        detail::check_logits_labels(logits_or_predictions, labels, op);
        const Tensor<T> x = logits_or_predictions.contiguous();
        const std::int64_t C = x.size(-1), N = y.numel();
        const T* p = x.data();
        for (std::int64_t r = 0; r < N; ++r) {
            const auto label = static_cast<std::int64_t>(yl[r]);
            if (label == ignore_index) continue;
            detail::check_label<I>(label, C, r, op);
            ++counted;
            const T* row = p + r * C;
            std::int64_t best = 0;
            bool nan = false;
            for (std::int64_t c = 0; c < C; ++c) {
                if (std::isnan(row[c])) nan = true;
                if (row[c] > row[best]) best = c;
            }
            if (!nan && best == label) ++right;
        }
    } else {
        static_assert(std::is_integral_v<T>, "accuracy: logits must be floating point, predictions integers");
        POLYMATH_CHECK(logits_or_predictions.shape() == labels.shape(), op, "predictions of shape ",
                       logits_or_predictions.shape(), " do not match labels of shape ", labels.shape());
        const Tensor<T> x = logits_or_predictions.contiguous();
        const std::int64_t N = y.numel();
        for (std::int64_t r = 0; r < N; ++r) {
            const auto label = static_cast<std::int64_t>(yl[r]);
            if (label == ignore_index) continue;
            ++counted;
            if (static_cast<std::int64_t>(x.data()[r]) == label) ++right;
        }
    }
    POLYMATH_CHECK(counted > 0, op, "no labels to score (labels of shape ", labels.shape(),
                   ", every label equal to ignore_index ", ignore_index, " or none at all)");
    return double(right) / double(counted);
}

// Fraction of rows whose label is among the k highest logits (0..1).
template <class T, class I>
double top_k_accuracy(const Tensor<T>& logits, const Tensor<I>& labels, std::int64_t k,
                      std::int64_t ignore_index = -100) {
    static_assert(std::is_floating_point_v<T>, "top_k_accuracy: logits must be floating point");
    static_assert(std::is_integral_v<I>, "top_k_accuracy: labels must be an integer tensor");
    const char* op = "top_k_accuracy";
    detail::check_logits_labels(logits, labels, op);
    const std::int64_t C = logits.size(-1);
    POLYMATH_CHECK(k >= 1 && k <= C, op, "k = ", k, " must be in [1, ", C, "] for logits of shape ", logits.shape());
    const Tensor<T> x = logits.contiguous();
    const Tensor<I> y = labels.contiguous();
    std::int64_t right = 0, counted = 0;
    for (std::int64_t r = 0; r < y.numel(); ++r) {
        const auto label = static_cast<std::int64_t>(y.data()[r]);
        if (label == ignore_index) continue;
        detail::check_label<I>(label, C, r, op);
        ++counted;
        const T* row = x.data() + r * C;
        const T v = row[label];
        std::int64_t greater = 0;
        bool nan = false;
        for (std::int64_t c = 0; c < C; ++c) {
            if (std::isnan(row[c])) nan = true;
            if (row[c] > v || (row[c] == v && c < label)) ++greater;
        }
        if (!nan && greater < k) ++right;
    }
    POLYMATH_CHECK(counted > 0, op, "no labels to score (labels of shape ", labels.shape(),
                   ", every label equal to ignore_index ", ignore_index, " or none at all)");
    return double(right) / double(counted);
}

namespace detail {
// Mean over pairs of f(pred - target), in double; NaN pairs skipped on request.
template <class T, class F>
double mean_error(const Tensor<T>& pred, const Tensor<T>& target, bool skip_nan, const char* op, F f) {
    POLYMATH_CHECK(pred.shape() == target.shape(), op, "predictions of shape ", pred.shape(),
                   " do not match targets of shape ", target.shape());
    const Tensor<T> a = pred.contiguous(), b = target.contiguous();
    double sum = 0;
    std::int64_t n = 0;
    for (std::int64_t i = 0; i < a.numel(); ++i) {
        const double x = static_cast<double>(a.data()[i]), y = static_cast<double>(b.data()[i]);
        if (skip_nan && (std::isnan(x) || std::isnan(y))) continue;
        sum += f(x - y);
        ++n;
    }
    POLYMATH_CHECK(n > 0, op, "no values to compare (shape ", pred.shape(),
                   skip_nan ? ", every pair has a NaN)" : ")");
    return sum / double(n);
}
}  // namespace detail

// Root mean squared error.
template <class T>
double rmse(const Tensor<T>& pred, const Tensor<T>& target, bool skip_nan = false) {
    return std::sqrt(detail::mean_error(pred, target, skip_nan, "rmse", [](double d) { return d * d; }));
}

// Mean absolute error.
template <class T>
double mae(const Tensor<T>& pred, const Tensor<T>& target, bool skip_nan = false) {
    return detail::mean_error(pred, target, skip_nan, "mae", [](double d) { return std::abs(d); });
}

// [C, C] counts: entry [t, p] = how many items of true class t were predicted
// as p (rows: truth, as scikit-learn). From logits (argmax; a NaN row throws)
// or integer predictions; labels equal to ignore_index are left out.
template <class T, class I>
Tensor<std::int64_t> confusion_matrix(const Tensor<T>& logits_or_predictions, const Tensor<I>& labels,
                                      std::int64_t num_classes, std::int64_t ignore_index = -100) {
    static_assert(std::is_integral_v<I>, "confusion_matrix: labels must be an integer tensor");
    const char* op = "confusion_matrix";
    POLYMATH_CHECK(num_classes >= 1, op, "num_classes must be >= 1, got ", num_classes);
    const Tensor<I> y = labels.contiguous();
    const std::int64_t C = num_classes, N = y.numel();
    Tensor<std::int64_t> cm = Tensor<std::int64_t>::zeros({C, C});
    std::int64_t* m = cm.data();
    if constexpr (std::is_floating_point_v<T>) {
        detail::check_logits_labels(logits_or_predictions, labels, op);
        POLYMATH_CHECK(logits_or_predictions.size(-1) == C, op, "logits of shape ", logits_or_predictions.shape(),
                       " have ", logits_or_predictions.size(-1), " classes, num_classes is ", C);
        const Tensor<T> x = logits_or_predictions.contiguous();
        for (std::int64_t r = 0; r < N; ++r) {
            const auto label = static_cast<std::int64_t>(y.data()[r]);
            if (label == ignore_index) continue;
            detail::check_label<I>(label, C, r, op);
            const T* row = x.data() + r * C;
            std::int64_t best = 0;
            for (std::int64_t c = 0; c < C; ++c) {
                POLYMATH_CHECK(!std::isnan(row[c]), op, "logits row ", r, " holds a NaN (class ", c, ")");
                if (row[c] > row[best]) best = c;
            }
            ++m[label * C + best];
        }
    } else {
        static_assert(std::is_integral_v<T>, "confusion_matrix: logits must be floating point, predictions integers");
        POLYMATH_CHECK(logits_or_predictions.shape() == labels.shape(), op, "predictions of shape ",
                       logits_or_predictions.shape(), " do not match labels of shape ", labels.shape());
        const Tensor<T> x = logits_or_predictions.contiguous();
        for (std::int64_t r = 0; r < N; ++r) {
            const auto label = static_cast<std::int64_t>(y.data()[r]);
            if (label == ignore_index) continue;
            detail::check_label<I>(label, C, r, op);
            const auto pred = static_cast<std::int64_t>(x.data()[r]);
            POLYMATH_CHECK(pred >= 0 && pred < C, op, "prediction ", pred, " at flat index ", r,
                           " is outside [0, ", C, ")");
            ++m[label * C + pred];
        }
    }
    return cm;
}

}  // namespace polymath::data
