// polymath/ops/pool.hpp — pooling (no autograd).
//
//   max_pool2d(x [N, C, H, W], kernel, stride = kernel, padding = 0) -> {values, indices}
//     values [N, C, Ho, Wo], Ho = (H + 2 ph - kh) / sh + 1 (floor, as PyTorch with
//     ceil_mode=false); padded positions never win. indices (int64, same shape) hold
//     the flat position ih·W + iw of each maximum within its [H, W] plane (as
//     torch's return_indices). NaN propagates (a NaN in the window is the max).
//     kernel / stride / padding are Int2 (one number or {h, w}); a stride of 0
//     (the default) means "= kernel"; padding must be at most half the kernel.
//   avg_pool2d(x, kernel, stride = kernel, padding = 0) -> [N, C, Ho, Wo]:
//     window sums / (kh·kw): count_include_pad = true, PyTorch's default.
//   max_pool1d / avg_pool1d: the same over x [N, C, L] (int64 kernel / stride / padding).
//   global_avg_pool(x [N, C, ...]) -> [N, C]: mean over all spatial dims.
//   max_pool1d_channels_last(x [N, L, C], kernel, stride, padding = Same) -> {values, indices}
//     max over windows of the LENGTH axis of a channels-last tensor (ConvRes's
//     max-pool 3 / stride 2 / SAME). indices [N, Lo, C] hold the input step t.
//     PaddingMode::Same as TensorFlow: Lo = ceil(L / s), total pad
//     max((Lo - 1) s + k - L, 0), the smaller half on the left; padding never wins.
//     PaddingMode::Valid: Lo = (L - k) / s + 1. (Causal is not supported.)
//   *_backward kernels give dx from g = dL/dy.
//
// Example:
//   auto [y, idx] = ops::max_pool2d(x, 2);                 // 2x2 windows, stride 2
//   Tensor<float> a = ops::avg_pool1d(h, 3, 1, 1);         // kernel 3, stride 1, pad 1
//   auto p = ops::max_pool1d_channels_last(h, 3, 2, PaddingMode::Same);
//
// Planes (n, c) are split over threads; each backward writes only its own
// plane (or its own batch row) in a fixed order, so results do not depend on
// the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "polymath/ops/conv.hpp"
#include "polymath/ops/elementwise.hpp"

namespace polymath::ops {

template <class T>
struct MaxPoolResult {
    Tensor<T> values;
    Tensor<std::int64_t> indices;
};

namespace detail {

inline constexpr std::int64_t kPoolGrain = 16384;  // window reads per task

struct Pool2dGeometry {
    std::int64_t N = 0, C = 0, H = 0, W = 0, Ho = 0, Wo = 0;
    Int2 kernel, stride, padding;
};

// x4: the input shape as [N, C, H, W] (1-D: H = 1); xs: the user's shape for messages.
template <class T>
Pool2dGeometry pool2d_geometry(const Shape& x4, Int2 kernel, Int2 stride, Int2 padding, const char* op, const Shape& xs,
                               bool one_d) {
    static_assert(MathDType<T>, "polymath pooling computes in float or double; convert with .to<float>() first");
    POLYMATH_CHECK(x4.size() == 4, op, one_d ? "expects input [N, C, L], got shape " : "expects input [N, C, H, W], got shape ",
                   xs);
    if (stride.h == 0 && stride.w == 0) stride = kernel;
    POLYMATH_CHECK(kernel.h >= 1 && kernel.w >= 1, op, "kernel must be >= 1, got ", one_d ? kernel.w : kernel.h,
                   one_d ? "" : " x ", one_d ? "" : std::to_string(kernel.w));
    POLYMATH_CHECK(stride.h >= 1 && stride.w >= 1, op, "stride must be >= 1, got ", one_d ? stride.w : stride.h,
                   one_d ? "" : " x ", one_d ? "" : std::to_string(stride.w));
    POLYMATH_CHECK(padding.h >= 0 && padding.w >= 0 && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w, op,
                   "padding must be between 0 and half the kernel, got padding ", one_d ? padding.w : padding.h,
                   one_d ? "" : " x ", one_d ? "" : std::to_string(padding.w), " for kernel ",
                   one_d ? kernel.w : kernel.h, one_d ? "" : " x ", one_d ? "" : std::to_string(kernel.w));
    Pool2dGeometry g;
    g.N = x4[0];
    g.C = x4[1];
    g.H = x4[2];
    g.W = x4[3];
    POLYMATH_CHECK(g.H + 2 * padding.h >= kernel.h && g.W + 2 * padding.w >= kernel.w, op, "input of shape ", xs,
                   " is smaller than the kernel ", one_d ? kernel.w : kernel.h, one_d ? "" : " x ",
                   one_d ? "" : std::to_string(kernel.w), " (padding ", one_d ? padding.w : padding.h, ")");
    g.kernel = kernel;
    g.stride = stride;
    g.padding = padding;
    g.Ho = (g.H + 2 * padding.h - kernel.h) / stride.h + 1;
    g.Wo = (g.W + 2 * padding.w - kernel.w) / stride.w + 1;
    return g;
}

template <class F>
void pool_for_planes(const Pool2dGeometry& g, F&& plane) {
    const std::int64_t per = std::max<std::int64_t>(1, g.Ho * g.Wo * g.kernel.h * g.kernel.w + g.H * g.W);
    parallel_for(0, g.N * g.C, std::max<std::int64_t>(1, kPoolGrain / per), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t p = b; p < e; ++p) plane(p);
    });
}

template <class T>
MaxPoolResult<T> max_pool2d_impl(const Tensor<T>& x_in, const Pool2dGeometry& g) {
    MaxPoolResult<T> r;
    r.values = Tensor<T>::empty({g.N, g.C, g.Ho, g.Wo});
    r.indices = Tensor<std::int64_t>::empty({g.N, g.C, g.Ho, g.Wo});
    if (r.values.numel() == 0) return r;
    const Tensor<T> x = x_in.contiguous();
    const T* xp = x.data();
    T* yp = r.values.data();
    std::int64_t* ip = r.indices.data();
    const std::int64_t HW = g.H * g.W, HoWo = g.Ho * g.Wo;
    pool_for_planes(g, [&](std::int64_t p) {
        const T* xs = xp + p * HW;
        T* ys = yp + p * HoWo;
        std::int64_t* is = ip + p * HoWo;
        for (std::int64_t oh = 0; oh < g.Ho; ++oh) {
            const std::int64_t h0 = oh * g.stride.h - g.padding.h;
            const std::int64_t ha = std::max<std::int64_t>(h0, 0), hb = std::min(h0 + g.kernel.h, g.H);
            for (std::int64_t ow = 0; ow < g.Wo; ++ow) {
                const std::int64_t w0 = ow * g.stride.w - g.padding.w;
                const std::int64_t wa = std::max<std::int64_t>(w0, 0), wb = std::min(w0 + g.kernel.w, g.W);
                T best = -std::numeric_limits<T>::infinity();
                std::int64_t bi = ha * g.W + wa;
                for (std::int64_t ih = ha; ih < hb; ++ih)
                    for (std::int64_t iw = wa; iw < wb; ++iw) {
                        const T v = xs[ih * g.W + iw];
                        if (v > best || std::isnan(v)) {  // as PyTorch: NaN propagates
                            best = v;
                            bi = ih * g.W + iw;
                        }
                    }
                ys[oh * g.Wo + ow] = best;
                is[oh * g.Wo + ow] = bi;
            }
        }
    });
    return r;
}

template <class T>
Tensor<T> max_pool2d_backward_impl(const Tensor<T>& g_in, const Tensor<std::int64_t>& idx_in, const Shape& xshape,
                                   const char* op) {
    POLYMATH_CHECK(idx_in.shape() == g_in.shape(), op, "indices of shape ", idx_in.shape(),
                   " do not match the gradient of shape ", g_in.shape());
    Tensor<T> dx = Tensor<T>::zeros(xshape);
    const int nd = xshape.size();
    const std::int64_t HW = nd >= 2 ? xshape[nd - 1] * (nd == 4 ? xshape[nd - 2] : 1) : 1;
    const std::int64_t planes = HW > 0 ? dx.numel() / HW : 0;
    const std::int64_t gsz = planes > 0 ? g_in.numel() / planes : 0;
    if (planes == 0 || gsz == 0) return dx;
    const Tensor<T> g = g_in.contiguous();
    const Tensor<std::int64_t> idx = idx_in.contiguous();
    const T* gp = g.data();
    const std::int64_t* ip = idx.data();
    T* dp = dx.data();
    parallel_for(0, planes, std::max<std::int64_t>(1, kPoolGrain / (gsz + HW)), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t p = b; p < e; ++p)
            for (std::int64_t j = 0; j < gsz; ++j) {
                const std::int64_t i = ip[p * gsz + j];
                POLYMATH_CHECK(i >= 0 && i < HW, op, "index ", i, " out of range for a plane of ", HW, " elements");
                dp[p * HW + i] += gp[p * gsz + j];
            }
    });
    return dx;
}

template <class T>
Tensor<T> avg_pool2d_impl(const Tensor<T>& x_in, const Pool2dGeometry& g) {
    Tensor<T> y = Tensor<T>::empty({g.N, g.C, g.Ho, g.Wo});
    if (y.numel() == 0) return y;
    const Tensor<T> x = x_in.contiguous();
    const T* xp = x.data();
    T* yp = y.data();
    const std::int64_t HW = g.H * g.W, HoWo = g.Ho * g.Wo;
    const T inv = T(1) / T(g.kernel.h * g.kernel.w);
    pool_for_planes(g, [&](std::int64_t p) {
        const T* xs = xp + p * HW;
        T* ys = yp + p * HoWo;
        for (std::int64_t oh = 0; oh < g.Ho; ++oh) {
            const std::int64_t h0 = oh * g.stride.h - g.padding.h;
            const std::int64_t ha = std::max<std::int64_t>(h0, 0), hb = std::min(h0 + g.kernel.h, g.H);
            for (std::int64_t ow = 0; ow < g.Wo; ++ow) {
                const std::int64_t w0 = ow * g.stride.w - g.padding.w;
                const std::int64_t wa = std::max<std::int64_t>(w0, 0), wb = std::min(w0 + g.kernel.w, g.W);
                T acc = T(0);
                for (std::int64_t ih = ha; ih < hb; ++ih)
                    for (std::int64_t iw = wa; iw < wb; ++iw) acc += xs[ih * g.W + iw];
                ys[oh * g.Wo + ow] = acc * inv;
            }
        }
    });
    return y;
}

template <class T>
Tensor<T> avg_pool2d_backward_impl(const Tensor<T>& g_in, const Pool2dGeometry& g) {
    Tensor<T> dx = Tensor<T>::zeros({g.N, g.C, g.H, g.W});
    if (dx.numel() == 0 || g.Ho * g.Wo == 0) return dx;
    const Tensor<T> gy = g_in.contiguous();
    const T* gp = gy.data();
    T* dp = dx.data();
    const std::int64_t HW = g.H * g.W, HoWo = g.Ho * g.Wo;
    const T inv = T(1) / T(g.kernel.h * g.kernel.w);
    pool_for_planes(g, [&](std::int64_t p) {
        const T* gs = gp + p * HoWo;
        T* ds = dp + p * HW;
        for (std::int64_t oh = 0; oh < g.Ho; ++oh) {
            const std::int64_t h0 = oh * g.stride.h - g.padding.h;
            const std::int64_t ha = std::max<std::int64_t>(h0, 0), hb = std::min(h0 + g.kernel.h, g.H);
            for (std::int64_t ow = 0; ow < g.Wo; ++ow) {
                const std::int64_t w0 = ow * g.stride.w - g.padding.w;
                const std::int64_t wa = std::max<std::int64_t>(w0, 0), wb = std::min(w0 + g.kernel.w, g.W);
                const T v = gs[oh * g.Wo + ow] * inv;
                for (std::int64_t ih = ha; ih < hb; ++ih)
                    for (std::int64_t iw = wa; iw < wb; ++iw) ds[ih * g.W + iw] += v;
            }
        }
    });
    return dx;
}

template <class T>
void pool_check_grad(const Tensor<T>& g, const Shape& expect, const char* op) {
    g.check_defined(op);
    POLYMATH_CHECK(g.shape() == expect, op, "gradient of shape ", g.shape(), " does not match the output shape ", expect);
}

}  // namespace detail

// ---- 2-D -------------------------------------------------------------------

template <class T>
MaxPoolResult<T> max_pool2d(const Tensor<T>& x, Int2 kernel, Int2 stride = Int2(), Int2 padding = 0) {
    x.check_defined("max_pool2d");
    const detail::Pool2dGeometry g = detail::pool2d_geometry<T>(x.shape(), kernel, stride, padding, "max_pool2d", x.shape(), false);
    return detail::max_pool2d_impl(x, g);
}

// dx (input_shape [N, C, H, W]) from g [N, C, Ho, Wo] and max_pool2d's indices.
template <class T>
Tensor<T> max_pool2d_backward(const Tensor<T>& g, const Tensor<std::int64_t>& indices, const Shape& input_shape) {
    g.check_defined("max_pool2d_backward");
    indices.check_defined("max_pool2d_backward");
    POLYMATH_CHECK(input_shape.size() == 4 && g.dim() == 4 && g.shape()[0] == input_shape[0] &&
                       g.shape()[1] == input_shape[1],
                   "max_pool2d_backward", "gradient of shape ", g.shape(), " does not match the input shape ", input_shape);
    return detail::max_pool2d_backward_impl(g, indices, input_shape, "max_pool2d_backward");
}

template <class T>
Tensor<T> avg_pool2d(const Tensor<T>& x, Int2 kernel, Int2 stride = Int2(), Int2 padding = 0) {
    x.check_defined("avg_pool2d");
    const detail::Pool2dGeometry g = detail::pool2d_geometry<T>(x.shape(), kernel, stride, padding, "avg_pool2d", x.shape(), false);
    return detail::avg_pool2d_impl(x, g);
}

template <class T>
Tensor<T> avg_pool2d_backward(const Tensor<T>& g, const Shape& input_shape, Int2 kernel, Int2 stride = Int2(),
                              Int2 padding = 0) {
    POLYMATH_CHECK(input_shape.size() == 4, "avg_pool2d_backward", "expects an input shape [N, C, H, W], got ", input_shape);
    const detail::Pool2dGeometry geo = detail::pool2d_geometry<T>(input_shape, kernel, stride, padding,
                                                               "avg_pool2d_backward", input_shape, false);
    detail::pool_check_grad(g, Shape{geo.N, geo.C, geo.Ho, geo.Wo}, "avg_pool2d_backward");
    return detail::avg_pool2d_backward_impl(g, geo);
}

// ---- 1-D (NCL): the 2-D kernels with H = 1 ----------------------------------

template <class T>
MaxPoolResult<T> max_pool1d(const Tensor<T>& x, std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0) {
    x.check_defined("max_pool1d");
    POLYMATH_CHECK(x.dim() == 3, "max_pool1d", "expects input [N, C, L], got shape ", x.shape());
    const detail::Pool2dGeometry g = detail::pool2d_geometry<T>(x.unsqueeze(2).shape(), Int2(1, kernel), Int2(1, stride == 0 ? kernel : stride),
                                                             Int2(0, padding), "max_pool1d", x.shape(), true);
    MaxPoolResult<T> r = detail::max_pool2d_impl(x.unsqueeze(2), g);
    return {r.values.squeeze(2), r.indices.squeeze(2)};
}

template <class T>
Tensor<T> max_pool1d_backward(const Tensor<T>& g, const Tensor<std::int64_t>& indices, const Shape& input_shape) {
    g.check_defined("max_pool1d_backward");
    indices.check_defined("max_pool1d_backward");
    POLYMATH_CHECK(input_shape.size() == 3 && g.dim() == 3 && g.shape()[0] == input_shape[0] &&
                       g.shape()[1] == input_shape[1],
                   "max_pool1d_backward", "gradient of shape ", g.shape(), " does not match the input shape ", input_shape);
    return detail::max_pool2d_backward_impl(g, indices, input_shape, "max_pool1d_backward");
}

template <class T>
Tensor<T> avg_pool1d(const Tensor<T>& x, std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0) {
    x.check_defined("avg_pool1d");
    POLYMATH_CHECK(x.dim() == 3, "avg_pool1d", "expects input [N, C, L], got shape ", x.shape());
    const detail::Pool2dGeometry g = detail::pool2d_geometry<T>(x.unsqueeze(2).shape(), Int2(1, kernel), Int2(1, stride == 0 ? kernel : stride),
                                                             Int2(0, padding), "avg_pool1d", x.shape(), true);
    return detail::avg_pool2d_impl(x.unsqueeze(2), g).squeeze(2);
}

template <class T>
Tensor<T> avg_pool1d_backward(const Tensor<T>& g, const Shape& input_shape, std::int64_t kernel, std::int64_t stride = 0,
                              std::int64_t padding = 0) {
    POLYMATH_CHECK(input_shape.size() == 3, "avg_pool1d_backward", "expects an input shape [N, C, L], got ", input_shape);
    const Shape s4{input_shape[0], input_shape[1], 1, input_shape[2]};
    const detail::Pool2dGeometry geo =
        detail::pool2d_geometry<T>(s4, Int2(1, kernel), Int2(1, stride == 0 ? kernel : stride),
                                Int2(0, padding), "avg_pool1d_backward", input_shape, true);
    detail::pool_check_grad(g, Shape{geo.N, geo.C, geo.Wo}, "avg_pool1d_backward");
    return detail::avg_pool2d_backward_impl(g.unsqueeze(2), geo).squeeze(2);
}

// ---- global average ------------------------------------------------------------

template <class T>
Tensor<T> global_avg_pool(const Tensor<T>& x_in) {
    static_assert(MathDType<T>, "polymath pooling computes in float or double; convert with .to<float>() first");
    x_in.check_defined("global_avg_pool");
    POLYMATH_CHECK(x_in.dim() >= 3, "global_avg_pool", "expects input [N, C, spatial...] with at least one spatial dim, got shape ",
                   x_in.shape());
    const std::int64_t N = x_in.shape()[0], C = x_in.shape()[1];
    const std::int64_t S = N * C > 0 ? x_in.numel() / (N * C) : 0;
    Tensor<T> y = Tensor<T>::empty({N, C});
    if (N * C == 0) return y;
    POLYMATH_CHECK(S > 0, "global_avg_pool", "input of shape ", x_in.shape(), " has no spatial elements to average");
    const Tensor<T> x = x_in.contiguous();
    const T* xp = x.data();
    T* yp = y.data();
    const T inv = T(1) / T(S);
    parallel_for(0, N * C, std::max<std::int64_t>(1, detail::kPoolGrain / S), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t p = b; p < e; ++p) yp[p] = CVecMap<T>(xp + p * S, S).sum() * inv;
    });
    return y;
}

template <class T>
Tensor<T> global_avg_pool_backward(const Tensor<T>& g_in, const Shape& input_shape) {
    g_in.check_defined("global_avg_pool_backward");
    POLYMATH_CHECK(input_shape.size() >= 3 && g_in.shape() == (Shape{input_shape[0], input_shape[1]}),
                   "global_avg_pool_backward", "gradient of shape ", g_in.shape(), " does not match the input shape ",
                   input_shape);
    Tensor<T> dx = Tensor<T>::empty(input_shape);
    const std::int64_t NC = input_shape[0] * input_shape[1];
    if (dx.numel() == 0) return dx;
    const std::int64_t S = dx.numel() / NC;
    const Tensor<T> g = g_in.contiguous();
    const T* gp = g.data();
    T* dp = dx.data();
    const T inv = T(1) / T(S);
    parallel_for(0, NC, std::max<std::int64_t>(1, detail::kPoolGrain / S), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t p = b; p < e; ++p) VecMap<T>(dp + p * S, S).setConstant(gp[p] * inv);
    });
    return dx;
}

// ---- max pool over the length axis of channels-last [N, L, C] ----------------------

namespace detail {

struct PoolClGeometry {
    std::int64_t N = 0, L = 0, C = 0, k = 0, s = 0, pad_left = 0, Lo = 0;
};

template <class T>
PoolClGeometry pool_cl_geometry(const Shape& xs, std::int64_t kernel, std::int64_t stride, PaddingMode mode,
                                const char* op) {
    static_assert(MathDType<T>, "polymath pooling computes in float or double; convert with .to<float>() first");
    POLYMATH_CHECK(xs.size() == 3, op, "expects channels-last input [N, L, C], got shape ", xs);
    if (stride == 0) stride = kernel;
    POLYMATH_CHECK(kernel >= 1 && stride >= 1, op, "kernel and stride must be >= 1, got kernel ", kernel, ", stride ", stride);
    POLYMATH_CHECK(mode != PaddingMode::Causal, op, "Causal padding is not supported for pooling (use Same or Valid)");
    PoolClGeometry g;
    g.N = xs[0];
    g.L = xs[1];
    g.C = xs[2];
    g.k = kernel;
    g.s = stride;
    if (mode == PaddingMode::Same) {
        g.Lo = (g.L + stride - 1) / stride;
        const std::int64_t total = std::max<std::int64_t>((g.Lo - 1) * stride + kernel - g.L, 0);
        g.pad_left = total / 2;
    } else {
        POLYMATH_CHECK(g.L >= kernel, op, "input of shape ", xs, " is shorter than the kernel ", kernel,
                       " with Valid padding");
        g.Lo = (g.L - kernel) / stride + 1;
        g.pad_left = 0;
    }
    return g;
}

}  // namespace detail

template <class T>
MaxPoolResult<T> max_pool1d_channels_last(const Tensor<T>& x_in, std::int64_t kernel, std::int64_t stride = 0,
                                          PaddingMode padding = PaddingMode::Same) {
    x_in.check_defined("max_pool1d_channels_last");
    const detail::PoolClGeometry g =
        detail::pool_cl_geometry<T>(x_in.shape(), kernel, stride, padding, "max_pool1d_channels_last");
    MaxPoolResult<T> r;
    r.values = Tensor<T>::empty({g.N, g.Lo, g.C});
    r.indices = Tensor<std::int64_t>::empty({g.N, g.Lo, g.C});
    if (r.values.numel() == 0) return r;
    const Tensor<T> x = x_in.contiguous();
    const T* xp = x.data();
    T* yp = r.values.data();
    std::int64_t* ip = r.indices.data();
    const std::int64_t C = g.C;
    parallel_for(0, g.N * g.Lo, std::max<std::int64_t>(1, detail::kPoolGrain / std::max<std::int64_t>(1, C * g.k)),
                 [&](std::int64_t rb, std::int64_t re) {
                     for (std::int64_t r = rb; r < re; ++r) {
                         const std::int64_t n = r / g.Lo, t = r % g.Lo;
                         const std::int64_t s0 = t * g.s - g.pad_left;
                         const std::int64_t sa = std::max<std::int64_t>(s0, 0), sb = std::min(s0 + g.k, g.L);
                         T* POLYMATH_RESTRICT yr = yp + r * C;
                         std::int64_t* POLYMATH_RESTRICT ir = ip + r * C;
                         const T* POLYMATH_RESTRICT x0 = xp + (n * g.L + sa) * C;
                         for (std::int64_t c = 0; c < C; ++c) {
                             yr[c] = x0[c];
                             ir[c] = sa;
                         }
                         for (std::int64_t s = sa + 1; s < sb; ++s) {
                             const T* POLYMATH_RESTRICT xr = xp + (n * g.L + s) * C;
                             for (std::int64_t c = 0; c < C; ++c) {
                                 const T v = xr[c], cur = yr[c];
                                 // v wins when larger, or when it is NaN and the current max is not.
                                 const bool take = v > cur || (v != v && cur == cur);
                                 yr[c] = take ? v : cur;
                                 ir[c] = take ? s : ir[c];
                             }
                         }
                     }
                 });
    return r;
}

// dx [N, L, C] from g [N, Lo, C] and max_pool1d_channels_last's indices.
template <class T>
Tensor<T> max_pool1d_channels_last_backward(const Tensor<T>& g_in, const Tensor<std::int64_t>& idx_in,
                                            const Shape& input_shape) {
    const char* op = "max_pool1d_channels_last_backward";
    g_in.check_defined(op);
    idx_in.check_defined(op);
    POLYMATH_CHECK(input_shape.size() == 3 && g_in.dim() == 3 && g_in.shape()[0] == input_shape[0] &&
                       g_in.shape()[2] == input_shape[2] && idx_in.shape() == g_in.shape(),
                   op, "gradient of shape ", g_in.shape(), " and indices of shape ", idx_in.shape(),
                   " do not match the input shape ", input_shape);
    Tensor<T> dx = Tensor<T>::zeros(input_shape);
    const std::int64_t N = input_shape[0], L = input_shape[1], C = input_shape[2], Lo = g_in.shape()[1];
    if (dx.numel() == 0 || Lo == 0) return dx;
    const Tensor<T> g = g_in.contiguous();
    const Tensor<std::int64_t> idx = idx_in.contiguous();
    const T* gp = g.data();
    const std::int64_t* ip = idx.data();
    T* dp = dx.data();
    // One task per batch row (its rows of dx are written by it alone, in order).
    parallel_for(0, N, std::max<std::int64_t>(1, detail::kPoolGrain / std::max<std::int64_t>(1, Lo * C)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t n = b; n < e; ++n)
                         for (std::int64_t t = 0; t < Lo; ++t) {
                             const T* gr = gp + (n * Lo + t) * C;
                             const std::int64_t* ir = ip + (n * Lo + t) * C;
                             for (std::int64_t c = 0; c < C; ++c) {
                                 const std::int64_t s = ir[c];
                                 POLYMATH_CHECK(s >= 0 && s < L, op, "index ", s, " out of range for length ", L);
                                 dp[(n * L + s) * C + c] += gr[c];
                             }
                         }
                 });
    return dx;
}

}  // namespace polymath::ops
