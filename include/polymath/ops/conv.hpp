// polymath/ops/conv.hpp — convolutions (no autograd).
//
//   conv2d(x, w, bias = {}, stride = 1, padding = 0, dilation = 1, groups = 1)
//     x [N, C, H, W], w [O, C/groups, kh, kw], bias [O] (undefined Tensor: none)
//     -> y [N, O, Ho, Wo],  Ho = (H + 2 ph - dh (kh - 1) - 1) / sh + 1 (floor; same for Wo).
//     torch.nn.functional.conv2d semantics (cross-correlation, zero padding):
//       y[n, o, i, j] = bias[o] + sum_{c, a, b} w[o, c, a, b] ·
//                       x[n, g·Cg + c, i·sh - ph + a·dh, j·sw - pw + b·dw]
//     with g = o / (O / groups), Cg = C / groups; out-of-range x reads are 0.
//     stride / padding / dilation are Int2: one number for both dims (2) or {h, w}.
//   conv2d_backward(g, x, w, stride, padding, dilation, groups, need_dx, need_dw, need_db)
//     -> {dx, dw, db}.
//   conv1d(x [N, C, L], w [O, C/groups, k], bias, stride, padding, dilation, groups)
//     -> [N, O, Lo]; the 2-D path with H = 1. conv1d_backward likewise.
//
//   depthwise_conv1d(x [N, L, C], w [K, C], bias = {}, dilation = 1, padding = Same)
//     CHANNELS-LAST depthwise convolution (one K-tap filter per channel, stride 1):
//       y[n, t, c] = bias[c] + sum_k w[k, c] · x[n, t + k·d - pad_left, c]   (0 outside [0, L))
//     PaddingMode::Same   -> Lo = L, pad_left = d (K - 1) / 2 (floor), right pad the rest:
//                            TensorFlow / tensor2tensor "SAME" (total pad d (K - 1), the
//                            smaller half on the left; symmetric for odd K).
//     PaddingMode::Causal -> Lo = L, pad_left = d (K - 1), no right pad: tensor2tensor's
//                            "LEFT" padding; y[t] depends on x[<= t] only.
//     PaddingMode::Valid  -> Lo = L - d (K - 1), no padding.
//   depthwise_conv1d_backward(g, x, w, dilation, padding, need_dx, need_dw, need_db).
//
// Example:
//   Tensor<float> y = ops::conv2d(x, w, b, /*stride=*/2, /*padding=*/1);
//   Tensor<float> z = ops::conv2d(x, w, {}, {1, 2}, {0, 1}, 1, /*groups=*/4);
//   Tensor<float> u = ops::depthwise_conv1d(h, wd, bd, /*dilation=*/8, PaddingMode::Causal);
//
// How conv2d runs: per (image, group) the receptive fields are unrolled into a
// [Cg·kh·kw, Ho·Wo] column buffer (im2col; skipped for 1x1 / stride 1 / no
// padding, where x itself is that matrix) and one GEMM w_g · col writes the
// output rows (bias pre-filled, beta = 1). The (image, group) items run in
// parallel (single-threaded GEMMs, per-thread column buffers) when there are
// at least as many as threads; otherwise one after the other with the GEMM's
// own threaded split. The backward computes dcol = w_gᵀ · dy and scatters it
// back (col2im) for dx, and dw_g += dy · colᵀ per image; dw is accumulated per
// fixed block of images (the blocks depend on the shapes only) and the block
// partials are summed in order, so every gradient is identical for any
// thread count.
//
// depthwise_conv1d vectorises over the contiguous channel axis and splits the
// N·L output rows over threads; its dw / db are accumulated per fixed block of
// rows and summed in order (deterministic for any thread count).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <vector>

#include "polymath/ops/padding_mode.hpp"
#include "polymath/ops/elementwise.hpp"
#include "polymath/ops/matmul.hpp"

namespace polymath {

// A pair of sizes (height, width); one number converts to both.
struct Int2 {
    std::int64_t h = 0, w = 0;
    constexpr Int2() = default;
    constexpr Int2(std::int64_t v) : h(v), w(v) {}  // NOLINT: implicit on purpose
    constexpr Int2(std::int64_t h_, std::int64_t w_) : h(h_), w(w_) {}
    friend constexpr bool operator==(const Int2&, const Int2&) = default;
};
inline std::ostream& operator<<(std::ostream& os, const Int2& v) { return os << '(' << v.h << ", " << v.w << ')'; }


}  // namespace polymath

namespace polymath::ops {

// Also reachable as ops::Int2 / ops::PaddingMode.
using polymath::Int2;
using polymath::PaddingMode;

namespace detail {

inline std::int64_t conv_ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Per-thread scratch buffers, grown on demand (Tag tells simultaneous ones apart).
template <class T, int Tag>
T* conv_scratch(std::size_t n) {
    thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

struct Conv2dGeometry {
    std::int64_t N = 0, C = 0, H = 0, W = 0, O = 0, G = 1, Cg = 0, Og = 0, kh = 0, kw = 0, Ho = 0, Wo = 0;
    Int2 stride, padding, dilation;
    // 1x1 kernel, stride 1, no padding: x is its own column matrix.
    bool direct() const {
        return kh == 1 && kw == 1 && stride == Int2(1) && padding == Int2(0);
    }
    std::int64_t ck() const { return Cg * kh * kw; }
    std::int64_t hw_out() const { return Ho * Wo; }
};

// Checks and geometry of a 2-D convolution; `op` and the user-facing shapes
// (conv1d passes its own) go into the messages.
template <class T>
Conv2dGeometry conv2d_geometry(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, Int2 stride, Int2 padding,
                               Int2 dilation, std::int64_t groups, const char* op, const Shape& xs, const Shape& ws) {
    static_assert(MathDType<T>, "polymath convolutions compute in float or double; convert with .to<float>() first");
    x.check_defined(op);
    w.check_defined(op);
    POLYMATH_CHECK(stride.h >= 1 && stride.w >= 1, op, "stride must be >= 1, got ", stride);
    POLYMATH_CHECK(dilation.h >= 1 && dilation.w >= 1, op, "dilation must be >= 1, got ", dilation);
    POLYMATH_CHECK(padding.h >= 0 && padding.w >= 0, op, "padding must be >= 0, got ", padding);
    POLYMATH_CHECK(groups >= 1, op, "groups must be >= 1, got ", groups);
    Conv2dGeometry g;
    g.N = x.shape()[0];
    g.C = x.shape()[1];
    g.H = x.shape()[2];
    g.W = x.shape()[3];
    g.O = w.shape()[0];
    g.G = groups;
    g.kh = w.shape()[2];
    g.kw = w.shape()[3];
    POLYMATH_CHECK(g.C % groups == 0 && g.O % groups == 0, op, "input of shape ", xs, " and weight of shape ", ws,
                   ": in_channels ", g.C, " and out_channels ", g.O, " must both be divisible by groups ", groups);
    g.Cg = g.C / groups;
    g.Og = g.O / groups;
    POLYMATH_CHECK(w.shape()[1] == g.Cg, op, "weight of shape ", ws, " does not match the input of shape ", xs,
                   " with groups ", groups, ": expected ", g.Cg, " input channels per group, got ", w.shape()[1]);
    POLYMATH_CHECK(g.kh >= 1 && g.kw >= 1, op, "weight of shape ", ws, " has an empty kernel");
    POLYMATH_CHECK(!bias.defined() || bias.shape() == (Shape{g.O}), op, "bias of shape ", bias.shape(),
                   " does not match out_channels ", g.O, " of the weight of shape ", ws);
    g.stride = stride;
    g.padding = padding;
    g.dilation = dilation;
    const std::int64_t eh = dilation.h * (g.kh - 1) + 1, ew = dilation.w * (g.kw - 1) + 1;
    POLYMATH_CHECK(g.H + 2 * padding.h >= eh && g.W + 2 * padding.w >= ew, op, "input of shape ", xs,
                   " (padded by ", padding, ") is smaller than the dilated kernel of the weight of shape ", ws);
    g.Ho = (g.H + 2 * padding.h - eh) / stride.h + 1;
    g.Wo = (g.W + 2 * padding.w - ew) / stride.w + 1;
    return g;
}

// Valid output columns [lo, hi) of one kernel column: iw = ow·sw + off in [0, W).
inline void conv_valid_range(std::int64_t off, std::int64_t s, std::int64_t W, std::int64_t Wo, std::int64_t& lo,
                             std::int64_t& hi) {
    lo = off >= 0 ? 0 : conv_ceil_div(-off, s);
    hi = W - 1 - off >= 0 ? std::min<std::int64_t>(Wo, (W - 1 - off) / s + 1) : 0;
    lo = std::min(lo, hi);
}

// x [Cg, H, W] (contiguous) -> col [Cg·kh·kw, Ho·Wo].
template <class T>
void im2col(const T* POLYMATH_RESTRICT x, const Conv2dGeometry& g, T* POLYMATH_RESTRICT col) {
    const std::int64_t HW = g.H * g.W, HoWo = g.hw_out();
    for (std::int64_t c = 0; c < g.Cg; ++c)
        for (std::int64_t a = 0; a < g.kh; ++a)
            for (std::int64_t b = 0; b < g.kw; ++b) {
                T* row = col + ((c * g.kh + a) * g.kw + b) * HoWo;
                const std::int64_t off_w = b * g.dilation.w - g.padding.w;
                std::int64_t lo, hi;
                conv_valid_range(off_w, g.stride.w, g.W, g.Wo, lo, hi);
                for (std::int64_t oh = 0; oh < g.Ho; ++oh) {
                    T* r = row + oh * g.Wo;
                    const std::int64_t ih = oh * g.stride.h - g.padding.h + a * g.dilation.h;
                    if (ih < 0 || ih >= g.H) {
                        std::fill(r, r + g.Wo, T(0));
                        continue;
                    }
                    const T* xr = x + c * HW + ih * g.W + off_w;
                    std::fill(r, r + lo, T(0));
                    if (g.stride.w == 1) std::memcpy(r + lo, xr + lo, std::size_t(hi - lo) * sizeof(T));
                    else
                        for (std::int64_t ow = lo; ow < hi; ++ow) r[ow] = xr[ow * g.stride.w];
                    std::fill(r + hi, r + g.Wo, T(0));
                }
            }
}

// dx [Cg, H, W] += scatter of dcol [Cg·kh·kw, Ho·Wo] (the adjoint of im2col).
template <class T>
void col2im_add(const T* POLYMATH_RESTRICT col, const Conv2dGeometry& g, T* POLYMATH_RESTRICT dx) {
    const std::int64_t HW = g.H * g.W, HoWo = g.hw_out();
    for (std::int64_t c = 0; c < g.Cg; ++c)
        for (std::int64_t a = 0; a < g.kh; ++a)
            for (std::int64_t b = 0; b < g.kw; ++b) {
                const T* row = col + ((c * g.kh + a) * g.kw + b) * HoWo;
                const std::int64_t off_w = b * g.dilation.w - g.padding.w;
                std::int64_t lo, hi;
                conv_valid_range(off_w, g.stride.w, g.W, g.Wo, lo, hi);
                for (std::int64_t oh = 0; oh < g.Ho; ++oh) {
                    const std::int64_t ih = oh * g.stride.h - g.padding.h + a * g.dilation.h;
                    if (ih < 0 || ih >= g.H) continue;
                    const T* r = row + oh * g.Wo;
                    T* xr = dx + c * HW + ih * g.W + off_w;
                    if (g.stride.w == 1)
                        for (std::int64_t ow = lo; ow < hi; ++ow) xr[ow] += r[ow];
                    else
                        for (std::int64_t ow = lo; ow < hi; ++ow) xr[ow * g.stride.w] += r[ow];
                }
            }
}

// Runs item(i, threaded_gemm) for i in [0, n): in parallel with single-threaded
// GEMMs when there are enough items, else in order with threaded GEMMs.
template <class F>
void conv_for_items(std::int64_t n, double work_per_item, F&& item) {
    const int nt = num_threads();
    if (nt > 1 && n >= nt) {
        const std::int64_t grain = std::max<std::int64_t>(1, std::int64_t(kGemmSplitWork / std::max(work_per_item, 1.0)));
        parallel_for(0, n, grain, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i) item(i, false);
        });
    } else {
        for (std::int64_t i = 0; i < n; ++i) item(i, true);
    }
}

template <class T>
Tensor<T> conv2d_impl(const Tensor<T>& x_in, const Tensor<T>& w_in, const Tensor<T>& bias, const Conv2dGeometry& g) {
    Tensor<T> y = Tensor<T>::empty({g.N, g.O, g.Ho, g.Wo});
    if (y.numel() == 0) return y;
    const Tensor<T> x = x_in.contiguous(), w = w_in.contiguous();
    const Tensor<T> b = bias.defined() ? bias.contiguous() : bias;
    const std::int64_t CK = g.ck(), HoWo = g.hw_out(), HW = g.H * g.W;
    const T* xp = x.data();
    const T* wp = w.data();
    const T* bp = b.defined() ? b.data() : nullptr;
    T* yp = y.data();
    const bool direct = g.direct();
    conv_for_items(g.N * g.G, double(g.Og) * double(CK) * double(HoWo), [&](std::int64_t item, bool threaded) {
        const std::int64_t n = item / g.G, grp = item % g.G;
        const T* xg = xp + (n * g.C + grp * g.Cg) * HW;
        T* yg = yp + (n * g.O + grp * g.Og) * HoWo;
        if (bp)
            for (std::int64_t o = 0; o < g.Og; ++o) std::fill(yg + o * HoWo, yg + (o + 1) * HoWo, bp[grp * g.Og + o]);
        const T* col = xg;
        if (!direct) {
            T* c = conv_scratch<T, 0>(std::size_t(CK * HoWo));
            im2col(xg, g, c);
            col = c;
        }
        gemm2d<T>(g.Og, HoWo, CK, GemmOperand<T>{wp + grp * g.Og * CK, CK, false}, GemmOperand<T>{col, HoWo, false}, yg,
                  HoWo, T(1), bp ? T(1) : T(0), threaded);
    });
    return y;
}

template <class T>
struct ConvGradsT {
    Tensor<T> dx, dw, db;
};

template <class T>
ConvGradsT<T> conv2d_backward_impl(const Tensor<T>& g_in, const Tensor<T>& x_in, const Tensor<T>& w_in,
                                   const Conv2dGeometry& geo, bool need_dx, bool need_dw, bool need_db) {
    ConvGradsT<T> r;
    const Tensor<T> gy = g_in.contiguous(), x = x_in.contiguous(), w = w_in.contiguous();
    const std::int64_t CK = geo.ck(), HoWo = geo.hw_out(), HW = geo.H * geo.W;
    const T* gp = gy.data();
    const T* xp = x.data();
    const T* wp = w.data();
    const bool direct = geo.direct();
    if (need_db) {
        r.db = Tensor<T>::empty({geo.O});
        T* dbp = r.db.data();
        parallel_for(0, geo.O, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(1, geo.N * HoWo)),
                     [&](std::int64_t ob, std::int64_t oe) {
                         for (std::int64_t o = ob; o < oe; ++o) {
                             T acc = T(0);
                             for (std::int64_t n = 0; n < geo.N; ++n) acc += CVecMap<T>(gp + (n * geo.O + o) * HoWo, HoWo).sum();
                             dbp[o] = acc;
                         }
                     });
    }
    if (!need_dx && !need_dw) return r;
    if (need_dx) r.dx = Tensor<T>::zeros(x.shape());
    const std::int64_t wsize = geo.O * CK;
    // Fixed blocks of images (shapes only): dw partial sums per block, summed in order.
    std::int64_t nblocks = geo.N;
    if (need_dw)
        nblocks = std::max<std::int64_t>(
            1, std::min<std::int64_t>({geo.N, 16, (std::int64_t(1) << 22) / std::max<std::int64_t>(wsize, 1)}));
    Tensor<T> partial;
    if (need_dw) partial = Tensor<T>::zeros({std::max<std::int64_t>(nblocks, 1), geo.O, CK});
    T* dxp = need_dx ? r.dx.data() : nullptr;
    T* pp = need_dw ? partial.data() : nullptr;
    if (geo.N > 0 && HoWo > 0) {
        const std::int64_t per = conv_ceil_div(geo.N, nblocks);
        conv_for_items(nblocks, double(per) * double(geo.O) * double(CK) * double(HoWo), [&](std::int64_t blk, bool threaded) {
            const std::int64_t n0 = blk * per, n1 = std::min(geo.N, n0 + per);
            for (std::int64_t n = n0; n < n1; ++n)
                for (std::int64_t grp = 0; grp < geo.G; ++grp) {
                    const T* gg = gp + (n * geo.O + grp * geo.Og) * HoWo;
                    if (pp) {
                        const T* xg = xp + (n * geo.C + grp * geo.Cg) * HW;
                        const T* col = xg;
                        if (!direct) {
                            T* c = conv_scratch<T, 0>(std::size_t(CK * HoWo));
                            im2col(xg, geo, c);
                            col = c;
                        }
                        // dw_g += dy_g [Og, HoWo] · colᵀ [HoWo, CK]
                        gemm2d<T>(geo.Og, CK, HoWo, GemmOperand<T>{gg, HoWo, false}, GemmOperand<T>{col, HoWo, true},
                                  pp + (blk * geo.O + grp * geo.Og) * CK, CK, T(1), T(1), threaded);
                    }
                    if (dxp) {
                        // dcol [CK, HoWo] = w_gᵀ [CK, Og] · dy_g [Og, HoWo]
                        T* dxg = dxp + (n * geo.C + grp * geo.Cg) * HW;
                        const GemmOperand<T> wt{wp + grp * geo.Og * CK, CK, true};
                        if (direct) {
                            gemm2d<T>(CK, HoWo, geo.Og, wt, GemmOperand<T>{gg, HoWo, false}, dxg, HoWo, T(1), T(0), threaded);
                        } else {
                            T* dcol = conv_scratch<T, 1>(std::size_t(CK * HoWo));
                            gemm2d<T>(CK, HoWo, geo.Og, wt, GemmOperand<T>{gg, HoWo, false}, dcol, HoWo, T(1), T(0),
                                      threaded);
                            col2im_add(dcol, geo, dxg);
                        }
                    }
                }
        });
    }
    if (need_dw) {
        r.dw = Tensor<T>::empty(w.shape());
        T* dwp = r.dw.data();
        parallel_for(0, wsize, 16384, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i) {
                T acc = pp[i];
                for (std::int64_t blk = 1; blk < nblocks; ++blk) acc += pp[blk * wsize + i];
                dwp[i] = acc;
            }
        });
    }
    return r;
}

}  // namespace detail

template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias = {}, Int2 stride = 1, Int2 padding = 0,
                 Int2 dilation = 1, std::int64_t groups = 1) {
    x.check_defined("conv2d");
    w.check_defined("conv2d");
    POLYMATH_CHECK(x.dim() == 4 && w.dim() == 4, "conv2d", "expects input [N, C, H, W] and weight [O, C/groups, kh, kw], got shapes ",
                   x.shape(), " and ", w.shape());
    const detail::Conv2dGeometry g =
        detail::conv2d_geometry(x, w, bias, stride, padding, dilation, groups, "conv2d", x.shape(), w.shape());
    return detail::conv2d_impl(x, w, bias, g);
}

template <class T>
struct ConvGrads {
    Tensor<T> dx;  // shape of x (undefined when not requested)
    Tensor<T> dw;  // shape of w
    Tensor<T> db;  // [O]
};

// Gradients of conv2d from g = dL/dy [N, O, Ho, Wo].
template <class T>
ConvGrads<T> conv2d_backward(const Tensor<T>& g, const Tensor<T>& x, const Tensor<T>& w, Int2 stride = 1,
                             Int2 padding = 0, Int2 dilation = 1, std::int64_t groups = 1, bool need_dx = true,
                             bool need_dw = true, bool need_db = true) {
    x.check_defined("conv2d_backward");
    w.check_defined("conv2d_backward");
    g.check_defined("conv2d_backward");
    POLYMATH_CHECK(x.dim() == 4 && w.dim() == 4, "conv2d_backward",
                   "expects input [N, C, H, W] and weight [O, C/groups, kh, kw], got shapes ", x.shape(), " and ", w.shape());
    const detail::Conv2dGeometry geo = detail::conv2d_geometry(x, w, Tensor<T>(), stride, padding, dilation, groups,
                                                               "conv2d_backward", x.shape(), w.shape());
    const Shape ys{geo.N, geo.O, geo.Ho, geo.Wo};
    POLYMATH_CHECK(g.shape() == ys, "conv2d_backward", "gradient of shape ", g.shape(), " does not match the output shape ", ys);
    detail::ConvGradsT<T> r = detail::conv2d_backward_impl(g, x, w, geo, need_dx, need_dw, need_db);
    return {std::move(r.dx), std::move(r.dw), std::move(r.db)};
}

template <class T>
Tensor<T> conv1d(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias = {}, std::int64_t stride = 1,
                 std::int64_t padding = 0, std::int64_t dilation = 1, std::int64_t groups = 1) {
    x.check_defined("conv1d");
    w.check_defined("conv1d");
    POLYMATH_CHECK(x.dim() == 3 && w.dim() == 3, "conv1d", "expects input [N, C, L] and weight [O, C/groups, k], got shapes ",
                   x.shape(), " and ", w.shape());
    const Tensor<T> x4 = x.unsqueeze(2), w4 = w.unsqueeze(2);
    const detail::Conv2dGeometry g = detail::conv2d_geometry(x4, w4, bias, Int2(1, stride), Int2(0, padding),
                                                             Int2(1, dilation), groups, "conv1d", x.shape(), w.shape());
    return detail::conv2d_impl(x4, w4, bias, g).squeeze(2);
}

// Gradients of conv1d from g = dL/dy [N, O, Lo].
template <class T>
ConvGrads<T> conv1d_backward(const Tensor<T>& g, const Tensor<T>& x, const Tensor<T>& w, std::int64_t stride = 1,
                             std::int64_t padding = 0, std::int64_t dilation = 1, std::int64_t groups = 1,
                             bool need_dx = true, bool need_dw = true, bool need_db = true) {
    x.check_defined("conv1d_backward");
    w.check_defined("conv1d_backward");
    g.check_defined("conv1d_backward");
    POLYMATH_CHECK(x.dim() == 3 && w.dim() == 3, "conv1d_backward",
                   "expects input [N, C, L] and weight [O, C/groups, k], got shapes ", x.shape(), " and ", w.shape());
    const Tensor<T> x4 = x.unsqueeze(2), w4 = w.unsqueeze(2);
    const detail::Conv2dGeometry geo = detail::conv2d_geometry(x4, w4, Tensor<T>(), Int2(1, stride), Int2(0, padding),
                                                               Int2(1, dilation), groups, "conv1d_backward", x.shape(), w.shape());
    const Shape ys{geo.N, geo.O, geo.Wo};
    POLYMATH_CHECK(g.shape() == ys, "conv1d_backward", "gradient of shape ", g.shape(), " does not match the output shape ", ys);
    detail::ConvGradsT<T> r = detail::conv2d_backward_impl(g.unsqueeze(2), x4, w4, geo, need_dx, need_dw, need_db);
    ConvGrads<T> out;
    if (r.dx.defined()) out.dx = r.dx.squeeze(2);
    if (r.dw.defined()) out.dw = r.dw.squeeze(2);
    out.db = std::move(r.db);
    return out;
}

// ---------------------------------------------------------------------------
// depthwise_conv1d (channels-last)
// ---------------------------------------------------------------------------

namespace detail {

struct DepthwiseGeometry {
    std::int64_t N = 0, L = 0, C = 0, K = 0, d = 1, pad_left = 0, Lo = 0;
};

template <class T>
DepthwiseGeometry depthwise_geometry(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, std::int64_t dilation,
                                     PaddingMode mode, const char* op) {
    static_assert(MathDType<T>, "polymath convolutions compute in float or double; convert with .to<float>() first");
    x.check_defined(op);
    w.check_defined(op);
    POLYMATH_CHECK(x.dim() == 3 && w.dim() == 2, op, "expects input [N, L, C] and weight [K, C], got shapes ", x.shape(),
                   " and ", w.shape());
    POLYMATH_CHECK(w.shape()[1] == x.shape()[2], op, "weight of shape ", w.shape(), " does not match the ", x.shape()[2],
                   " channels of the input of shape ", x.shape(), " (channels-last [N, L, C])");
    POLYMATH_CHECK(w.shape()[0] >= 1, op, "weight of shape ", w.shape(), " has no taps");
    POLYMATH_CHECK(dilation >= 1, op, "dilation must be >= 1, got ", dilation);
    POLYMATH_CHECK(!bias.defined() || bias.shape() == (Shape{x.shape()[2]}), op, "bias of shape ", bias.shape(),
                   " does not match the ", x.shape()[2], " channels of the input of shape ", x.shape());
    DepthwiseGeometry g;
    g.N = x.shape()[0];
    g.L = x.shape()[1];
    g.C = x.shape()[2];
    g.K = w.shape()[0];
    g.d = dilation;
    const std::int64_t span = dilation * (g.K - 1);
    switch (mode) {
        case PaddingMode::Same:
            g.pad_left = span / 2;
            g.Lo = g.L;
            break;
        case PaddingMode::Causal:
            g.pad_left = span;
            g.Lo = g.L;
            break;
        case PaddingMode::Valid:
            POLYMATH_CHECK(g.L >= span + 1, op, "input of shape ", x.shape(), " is shorter than the dilated kernel (",
                           span + 1, " steps) of the weight of shape ", w.shape(), " with Valid padding");
            g.pad_left = 0;
            g.Lo = g.L - span;
            break;
    }
    return g;
}

inline constexpr std::int64_t kDepthwiseGrain = 32768;  // multiply-adds per task

}  // namespace detail

template <class T>
Tensor<T> depthwise_conv1d(const Tensor<T>& x_in, const Tensor<T>& w_in, const Tensor<T>& bias = {},
                           std::int64_t dilation = 1, PaddingMode padding = PaddingMode::Same) {
    const detail::DepthwiseGeometry g = detail::depthwise_geometry(x_in, w_in, bias, dilation, padding, "depthwise_conv1d");
    Tensor<T> y = Tensor<T>::empty({g.N, g.Lo, g.C});
    if (y.numel() == 0) return y;
    const Tensor<T> x = x_in.contiguous(), w = w_in.contiguous();
    const Tensor<T> b = bias.defined() ? bias.contiguous() : bias;
    const T* xp = x.data();
    const T* wp = w.data();
    const T* bp = b.defined() ? b.data() : nullptr;
    T* yp = y.data();
    const std::int64_t C = g.C;
    const std::int64_t grain = std::max<std::int64_t>(1, detail::kDepthwiseGrain / std::max<std::int64_t>(1, C * g.K));
    parallel_for(0, g.N * g.Lo, grain, [&](std::int64_t rb, std::int64_t re) {
        for (std::int64_t r = rb; r < re; ++r) {
            const std::int64_t n = r / g.Lo, t = r % g.Lo;
            VecMap<T> yr(yp + r * C, C);
            if (bp) yr = CVecMap<T>(bp, C);
            else yr.setZero();
            for (std::int64_t k = 0; k < g.K; ++k) {
                const std::int64_t s = t + k * g.d - g.pad_left;
                if (s < 0 || s >= g.L) continue;
                yr += CVecMap<T>(wp + k * C, C) * CVecMap<T>(xp + (n * g.L + s) * C, C);
            }
        }
    });
    return y;
}

// Gradients of depthwise_conv1d from g = dL/dy [N, Lo, C].
template <class T>
ConvGrads<T> depthwise_conv1d_backward(const Tensor<T>& g_in, const Tensor<T>& x_in, const Tensor<T>& w_in,
                                       std::int64_t dilation = 1, PaddingMode padding = PaddingMode::Same,
                                       bool need_dx = true, bool need_dw = true, bool need_db = true) {
    const detail::DepthwiseGeometry geo =
        detail::depthwise_geometry(x_in, w_in, Tensor<T>(), dilation, padding, "depthwise_conv1d_backward");
    g_in.check_defined("depthwise_conv1d_backward");
    const Shape ys{geo.N, geo.Lo, geo.C};
    POLYMATH_CHECK(g_in.shape() == ys, "depthwise_conv1d_backward", "gradient of shape ", g_in.shape(),
                   " does not match the output shape ", ys);
    const Tensor<T> gy = g_in.contiguous(), x = x_in.contiguous(), w = w_in.contiguous();
    const T* gp = gy.data();
    const T* xp = x.data();
    const T* wp = w.data();
    const std::int64_t C = geo.C, K = geo.K, L = geo.L, Lo = geo.Lo;
    ConvGrads<T> r;
    if (need_dx) {
        r.dx = Tensor<T>::empty(x.shape());
        T* dxp = r.dx.data();
        const std::int64_t grain = std::max<std::int64_t>(1, detail::kDepthwiseGrain / std::max<std::int64_t>(1, C * K));
        // dx[n, s, c] = sum_k w[k, c] · dy[n, s - k·d + pad_left, c]
        parallel_for(0, geo.N * L, grain, [&](std::int64_t rb, std::int64_t re) {
            for (std::int64_t row = rb; row < re; ++row) {
                const std::int64_t n = row / L, s = row % L;
                VecMap<T> dr(dxp + row * C, C);
                dr.setZero();
                for (std::int64_t k = 0; k < K; ++k) {
                    const std::int64_t t = s - k * geo.d + geo.pad_left;
                    if (t < 0 || t >= Lo) continue;
                    dr += CVecMap<T>(wp + k * C, C) * CVecMap<T>(gp + (n * Lo + t) * C, C);
                }
            }
        });
    }
    if (need_dw || need_db) {
        // Fixed blocks of output rows (shapes only) with partial [K + 1, C] sums
        // (K rows of dw, one of db), summed in block order.
        const std::int64_t rows = geo.N * Lo;
        const std::int64_t nblocks = std::clamp<std::int64_t>(rows * K * C / (4 * detail::kDepthwiseGrain), 1,
                                                              std::max<std::int64_t>(1, std::min<std::int64_t>(rows, 64)));
        const std::int64_t per = detail::conv_ceil_div(std::max<std::int64_t>(rows, 1), nblocks);
        const std::int64_t psz = (K + 1) * C;
        Tensor<T> partial = Tensor<T>::zeros({nblocks, K + 1, C});
        T* pp = partial.data();
        parallel_for(0, nblocks, 1, [&](std::int64_t bb, std::int64_t be) {
            for (std::int64_t blk = bb; blk < be; ++blk) {
                T* pw = pp + blk * psz;
                VecMap<T> pb(pw + K * C, C);
                const std::int64_t r1 = std::min(rows, (blk + 1) * per);
                for (std::int64_t row = blk * per; row < r1; ++row) {
                    const std::int64_t n = row / Lo, t = row % Lo;
                    const CVecMap<T> gr(gp + row * C, C);
                    if (need_db) pb += gr;
                    if (!need_dw) continue;
                    for (std::int64_t k = 0; k < K; ++k) {
                        const std::int64_t s = t + k * geo.d - geo.pad_left;
                        if (s < 0 || s >= L) continue;
                        VecMap<T>(pw + k * C, C) += gr * CVecMap<T>(xp + (n * L + s) * C, C);
                    }
                }
            }
        });
        Tensor<T> total = Tensor<T>::empty({K + 1, C});
        T* tp = total.data();
        VecMap<T> tot(tp, psz);
        tot = CVecMap<T>(pp, psz);
        for (std::int64_t blk = 1; blk < nblocks; ++blk) tot += CVecMap<T>(pp + blk * psz, psz);
        if (need_dw) r.dw = total.slice(0, 0, K).contiguous();
        if (need_db) r.db = total.select(0, K).contiguous();
    }
    return r;
}

}  // namespace polymath::ops
