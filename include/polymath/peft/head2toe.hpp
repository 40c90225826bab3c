// polymath/peft/head2toe.hpp — Head2Toe (Evci et al. 2022, arXiv 2201.03529):
// a linear probe on the pooled features of EVERY layer of a frozen backbone,
// with group-lasso feature selection.
//
//   auto taps = peft::tap_features(backbone, "blocks.**");                  // feature_tap.hpp
//   auto train = peft::head2toe::extract(taps, n_batches, [&](std::int64_t b) { backbone(x[b]); },
//                                        {.target_features = 512});      // backbone runs ONCE
//   auto test  = peft::head2toe::extract(taps, ...);
//   auto rows  = peft::head2toe::sweep(train, y_train, test, y_test, classes,
//                                      {0.01, 0.1, 0.5, 1.0}, {.lambda = 1e-3});
//   // rows[i]: fraction, groups/features kept, train/test accuracy, probe parameters
//
// 1. extract: runs the caller's forward for each batch under NoGradGuard, pools
//    every tap's output to at most target_features values per example
//    (pool_features below) and concatenates them: X [N, F]. One group per
//    tapped layer, or per chunk of group_size consecutive features of a layer.
//    Cache X: every probe below trains on it without touching the backbone.
// 2. train_probe with lambda > 0: softmax regression logits = X' W + b (X'
//    standardised with the training set's mean and std), full-batch gradient
//    steps on the mean cross entropy, each followed by the proximal step of the
//    group-lasso penalty lambda · Σ_g ||W_g||_2 (W_g = the rows of W of group
//    g's features, all classes): W_g ← W_g · max(0, 1 − lr·lambda / ||W_g||).
//    A large lambda zeroes every group exactly.
// 3. select_groups keeps k = round(fraction · G) groups (at least 1) with the
//    largest ||W_g||; ties go to the lower group index, so k is exact and the
//    choice deterministic.
// 4. The probe is retrained (lambda = 0) on the kept features only and scored.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/grad_mode.hpp"
#include "polymath/autograd/loss.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/ops/index.hpp"
#include "polymath/ops/join.hpp"
#include "polymath/ops/reduce.hpp"
#include "polymath/peft/feature_tap.hpp"

namespace polymath::peft::head2toe {

namespace detail {
// Adaptive average pooling of src[0..n) (stride `stride`) to t bins, as
// torch.adaptive_avg_pool1d: bin i averages [floor(i·n/t), ceil((i+1)·n/t)).
template <class T>
void adaptive_avg(const T* src, std::int64_t n, std::int64_t stride, std::int64_t t, T* dst, std::int64_t dst_stride) {
    for (std::int64_t i = 0; i < t; ++i) {
        const std::int64_t b = (i * n) / t, e = ((i + 1) * n + t - 1) / t;
        double acc = 0;
        for (std::int64_t j = b; j < e; ++j) acc += double(src[j * stride]);
        dst[i * dst_stride] = T(acc / double(e - b));
    }
}
}  // namespace detail

// Pools one layer's output y [B, ...] to [B, F'] with F' <= target:
//   [B, C]:           C <= target: unchanged; else adaptive-average C to target bins.
//   [B, L..., C]:     channels-last (the middle axes are flattened into L positions).
//                     C <= target: adaptive-average the positions to P = min(L, target / C)
//                     bins, keeping channels: F' = P·C (position-major);
//                     C > target: average over all positions, then adaptive-average
//                     the channels to target bins.
template <class T>
Tensor<T> pool_features(const Tensor<T>& y, std::int64_t target) {
    POLYMATH_CHECK(y.dim() >= 2, "head2toe::pool_features", "layer output ", y.shape(), " has no batch axis + features");
    POLYMATH_CHECK(target >= 1, "head2toe::pool_features", "target_features ", target, " must be positive");
    const Tensor<T> c = y.contiguous();
    const std::int64_t B = c.size(0), C = c.size(-1), L = B > 0 ? c.numel() / (B * C) : 0;
    const T* p = c.data();
    if (L == 1 || c.dim() == 2) {
        const std::int64_t F = std::min(C, target);
        Tensor<T> out = Tensor<T>::empty({B, F});
        for (std::int64_t b = 0; b < B; ++b) detail::adaptive_avg(p + b * C, C, 1, F, out.data() + b * F, 1);
        return out;
    }
    if (C <= target) {
        const std::int64_t P = std::min(L, std::max<std::int64_t>(1, target / C));
        Tensor<T> out = Tensor<T>::empty({B, P * C});
        for (std::int64_t b = 0; b < B; ++b)
            for (std::int64_t ch = 0; ch < C; ++ch)
                detail::adaptive_avg(p + b * L * C + ch, L, C, P, out.data() + b * P * C + ch, C);
        return out;
    }
    Tensor<T> mean = Tensor<T>::empty({C});
    Tensor<T> out = Tensor<T>::empty({B, target});
    for (std::int64_t b = 0; b < B; ++b) {
        for (std::int64_t ch = 0; ch < C; ++ch) detail::adaptive_avg(p + b * L * C + ch, L, C, 1, mean.data() + ch, 1);
        detail::adaptive_avg(mean.data(), C, 1, target, out.data() + b * target, 1);
    }
    return out;
}

struct Group {
    std::string name;  // the tapped layer ("blocks.0.fc"), with "#k" for its k-th chunk
    std::int64_t offset = 0, size = 0;  // its columns of X
};

template <class T>
struct Features {
    Tensor<T> x;  // [N, F]
    std::vector<Group> groups;
};

struct ExtractOptions {
    std::int64_t target_features = 512;  // per layer
    std::int64_t group_size = 0;          // 0: one group per layer
};

// Runs forward(b) for b = 0 .. num_batches-1 under NoGradGuard and collects
// the pooled outputs of every tap (see the file comment).
template <class T, class D, class F>
Features<T> extract(FeatureTaps<T, D>& taps, std::int64_t num_batches, F&& forward, const ExtractOptions& opt = {}) {
    POLYMATH_CHECK(taps.size() > 0, "head2toe::extract", "no taps");
    POLYMATH_CHECK(num_batches >= 1, "head2toe::extract", "num_batches ", num_batches, " must be positive");
    NoGradGuard ng;
    std::vector<Tensor<T>> rows;
    std::vector<std::int64_t> widths;
    for (std::int64_t b = 0; b < num_batches; ++b) {
        taps.clear();
        forward(b);
        std::vector<Tensor<T>> parts;
        for (std::size_t i = 0; i < taps.size(); ++i) {
            POLYMATH_CHECK(taps.output(i).defined(), "head2toe::extract", "tap '", taps.names()[i],
                           "' saw no output in batch ", b, " (is the layer on the forward path?)");
            parts.push_back(pool_features(taps.output(i).value(), opt.target_features));
            if (b == 0) widths.push_back(parts.back().size(1));
            POLYMATH_CHECK(parts.back().size(1) == widths[i], "head2toe::extract", "tap '", taps.names()[i], "' gave ",
                           parts.back().size(1), " pooled features in batch ", b, " but ", widths[i], " in batch 0");
        }
        rows.push_back(ops::concat(parts, 1));
    }
    taps.clear();
    Features<T> out;
    out.x = rows.size() == 1 ? rows[0] : ops::concat(rows, 0);
    std::int64_t off = 0;
    for (std::size_t i = 0; i < widths.size(); ++i) {
        const std::int64_t gs = opt.group_size > 0 ? opt.group_size : widths[i];
        for (std::int64_t s = 0, k = 0; s < widths[i]; s += gs, ++k) {
            const std::int64_t n = std::min(gs, widths[i] - s);
            out.groups.push_back({opt.group_size > 0 ? taps.names()[i] + "#" + std::to_string(k) : taps.names()[i],
                                  off + s, n});
        }
        off += widths[i];
    }
    return out;
}

struct ProbeOptions {
    double lambda = 0;   // group-lasso strength (0: plain softmax regression)
    double lr = 0.5;     // step size of the full-batch gradient / proximal steps
    int steps = 300;
    bool standardize = true;
};

// A softmax-regression probe on a subset of the feature columns.
template <class T>
struct Probe {
    std::vector<std::int64_t> columns;  // which columns of the full X it reads
    Tensor<T> mean, inv_std;            // [F'] standardisation from the training set
    Tensor<T> weight;                   // [F', K]
    Tensor<T> bias;                     // [K]

    Tensor<T> prepare(const Tensor<T>& x_full) const {
        Tensor<T> idx_x = columns.size() == std::size_t(x_full.size(1))
                              ? x_full.contiguous()
                              : ops::index_select(x_full, 1, Tensor<std::int64_t>::from_vector(columns));
        return ops::mul(ops::sub(idx_x, mean), inv_std);
    }
    Tensor<T> logits(const Tensor<T>& x_full) const { return ops::add(ops::matmul(prepare(x_full), weight), bias); }
    double accuracy(const Tensor<T>& x_full, const Tensor<std::int64_t>& y) const {
        const Tensor<std::int64_t> pred = ops::argmax(logits(x_full), 1).contiguous();
        const Tensor<std::int64_t> yc = y.contiguous();
        std::int64_t ok = 0;
        for (std::int64_t i = 0; i < yc.numel(); ++i) ok += pred.data()[i] == yc.data()[i];
        return yc.numel() > 0 ? double(ok) / double(yc.numel()) : 0.0;
    }
    std::int64_t num_parameters() const { return weight.numel() + bias.numel(); }
};

// Throws unless every group is a non-empty row range inside [0, rows).
inline void check_groups(const std::vector<Group>& groups, std::int64_t rows, const char* op) {
    for (const auto& g : groups)
        POLYMATH_CHECK(g.size > 0 && g.offset >= 0 && g.offset + g.size <= rows, op, "group '", g.name, "' (offset ",
                       g.offset, ", size ", g.size, ") does not lie inside the ", rows, " feature rows");
}

// The L2 norm of each group's rows of w [F, K] (groups index w's rows).
template <class T>
std::vector<double> group_norms(const Tensor<T>& w, const std::vector<Group>& groups) {
    POLYMATH_CHECK(w.dim() == 2, "head2toe::group_norms", "weight ", w.shape(), " must be [F, K]");
    check_groups(groups, w.size(0), "head2toe::group_norms");
    const Tensor<T> c = w.contiguous();
    const std::int64_t K = c.size(1);
    std::vector<double> out;
    for (const auto& g : groups) {
        double s = 0;
        for (std::int64_t i = g.offset * K; i < (g.offset + g.size) * K; ++i) s += double(c.data()[i]) * double(c.data()[i]);
        out.push_back(std::sqrt(s));
    }
    return out;
}

// The proximal operator of step·lambda·Σ_g ||W_g||: group soft-threshold, in place.
template <class T>
void group_soft_threshold_(Tensor<T>& w, const std::vector<Group>& groups, double threshold) {
    const std::vector<double> norms = group_norms(w, groups);
    T* p = w.data();
    const std::int64_t K = w.size(1);
    for (std::size_t g = 0; g < groups.size(); ++g) {
        const double f = norms[g] > threshold ? 1.0 - threshold / norms[g] : 0.0;
        for (std::int64_t i = groups[g].offset * K; i < (groups[g].offset + groups[g].size) * K; ++i)
            p[i] = f == 0.0 ? T(0) : T(double(p[i]) * f);
    }
}

// Trains a probe on the given columns of x (all when empty); groups index
// those columns (as returned by extract() when columns is empty).
template <class T>
Probe<T> train_probe(const Tensor<T>& x, const Tensor<std::int64_t>& y, std::int64_t classes,
                     const std::vector<Group>& groups, const ProbeOptions& opt, std::vector<std::int64_t> columns = {}) {
    POLYMATH_CHECK(x.dim() == 2 && y.dim() == 1 && y.size(0) == x.size(0), "head2toe::train_probe", "features ",
                   x.shape(), " and labels ", y.shape(), " must be [N, F] and [N]");
    POLYMATH_CHECK(classes >= 2, "head2toe::train_probe", "classes=", classes, " must be at least 2");
    POLYMATH_CHECK(opt.lambda >= 0 && opt.lr > 0 && opt.steps >= 0, "head2toe::train_probe", "bad options lambda=",
                   opt.lambda, " lr=", opt.lr, " steps=", opt.steps);
    if (columns.empty()) {
        columns.resize(std::size_t(x.size(1)));
        std::iota(columns.begin(), columns.end(), 0);
    }
    Probe<T> probe;
    probe.columns = columns;
    const std::int64_t F = std::int64_t(columns.size()), N = x.size(0);
    check_groups(groups, F, "head2toe::train_probe");
    const Tensor<T> xs = columns.size() == std::size_t(x.size(1))
                             ? x.contiguous()
                             : ops::index_select(x, 1, Tensor<std::int64_t>::from_vector(columns)).contiguous();
    probe.mean = Tensor<T>::zeros({F});
    probe.inv_std = Tensor<T>::ones({F});
    if (opt.standardize && N > 0) {
        for (std::int64_t f = 0; f < F; ++f) {
            double s = 0, s2 = 0;
            for (std::int64_t i = 0; i < N; ++i) s += double(xs.data()[i * F + f]);
            const double m = s / double(N);
            for (std::int64_t i = 0; i < N; ++i) {
                const double d = double(xs.data()[i * F + f]) - m;
                s2 += d * d;
            }
            probe.mean.data()[f] = T(m);
            probe.inv_std.data()[f] = T(1.0 / std::max(std::sqrt(s2 / double(N)), 1e-6));
        }
    }
    const Var<T> input(ops::mul(ops::sub(xs, probe.mean), probe.inv_std));
    Var<T> w(Tensor<T>::zeros({F, classes}), true), b(Tensor<T>::zeros({classes}), true);
    for (int step = 0; step < opt.steps; ++step) {
        w.zero_grad();
        b.zero_grad();
        cross_entropy(add(matmul(input, w), b), y).backward();
        ops::add_(w.value(), w.grad(), T(-opt.lr));
        ops::add_(b.value(), b.grad(), T(-opt.lr));
        if (opt.lambda > 0) {
            Tensor<T> wv = w.value();
            group_soft_threshold_(wv, groups, opt.lr * opt.lambda);
        }
    }
    probe.weight = w.value();
    probe.bias = b.value();
    return probe;
}

// The indices (ascending) of the k = max(1, round(fraction · G)) groups with
// the largest norms; equal norms: lower index first.
inline std::vector<std::size_t> select_groups(const std::vector<double>& norms, double fraction) {
    POLYMATH_CHECK(fraction > 0 && fraction <= 1, "head2toe::select_groups", "fraction ", fraction, " not in (0, 1]");
    POLYMATH_CHECK(!norms.empty(), "head2toe::select_groups", "no groups");
    const std::size_t G = norms.size();
    const std::size_t k = std::clamp<std::size_t>(std::size_t(std::llround(fraction * double(G))), 1, G);
    std::vector<std::size_t> order(G);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return norms[a] > norms[b]; });
    order.resize(k);
    std::sort(order.begin(), order.end());
    return order;
}

struct SweepRow {
    double fraction = 0;
    std::int64_t groups_kept = 0, features_kept = 0;
    double train_accuracy = 0, test_accuracy = 0;
    std::int64_t probe_parameters = 0;  // trainable parameters of the final probe (= extra storage / sizeof(T))
};

struct SweepOptions {
    ProbeOptions select{.lambda = 1e-3};  // the group-lasso probe
    ProbeOptions final{};                 // the retrained probe (lambda ignored: 0)
};

// The sweep as a Markdown table (accuracy vs fraction of feature groups kept).
inline std::string format_sweep(const std::vector<SweepRow>& rows) {
    std::ostringstream os;
    os << "| fraction | groups | features | probe params | train acc | test acc |\n"
       << "|---:|---:|---:|---:|---:|---:|\n";
    os << std::fixed;
    for (const auto& r : rows)
        os << "| " << std::setprecision(3) << r.fraction << " | " << r.groups_kept << " | " << r.features_kept << " | "
           << r.probe_parameters << " | " << std::setprecision(4) << r.train_accuracy << " | " << r.test_accuracy
           << " |\n";
    return os.str();
}

// Steps 2-4 of the file comment for each fraction.
template <class T>
std::vector<SweepRow> sweep(const Features<T>& train, const Tensor<std::int64_t>& y_train, const Features<T>& test,
                            const Tensor<std::int64_t>& y_test, std::int64_t classes, const std::vector<double>& fractions,
                            const SweepOptions& opt = {}) {
    POLYMATH_CHECK(train.x.size(1) == test.x.size(1), "head2toe::sweep", "train features ", train.x.shape(),
                   " and test features ", test.x.shape(), " differ in width");
    const Probe<T> lasso = train_probe(train.x, y_train, classes, train.groups, opt.select);
    const std::vector<double> norms = group_norms(lasso.weight, train.groups);
    std::vector<SweepRow> rows;
    for (double f : fractions) {
        const auto kept = select_groups(norms, f);
        std::vector<std::int64_t> cols;
        std::vector<Group> sub;
        for (std::size_t g : kept) {
            sub.push_back({train.groups[g].name, std::int64_t(cols.size()), train.groups[g].size});
            for (std::int64_t c = 0; c < train.groups[g].size; ++c) cols.push_back(train.groups[g].offset + c);
        }
        ProbeOptions fo = opt.final;
        fo.lambda = 0;
        const Probe<T> p = train_probe(train.x, y_train, classes, sub, fo, cols);
        rows.push_back({f, std::int64_t(kept.size()), std::int64_t(cols.size()), p.accuracy(train.x, y_train),
                        p.accuracy(test.x, y_test), p.num_parameters()});
    }
    return rows;
}

}  // namespace polymath::peft::head2toe
