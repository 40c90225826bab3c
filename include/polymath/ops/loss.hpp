// polymath/ops/loss.hpp — cross_entropy, nll_loss, mse_loss and their
// backward kernels (no autograd).
//
//   cross_entropy(logits, targets, CrossEntropyOptions{ignore_index, label_smoothing, reduction})
//   nll_loss(log_probs, targets, NllLossOptions{ignore_index, reduction})
//   mse_loss(a, b, reduction)
//
// Semantics are those of torch.nn.functional (without class weights):
//   * logits / log_probs are [N, C] with targets [N], or [N, C, d1, ...] with
//     targets [N, d1, ...] (class axis 1). Targets are int64 class indices.
//   * A target equal to ignore_index contributes 0 and is not counted.
//   * cross_entropy with label smoothing e, per position:
//       loss = (1 - e) * (-log p_t) + (e / C) * sum_c (-log p_c)
//   * Reduction::Mean divides the sum by the number of non-ignored positions;
//     when every target is ignored that is 0/0 = NaN (as PyTorch) and the
//     gradient is all zeros. Reduction::Sum sums; Reduction::None returns the
//     per-position losses (shape of targets; 0 at ignored positions).
//   * A target outside [0, C) that is not ignore_index throws, naming the
//     value, its position in targets and C.
// cross_entropy fuses the log-softmax: the forward keeps only the per-row
// log-sum-exp (lse), and the backward forms d logits = (softmax - smoothed
// one-hot) * g / count directly, one pass per row.
// mse_loss broadcasts a against b (like torch, without the warning).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "polymath/ops/elementwise.hpp"
#include "polymath/ops/loss_options.hpp"
#include "polymath/ops/reduce.hpp"


namespace polymath::ops {

namespace detail {

// logits [N, C, d...] as contiguous rows [P, C] (class axis last) and the
// targets as a contiguous [P] vector, checked.
template <class T>
struct LossClassRows {
    Tensor<T> rows;                 // [P, C]
    Tensor<std::int64_t> targets;   // [P]
    std::int64_t P = 0, C = 0;
    Shape loss_shape;               // [N, d...]
};

inline std::string loss_index_string(std::int64_t flat, const Shape& s) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(s.size()), 0);
    for (int d = s.size() - 1; d >= 0; --d) {
        if (s[d] > 0) {
            idx[std::size_t(d)] = flat % s[d];
            flat /= s[d];
        }
    }
    std::string r = "[";
    for (std::size_t i = 0; i < idx.size(); ++i) r += (i ? ", " : "") + std::to_string(idx[i]);
    return r + "]";
}

template <class T>
LossClassRows<T> loss_class_rows(const Tensor<T>& x, const Tensor<std::int64_t>& targets, std::int64_t ignore_index,
                        const char* op, const char* what) {
    static_assert(MathDType<T>, "polymath losses compute in float or double; convert with .to<float>() first");
    x.check_defined(op);
    targets.check_defined(op);
    POLYMATH_CHECK(x.dim() >= 2, op, what, " must be [N, C] or [N, C, d1, ...], got shape ", x.shape());
    LossClassRows<T> r;
    r.C = x.shape()[1];
    r.loss_shape.push_back(x.shape()[0]);
    for (int d = 2; d < x.dim(); ++d) r.loss_shape.push_back(x.shape()[d]);
    POLYMATH_CHECK(targets.shape() == r.loss_shape, op, "targets of shape ", targets.shape(), " do not match ", what,
                   " of shape ", x.shape(), " (expected targets of shape ", r.loss_shape, ")");
    r.P = numel_of(r.loss_shape);
    if (x.dim() == 2) {
        r.rows = x.contiguous();
    } else {
        std::vector<std::int64_t> perm{0};
        for (int d = 2; d < x.dim(); ++d) perm.push_back(d);
        perm.push_back(1);
        r.rows = x.permute(perm).contiguous().view({r.P, r.C});
    }
    r.targets = targets.contiguous();
    const std::int64_t* t = r.targets.data();
    for (std::int64_t p = 0; p < r.P; ++p) {
        const std::int64_t v = t[p];
        if (v == ignore_index) continue;
        POLYMATH_CHECK(v >= 0 && v < r.C, op, "target value ", v, " at position ", loss_index_string(p, r.loss_shape),
                       " of targets ", targets.shape(), " is out of range for ", r.C, " classes (valid: 0..",
                       r.C - 1, ", or ignore_index ", ignore_index, ")");
    }
    return r;
}

// Rows [P, C] back to the layout [N, C, d...] of `shape` (contiguous).
template <class T>
Tensor<T> loss_from_class_rows(const Tensor<T>& rows, const Shape& shape) {
    if (shape.size() == 2) return rows.view(shape);
    Shape s{shape[0]};
    for (int d = 2; d < shape.size(); ++d) s.push_back(shape[d]);
    s.push_back(shape[1]);
    std::vector<std::int64_t> perm{0, shape.size() - 1};
    for (int d = 1; d < shape.size() - 1; ++d) perm.push_back(d);
    return rows.view(s).permute(perm).contiguous();
}

inline std::int64_t loss_count_kept(const Tensor<std::int64_t>& t, std::int64_t ignore_index) {
    std::int64_t n = 0;
    const std::int64_t* p = t.data();
    for (std::int64_t i = 0; i < t.numel(); ++i) n += p[i] != ignore_index;
    return n;
}

// Reduces per-position losses (0 at ignored positions).
template <class T>
Tensor<T> loss_reduce(const Tensor<T>& per, std::int64_t count, Reduction red, const Shape& shape) {
    if (red == Reduction::None) return per.view(shape);
    double acc = 0;  // serial, in double: deterministic and accurate
    const T* p = per.data();
    for (std::int64_t i = 0; i < per.numel(); ++i) acc += double(p[i]);
    if (red == Reduction::Mean) acc = acc / double(count);  // 0/0 = NaN when everything is ignored
    return Tensor<T>::full(Shape{}, T(acc));
}

// Per-position scale of the upstream gradient.
template <class T>
struct LossGradScale {
    const T* per = nullptr;  // Reduction::None: g per position
    T scalar = T(0);
    T operator()(std::int64_t p) const { return per ? per[p] : scalar; }
};

template <class T>
LossGradScale<T> loss_grad_scale(const Tensor<T>& g, Tensor<T>& keep, std::int64_t count, Reduction red,
                                 const Shape& loss_shape, const char* op) {
    g.check_defined(op);
    LossGradScale<T> s;
    if (red == Reduction::None) {
        POLYMATH_CHECK(g.shape() == loss_shape, op, "gradient of shape ", g.shape(), " does not match the loss shape ",
                       loss_shape);
        keep = g.contiguous();
        s.per = keep.data();
    } else {
        POLYMATH_CHECK(g.numel() == 1, op, "gradient of a reduced loss must have one element, got shape ", g.shape());
        const T gv = g.contiguous().data()[0];
        s.scalar = red == Reduction::Mean ? (count > 0 ? gv / T(count) : T(0)) : gv;
    }
    return s;
}

inline constexpr std::int64_t kLossGrain = 16384;

}  // namespace detail

template <class T>
struct CrossEntropyForward {
    Tensor<T> loss;          // 0-d, or the targets' shape for Reduction::None
    Tensor<T> lse;           // [P] log-sum-exp per position (0 where ignored)
    std::int64_t count = 0;  // non-ignored positions
};

template <class T>
CrossEntropyForward<T> cross_entropy_forward(const Tensor<T>& logits, const Tensor<std::int64_t>& targets,
                                             const CrossEntropyOptions& opt = {}) {
    POLYMATH_CHECK(opt.label_smoothing >= 0.0 && opt.label_smoothing <= 1.0, "cross_entropy",
                   "label_smoothing must be in [0, 1], got ", opt.label_smoothing);
    const detail::LossClassRows<T> cr = detail::loss_class_rows(logits, targets, opt.ignore_index, "cross_entropy", "logits");
    CrossEntropyForward<T> out;
    Tensor<T> per = Tensor<T>::empty({cr.P});
    out.lse = Tensor<T>::empty({cr.P});
    const std::int64_t C = cr.C;
    const T eps = T(opt.label_smoothing), keep = T(1) - eps, eps_c = C > 0 ? eps / T(C) : T(0);
    const T* x = cr.rows.data();
    const std::int64_t* t = cr.targets.data();
    T* pl = per.data();
    T* ls = out.lse.data();
    const std::int64_t ign = opt.ignore_index;
    parallel_for(0, cr.P, std::max<std::int64_t>(1, detail::kLossGrain / std::max<std::int64_t>(C, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t p = b; p < e; ++p) {
                         if (t[p] == ign) {
                             pl[p] = T(0);
                             ls[p] = T(0);
                             continue;
                         }
                         const CVecMap<T> xr(x + p * C, C);
                         const T m = xr.template maxCoeff<Eigen::PropagateNaN>();
                         const T l = m + std::log((xr - m).exp().sum());
                         ls[p] = l;
                         T loss = l - xr[t[p]];
                         if (eps != T(0)) loss = keep * loss + eps_c * (l - xr).sum();
                         pl[p] = loss;
                     }
                 });
    out.count = detail::loss_count_kept(cr.targets, ign);
    out.loss = detail::loss_reduce(per, out.count, opt.reduction, cr.loss_shape);
    return out;
}

template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<std::int64_t>& targets,
                        const CrossEntropyOptions& opt = {}) {
    return cross_entropy_forward(logits, targets, opt).loss;
}

// d logits (shape of logits) from the loss gradient g (0-d, or the targets'
// shape for Reduction::None) and the forward's lse and count.
template <class T>
Tensor<T> cross_entropy_backward(const Tensor<T>& g, const Tensor<T>& logits, const Tensor<std::int64_t>& targets,
                                 const Tensor<T>& lse, std::int64_t count, const CrossEntropyOptions& opt = {}) {
    const detail::LossClassRows<T> cr =
        detail::loss_class_rows(logits, targets, opt.ignore_index, "cross_entropy_backward", "logits");
    Tensor<T> gkeep;
    const detail::LossGradScale<T> scale =
        detail::loss_grad_scale(g, gkeep, count, opt.reduction, cr.loss_shape, "cross_entropy_backward");
    POLYMATH_CHECK(lse.numel() == cr.P, "cross_entropy_backward", "lse of shape ", lse.shape(), " does not have ", cr.P,
                   " elements");
    const Tensor<T> lc = lse.contiguous();
    Tensor<T> grad = Tensor<T>::empty({cr.P, cr.C});
    const std::int64_t C = cr.C;
    const T eps = T(opt.label_smoothing), keep = T(1) - eps, eps_c = C > 0 ? eps / T(C) : T(0);
    const T* x = cr.rows.data();
    const T* l = lc.data();
    const std::int64_t* t = cr.targets.data();
    T* gp = grad.data();
    const std::int64_t ign = opt.ignore_index;
    parallel_for(0, cr.P, std::max<std::int64_t>(1, detail::kLossGrain / std::max<std::int64_t>(C, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t p = b; p < e; ++p) {
                         VecMap<T> gr(gp + p * C, C);
                         if (t[p] == ign) {
                             gr.setZero();
                             continue;
                         }
                         const T s = scale(p);
                         gr = ((CVecMap<T>(x + p * C, C) - l[p]).exp() - eps_c) * s;
                         gr[t[p]] -= keep * s;
                     }
                 });
    return detail::loss_from_class_rows(grad, logits.shape());
}

// Negative log likelihood of log-probabilities (e.g. log_softmax output).
template <class T>
Tensor<T> nll_loss(const Tensor<T>& log_probs, const Tensor<std::int64_t>& targets, const NllLossOptions& opt = {}) {
    const detail::LossClassRows<T> cr = detail::loss_class_rows(log_probs, targets, opt.ignore_index, "nll_loss", "log_probs");
    Tensor<T> per = Tensor<T>::empty({cr.P});
    const T* x = cr.rows.data();
    const std::int64_t* t = cr.targets.data();
    T* pl = per.data();
    for (std::int64_t p = 0; p < cr.P; ++p) pl[p] = t[p] == opt.ignore_index ? T(0) : -x[p * cr.C + t[p]];
    return detail::loss_reduce(per, detail::loss_count_kept(cr.targets, opt.ignore_index), opt.reduction, cr.loss_shape);
}

// d log_probs: -g/count at [p, target_p], 0 elsewhere.
template <class T>
Tensor<T> nll_loss_backward(const Tensor<T>& g, const Tensor<T>& log_probs, const Tensor<std::int64_t>& targets,
                            const NllLossOptions& opt = {}) {
    const detail::LossClassRows<T> cr =
        detail::loss_class_rows(log_probs, targets, opt.ignore_index, "nll_loss_backward", "log_probs");
    const std::int64_t count = detail::loss_count_kept(cr.targets, opt.ignore_index);
    Tensor<T> gkeep;
    const detail::LossGradScale<T> scale =
        detail::loss_grad_scale(g, gkeep, count, opt.reduction, cr.loss_shape, "nll_loss_backward");
    Tensor<T> grad = Tensor<T>::zeros({cr.P, cr.C});
    const std::int64_t* t = cr.targets.data();
    T* gp = grad.data();
    for (std::int64_t p = 0; p < cr.P; ++p)
        if (t[p] != opt.ignore_index) gp[p * cr.C + t[p]] = -scale(p);
    return detail::loss_from_class_rows(grad, log_probs.shape());
}

// Mean (or sum, or elementwise) squared error; a and b broadcast.
template <class T>
Tensor<T> mse_loss(const Tensor<T>& a, const Tensor<T>& b, Reduction reduction = Reduction::Mean) {
    static_assert(MathDType<T>, "polymath losses compute in float or double; convert with .to<float>() first");
    const Tensor<T> sq = binary_map<T>("mse_loss", a, b, [](const auto& x, const auto& y) { return (x - y).square(); });
    if (reduction == Reduction::None) return sq;
    if (reduction == Reduction::Sum) return ops::sum(sq);
    if (sq.numel() == 0) return Tensor<T>::full(Shape{}, std::numeric_limits<T>::quiet_NaN());
    return ops::mean(sq);
}

template <class T>
struct MseGrads {
    Tensor<T> da, db;
};

// Gradients of mse_loss w.r.t. a and b (each in its own shape).
template <class T>
MseGrads<T> mse_loss_backward(const Tensor<T>& g, const Tensor<T>& a, const Tensor<T>& b,
                              Reduction reduction = Reduction::Mean, bool need_a = true, bool need_b = true) {
    g.check_defined("mse_loss_backward");
    const Shape shape = broadcast_shapes(a.shape(), b.shape(), "mse_loss_backward");
    T scale = T(2);
    if (reduction == Reduction::Mean) scale = T(2) / T(std::max<std::int64_t>(numel_of(shape), 1));
    if (reduction != Reduction::None)
        POLYMATH_CHECK(g.numel() == 1, "mse_loss_backward", "gradient of a reduced loss must have one element, got shape ",
                       g.shape());
    else
        POLYMATH_CHECK(g.shape() == shape, "mse_loss_backward", "gradient of shape ", g.shape(),
                       " does not match the loss shape ", shape);
    const Tensor<T> gg = reduction == Reduction::None ? g : g.reshape(Shape{});
    const Tensor<T> d = ternary_map<T>("mse_loss_backward", a, b, gg,
                                       [scale](const auto& x, const auto& y, const auto& w) { return (x - y) * w * scale; });
    MseGrads<T> r;
    if (need_a) r.da = sum_to(d, a.shape());
    if (need_b) r.db = sum_to(unary_map<T>(d, [](const auto& v) { return -v; }), b.shape());
    return r;
}

}  // namespace polymath::ops
