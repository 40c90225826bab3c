// polymath/ops/layer_norm.hpp — layer normalisation and its backward kernel
// (no autograd).
//
//   layer_norm(x, normalized_shape, weight = {}, bias = {}, eps = 1e-5)
//     normalized_shape: the last k dims of x (k >= 1). Each "row" of
//     D = prod(normalized_shape) elements is normalised with its own mean and
//     biased variance: y = (x - mean) * rstd * weight + bias,
//     rstd = 1 / sqrt(var + eps). weight / bias (shape normalized_shape) are
//     optional: pass an undefined Tensor to omit either.
//   layer_norm_forward(...) also returns mean and rstd, shaped like x with the
//     normalised dims set to 1 (as torch.native_layer_norm), for the backward.
//   layer_norm_backward(g, x, mean, rstd, normalized_shape, weight, ...)
//     per row, with xhat = (x - mean) * rstd and gw = g * weight (or g):
//       dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))
//     and over rows dweight = sum g * xhat, dbias = sum g.
//
// Rows are vectorised (forward: Eigen expressions, the mean, then the
// variance around it, no cancellation; backward: two fused packet passes per
// row, see layer_norm_backward_row) and split over threads. The
// backward accumulates dweight / dbias per fixed block of rows into a
// [blocks, D] buffer and sums it column-wise afterwards; the blocks do not
// depend on the thread count, so the parameter gradients are bit-identical
// for any number of threads.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "polymath/ops/elementwise.hpp"
#include "polymath/ops/reduce.hpp"

namespace polymath::ops {

namespace detail {

inline constexpr std::int64_t kLayerNormGrain = 16384;  // elements per task

struct LayerNormGeometry {
    std::int64_t rows = 0, D = 1;
    Shape stat_shape;  // x's shape with the normalised dims set to 1
};

template <class T>
LayerNormGeometry layer_norm_geometry(const Tensor<T>& x, const Shape& ns, const Tensor<T>& weight,
                                      const Tensor<T>& bias, const char* op) {
    static_assert(MathDType<T>, "polymath layer_norm computes in float or double; convert with .to<float>() first");
    x.check_defined(op);
    const int k = ns.size();
    bool match = k >= 1 && k <= x.dim();
    for (int i = 0; match && i < k; ++i) match = x.shape()[x.dim() - k + i] == ns[i];
    POLYMATH_CHECK(match, op, "normalized_shape ", ns, " does not match the last ", k, " dims of the input of shape ",
                   x.shape(), k < 1 ? " (normalized_shape must have at least one dim)" : "");
    POLYMATH_CHECK(!weight.defined() || weight.shape() == ns, op, "weight of shape ", weight.shape(),
                   " does not match normalized_shape ", ns);
    POLYMATH_CHECK(!bias.defined() || bias.shape() == ns, op, "bias of shape ", bias.shape(),
                   " does not match normalized_shape ", ns);
    LayerNormGeometry g;
    g.D = numel_of(ns);
    g.rows = g.D > 0 ? x.numel() / g.D : 0;
    g.stat_shape = x.shape();
    for (int i = x.dim() - k; i < x.dim(); ++i) g.stat_shape[i] = 1;
    return g;
}

// One row of the backward, in two passes over the row (it stays in L1):
//   1. a = mean(gw), b = mean(gw * xhat)      (gw = g * w, xhat = (x - mu) * rs)
//   2. dx = rs * (gw - a - xhat * b); pdw += g * xhat; pdb += g
// written with Eigen's packet primitives so that the two sums share one pass
// and the three outputs another (Eigen expressions would need five passes).
template <class T, bool HasW, bool DX, bool Params>
POLYMATH_ALWAYS_INLINE void layer_norm_backward_row(const T* POLYMATH_RESTRICT x, const T* POLYMATH_RESTRICT g,
                                                    const T* POLYMATH_RESTRICT w, T mu, T rs, T inv_d, std::int64_t D,
                                                    T* POLYMATH_RESTRICT dx, T* POLYMATH_RESTRICT pdw,
                                                    T* POLYMATH_RESTRICT pdb) {
    namespace ei = Eigen::internal;
    using P = typename ei::packet_traits<T>::type;
    constexpr std::int64_t L = ei::packet_traits<T>::size;
    const P vmu = ei::pset1<P>(mu), vrs = ei::pset1<P>(rs);
    T a = T(0), b = T(0);
    if constexpr (DX) {
        P sa0 = ei::pset1<P>(T(0)), sa1 = sa0, sb0 = sa0, sb1 = sa0;
        std::int64_t k = 0;
        for (; k + 2 * L <= D; k += 2 * L) {
            P g0 = ei::ploadu<P>(g + k), g1 = ei::ploadu<P>(g + k + L);
            if constexpr (HasW) {
                g0 = ei::pmul(g0, ei::ploadu<P>(w + k));
                g1 = ei::pmul(g1, ei::ploadu<P>(w + k + L));
            }
            sa0 = ei::padd(sa0, g0);
            sa1 = ei::padd(sa1, g1);
            sb0 = ei::pmadd(g0, ei::pmul(ei::psub(ei::ploadu<P>(x + k), vmu), vrs), sb0);
            sb1 = ei::pmadd(g1, ei::pmul(ei::psub(ei::ploadu<P>(x + k + L), vmu), vrs), sb1);
        }
        for (; k + L <= D; k += L) {
            P g0 = ei::ploadu<P>(g + k);
            if constexpr (HasW) g0 = ei::pmul(g0, ei::ploadu<P>(w + k));
            sa0 = ei::padd(sa0, g0);
            sb0 = ei::pmadd(g0, ei::pmul(ei::psub(ei::ploadu<P>(x + k), vmu), vrs), sb0);
        }
        a = ei::predux(ei::padd(sa0, sa1));
        b = ei::predux(ei::padd(sb0, sb1));
        for (; k < D; ++k) {
            const T gw = HasW ? g[k] * w[k] : g[k];
            a += gw;
            b += gw * ((x[k] - mu) * rs);
        }
        a *= inv_d;
        b *= inv_d;
    }
    const P va = ei::pset1<P>(a), vb = ei::pset1<P>(b);
    std::int64_t k = 0;
    for (; k + L <= D; k += L) {
        const P gv = ei::ploadu<P>(g + k);
        const P xh = ei::pmul(ei::psub(ei::ploadu<P>(x + k), vmu), vrs);
        if constexpr (DX) {
            const P gw = HasW ? ei::pmul(gv, ei::ploadu<P>(w + k)) : gv;
            ei::pstoreu(dx + k, ei::pmul(ei::psub(ei::psub(gw, va), ei::pmul(xh, vb)), vrs));
        }
        if constexpr (Params) {
            ei::pstoreu(pdw + k, ei::pmadd(gv, xh, ei::ploadu<P>(pdw + k)));
            ei::pstoreu(pdb + k, ei::padd(gv, ei::ploadu<P>(pdb + k)));
        }
    }
    for (; k < D; ++k) {
        const T xh = (x[k] - mu) * rs;
        if constexpr (DX) {
            const T gw = HasW ? g[k] * w[k] : g[k];
            dx[k] = ((gw - a) - xh * b) * rs;
        }
        if constexpr (Params) {
            pdw[k] += g[k] * xh;
            pdb[k] += g[k];
        }
    }
}

// Calls f(has_w, dx, params) with std::bool_constant arguments.
template <class F>
void layer_norm_dispatch(bool has_w, bool dx, bool params, F&& f) {
    auto with_p = [&](auto hw, auto d) {
        if (params) f(hw, d, std::true_type{});
        else f(hw, d, std::false_type{});
    };
    auto with_dx = [&](auto hw) {
        if (dx) with_p(hw, std::true_type{});
        else with_p(hw, std::false_type{});
    };
    if (has_w) with_dx(std::true_type{});
    else with_dx(std::false_type{});
}

}  // namespace detail

template <class T>
struct LayerNormForward {
    Tensor<T> y;     // shape of x
    Tensor<T> mean;  // per row, x's shape with the normalised dims set to 1
    Tensor<T> rstd;  // per row, 1 / sqrt(var + eps)
};

template <class T>
LayerNormForward<T> layer_norm_forward(const Tensor<T>& x_in, const Shape& normalized_shape,
                                       const Tensor<T>& weight = {}, const Tensor<T>& bias = {}, double eps = 1e-5) {
    const detail::LayerNormGeometry geo =
        detail::layer_norm_geometry(x_in, normalized_shape, weight, bias, "layer_norm");
    const Tensor<T> x = x_in.contiguous();
    LayerNormForward<T> out;
    out.y = Tensor<T>::empty(x.shape());
    out.mean = Tensor<T>::empty(geo.stat_shape);
    out.rstd = Tensor<T>::empty(geo.stat_shape);
    const std::int64_t D = geo.D;
    if (geo.rows == 0 || D == 0) return out;
    const Tensor<T> w = weight.defined() ? weight.contiguous() : weight;
    const Tensor<T> b = bias.defined() ? bias.contiguous() : bias;
    const T* xp = x.data();
    T* yp = out.y.data();
    T* mp = out.mean.data();
    T* rp = out.rstd.data();
    const T* wp = w.defined() ? w.data() : nullptr;
    const T* bp = b.defined() ? b.data() : nullptr;
    const T inv_d = T(1) / T(D), teps = T(eps);
    parallel_for(0, geo.rows, std::max<std::int64_t>(1, detail::kLayerNormGrain / D), [&](std::int64_t rb, std::int64_t re) {
        for (std::int64_t r = rb; r < re; ++r) {
            const CVecMap<T> xr(xp + r * D, D);
            VecMap<T> yr(yp + r * D, D);
            const T mu = xr.sum() * inv_d;
            const T var = (xr - mu).square().sum() * inv_d;
            const T rs = T(1) / std::sqrt(var + teps);
            mp[r] = mu;
            rp[r] = rs;
            if (wp && bp) yr = (xr - mu) * rs * CVecMap<T>(wp, D) + CVecMap<T>(bp, D);
            else if (wp) yr = (xr - mu) * rs * CVecMap<T>(wp, D);
            else if (bp) yr = (xr - mu) * rs + CVecMap<T>(bp, D);
            else yr = (xr - mu) * rs;
        }
    });
    return out;
}

template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Shape& normalized_shape, const Tensor<T>& weight = {},
                     const Tensor<T>& bias = {}, double eps = 1e-5) {
    return layer_norm_forward(x, normalized_shape, weight, bias, eps).y;
}

template <class T>
struct LayerNormGrads {
    Tensor<T> dx;       // shape of x (undefined when not requested)
    Tensor<T> dweight;  // normalized_shape (undefined when not requested)
    Tensor<T> dbias;
};

// Gradients of layer_norm from g (shape of x) and the forward's mean / rstd.
// `weight` is the forward's weight (undefined if none).
template <class T>
LayerNormGrads<T> layer_norm_backward(const Tensor<T>& g_in, const Tensor<T>& x_in, const Tensor<T>& mean,
                                      const Tensor<T>& rstd, const Shape& normalized_shape, const Tensor<T>& weight,
                                      bool need_dx = true, bool need_dweight = true, bool need_dbias = true) {
    const detail::LayerNormGeometry geo =
        detail::layer_norm_geometry(x_in, normalized_shape, weight, Tensor<T>(), "layer_norm_backward");
    g_in.check_defined("layer_norm_backward");
    POLYMATH_CHECK(g_in.shape() == x_in.shape(), "layer_norm_backward", "gradient of shape ", g_in.shape(),
                   " does not match the input shape ", x_in.shape());
    POLYMATH_CHECK(mean.numel() == geo.rows && rstd.numel() == geo.rows, "layer_norm_backward",
                   "mean / rstd of shapes ", mean.shape(), " / ", rstd.shape(), " do not have one value per row (",
                   geo.rows, " rows)");
    const Tensor<T> x = x_in.contiguous(), g = g_in.contiguous();
    const Tensor<T> mc = mean.contiguous(), rc = rstd.contiguous();
    const Tensor<T> w = weight.defined() ? weight.contiguous() : weight;
    const std::int64_t D = geo.D, rows = geo.rows;
    LayerNormGrads<T> out;
    if (need_dx) out.dx = Tensor<T>::empty(x.shape());
    const bool need_params = need_dweight || need_dbias;
    // Fixed row blocks (independent of the thread count) for the partial sums.
    const std::int64_t rb_rows = std::max<std::int64_t>(1, detail::kLayerNormGrain / std::max<std::int64_t>(D, 1));
    const std::int64_t nblocks = rows > 0 ? (rows + rb_rows - 1) / rb_rows : 0;
    Tensor<T> pw, pb;  // both are accumulated when either is needed (same pass)
    if (need_params) {
        pw = Tensor<T>::empty({std::max<std::int64_t>(nblocks, 1), D});
        pb = Tensor<T>::empty({std::max<std::int64_t>(nblocks, 1), D});
    }
    if (rows > 0 && D > 0) {
        const T* xp = x.data();
        const T* gp = g.data();
        const T* mp = mc.data();
        const T* rp = rc.data();
        const T* wp = w.defined() ? w.data() : nullptr;
        T* dxp = need_dx ? out.dx.data() : nullptr;
        const T inv_d = T(1) / T(D);
        parallel_for(0, nblocks, 1, [&](std::int64_t bb, std::int64_t be) {
            for (std::int64_t blk = bb; blk < be; ++blk) {
                const std::int64_t r0 = blk * rb_rows, r1 = std::min(rows, r0 + rb_rows);
                T* pwp = need_params ? pw.data() + blk * D : nullptr;
                T* pbp = need_params ? pb.data() + blk * D : nullptr;
                if (pwp) VecMap<T>(pwp, D).setZero();
                if (pbp) VecMap<T>(pbp, D).setZero();
                auto rows_of = [&](auto has_w, auto dx_on, auto p_on) {
                    for (std::int64_t r = r0; r < r1; ++r)
                        detail::layer_norm_backward_row<T, decltype(has_w)::value, decltype(dx_on)::value,
                                                        decltype(p_on)::value>(xp + r * D, gp + r * D, wp, mp[r], rp[r],
                                                                               inv_d, D, dxp ? dxp + r * D : nullptr, pwp, pbp);
                };
                detail::layer_norm_dispatch(wp != nullptr, dxp != nullptr, need_params, rows_of);
            }
        });
    }
    if (need_params) {
        if (need_dweight)
            out.dweight = (nblocks > 0 ? ops::sum(pw, {0}) : Tensor<T>::zeros({D})).reshape(normalized_shape);
        if (need_dbias) out.dbias = (nblocks > 0 ? ops::sum(pb, {0}) : Tensor<T>::zeros({D})).reshape(normalized_shape);
    }
    return out;
}

}  // namespace polymath::ops
