// polymath/ops/dropout.hpp — inverted dropout on the Philox stream (no autograd).
//
//   dropout(x, p, training, gen = default_generator())
//
// A draw reserves numel(x) values of gen's stream (offset = gen.reserve(n));
// element j (row-major order of x) is kept when
//     philox_uniform_float(gen.seed(), offset + j) >= float(p)
// and kept values are scaled by 1 / (1 - p). This is a pure function of
// (seed, offset, j), so the CUDA backend draws the same mask. p must be in
// [0, 1]: p == 1 gives all zeros, p == 0 or training == false returns x
// unchanged (neither consumes the generator).
//
// dropout_forward also returns the mask (uint8, 1 = kept) for the backward:
// dropout_backward(g, mask, p) = g * mask / (1 - p). dropout_mask(shape, p,
// seed, offset) regenerates the mask of a draw.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "polymath/core/philox.hpp"
#include "polymath/ops/elementwise.hpp"

namespace polymath::ops {

namespace detail {

inline constexpr std::int64_t kDropoutGrain = 16384;

inline void check_dropout_p(double p, const char* op) {
    POLYMATH_CHECK(p >= 0.0 && p <= 1.0, op, "probability p must be in [0, 1], got ", p);
}

// Words of the Philox stream at positions [64 g, 64 g + 64) (16 blocks):
// out[4 l + w] = word w of block 16 g + l, i.e. philox_u32(seed, 64 g + 4 l + w).
// The lane loop has no cross-lane dependence, so the compiler vectorises the
// 10 rounds over the 16 blocks (about 10x faster than block-at-a-time).
POLYMATH_ALWAYS_INLINE void philox_words64(std::uint64_t seed, std::uint64_t g, std::uint32_t (&out)[64]) {
    std::uint32_t c0[16], c1[16], c2[16], c3[16];
    for (int l = 0; l < 16; ++l) {
        const std::uint64_t blk = g * 16 + std::uint64_t(l);
        c0[l] = static_cast<std::uint32_t>(blk);
        c1[l] = static_cast<std::uint32_t>(blk >> 32);
        c2[l] = 0;
        c3[l] = 0;
    }
    std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {  // philox4x32_10, lane-parallel
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        for (int l = 0; l < 16; ++l) {
            const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c0[l];
            const std::uint64_t p1 = std::uint64_t(0xCD9E8D57u) * c2[l];
            const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
            const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = static_cast<std::uint32_t>(p1);
            c3[l] = static_cast<std::uint32_t>(p0);
            c0[l] = n0;
            c2[l] = n2;
        }
    }
    for (int l = 0; l < 16; ++l) {
        out[4 * l + 0] = c0[l];
        out[4 * l + 1] = c1[l];
        out[4 * l + 2] = c2[l];
        out[4 * l + 3] = c3[l];
    }
}

// "u >= p" in integers: u = (w >> 8) * 2^-24 is exact in float, so
// u >= pf  <=>  w >= ceil(pf * 2^24) * 2^8. The result can be 2^32 (pf == 1:
// nothing is kept).
inline std::uint64_t dropout_threshold(float pf) {
    return static_cast<std::uint64_t>(std::ceil(double(pf) * 16777216.0)) << 8;
}

// f(i0, w, n) for the element range [b, e) in pieces of at most 64: element
// i0 + k (k < n) of the draw uses stream word w[k] = philox_u32(seed, offset + i0 + k).
// Pieces inside the range are whole 64-word groups of the stream (n == 64).
template <class F>
POLYMATH_ALWAYS_INLINE void dropout_words(std::uint64_t seed, std::uint64_t offset, std::int64_t b, std::int64_t e,
                                          F&& f) {
    std::uint32_t words[64];
    std::uint64_t j = offset + std::uint64_t(b);
    const std::uint64_t jend = offset + std::uint64_t(e);
    while (j < jend) {
        const std::uint64_t g = j / 64, hi = std::min(jend, g * 64 + 64);
        philox_words64(seed, g, words);
        f(static_cast<std::int64_t>(j - offset), words + (j - g * 64), static_cast<std::int64_t>(hi - j));
        j = hi;
    }
}

// y = x * (keep ? scale : 0) and mask = keep over n elements (constant n
// vectorises: the pointers are restrict-qualified, the trip count fixed).
template <class T, class N>
POLYMATH_ALWAYS_INLINE void dropout_apply(const std::uint32_t* POLYMATH_RESTRICT w, std::uint32_t thr,
                                          const T* POLYMATH_RESTRICT x, T* POLYMATH_RESTRICT y,
                                          std::uint8_t* POLYMATH_RESTRICT m, T scale, N n) {
    for (std::int64_t k = 0; k < std::int64_t(n); ++k) {
        const bool keep = w[k] >= thr;
        m[k] = static_cast<std::uint8_t>(keep);
        y[k] = x[k] * (keep ? scale : T(0));  // a product, not a branch: vectorises (and inf * 0 = NaN, as torch)
    }
}
template <class N>
POLYMATH_ALWAYS_INLINE void dropout_mask_apply(const std::uint32_t* POLYMATH_RESTRICT w, std::uint32_t thr,
                                               std::uint8_t* POLYMATH_RESTRICT m, N n) {
    for (std::int64_t k = 0; k < std::int64_t(n); ++k) m[k] = static_cast<std::uint8_t>(w[k] >= thr);
}
template <class T, class N>
POLYMATH_ALWAYS_INLINE void dropout_grad_apply(const T* POLYMATH_RESTRICT g, const std::uint8_t* POLYMATH_RESTRICT m,
                                               T* POLYMATH_RESTRICT o, T scale, N n) {
    for (std::int64_t k = 0; k < std::int64_t(n); ++k) o[k] = g[k] * (m[k] ? scale : T(0));
}
using Chunk64 = std::integral_constant<std::int64_t, 64>;

}  // namespace detail

// Mask of the draw (seed, offset) over `shape`: 1 where kept.
inline Tensor<std::uint8_t> dropout_mask(const Shape& shape, double p, std::uint64_t seed, std::uint64_t offset) {
    detail::check_dropout_p(p, "dropout_mask");
    Tensor<std::uint8_t> m = Tensor<std::uint8_t>::empty(shape);
    std::uint8_t* mp = m.data();
    const std::uint64_t thr = detail::dropout_threshold(static_cast<float>(p));
    if (thr > 0xFFFFFFFFu) return m.fill_(0);
    parallel_for(0, m.numel(), detail::kDropoutGrain, [&](std::int64_t b, std::int64_t e) {
        detail::dropout_words(seed, offset, b, e, [&](std::int64_t i0, const std::uint32_t* w, std::int64_t n) {
            if (n == 64) detail::dropout_mask_apply(w, std::uint32_t(thr), mp + i0, detail::Chunk64());
            else detail::dropout_mask_apply(w, std::uint32_t(thr), mp + i0, n);
        });
    });
    return m;
}

template <class T>
struct DropoutForward {
    Tensor<T> y;
    Tensor<std::uint8_t> mask;  // 1 = kept (shape of x)
    std::uint64_t seed = 0, offset = 0;
};

// Training-mode dropout: y and the mask. p == 0 keeps everything and p == 1
// drops everything, neither drawing from gen.
template <class T>
DropoutForward<T> dropout_forward(const Tensor<T>& x_in, double p, Generator& gen = default_generator()) {
    static_assert(MathDType<T>, "polymath dropout computes in float or double; convert with .to<float>() first");
    x_in.check_defined("dropout");
    detail::check_dropout_p(p, "dropout");
    const Tensor<T> x = x_in.contiguous();
    DropoutForward<T> out;
    const std::int64_t n = x.numel();
    if (p == 0.0) {
        out.y = x.clone();
        out.mask = Tensor<std::uint8_t>::full(x.shape(), 1);
        return out;
    }
    if (p == 1.0) {
        out.y = Tensor<T>::zeros(x.shape());
        out.mask = Tensor<std::uint8_t>::zeros(x.shape());
        return out;
    }
    out.seed = gen.seed();
    out.offset = gen.reserve(static_cast<std::uint64_t>(n));
    out.y = Tensor<T>::empty(x.shape());
    out.mask = Tensor<std::uint8_t>::empty(x.shape());
    const T* xp = x.data();
    T* yp = out.y.data();
    std::uint8_t* mp = out.mask.data();
    const std::uint64_t thr = detail::dropout_threshold(static_cast<float>(p));
    if (thr > 0xFFFFFFFFu) {  // float(p) == 1: the rule keeps nothing
        out.y.fill_(T(0));
        out.mask.fill_(0);
        return out;
    }
    const T scale = T(1.0 / (1.0 - p));
    const std::uint64_t seed = out.seed, off = out.offset;
    parallel_for(0, n, detail::kDropoutGrain, [&](std::int64_t b, std::int64_t e) {
        detail::dropout_words(seed, off, b, e, [&](std::int64_t i0, const std::uint32_t* w, std::int64_t len) {
            if (len == 64) detail::dropout_apply(w, std::uint32_t(thr), xp + i0, yp + i0, mp + i0, scale, detail::Chunk64());
            else detail::dropout_apply(w, std::uint32_t(thr), xp + i0, yp + i0, mp + i0, scale, len);
        });
    });
    return out;
}

template <class T>
Tensor<T> dropout(const Tensor<T>& x, double p, bool training, Generator& gen = default_generator()) {
    x.check_defined("dropout");
    detail::check_dropout_p(p, "dropout");
    if (!training || p == 0.0) return x;
    return dropout_forward(x, p, gen).y;
}

// g * mask / (1 - p) (zeros when p == 1; like torch, a dropped inf or NaN
// gradient gives NaN).
template <class T>
Tensor<T> dropout_backward(const Tensor<T>& g_in, const Tensor<std::uint8_t>& mask_in, double p) {
    g_in.check_defined("dropout_backward");
    mask_in.check_defined("dropout_backward");
    detail::check_dropout_p(p, "dropout_backward");
    POLYMATH_CHECK(g_in.shape() == mask_in.shape(), "dropout_backward", "gradient of shape ", g_in.shape(),
                   " does not match the mask shape ", mask_in.shape());
    if (p == 1.0) return Tensor<T>::zeros(g_in.shape());
    const Tensor<T> g = g_in.contiguous();
    const Tensor<std::uint8_t> mask = mask_in.contiguous();
    Tensor<T> gx = Tensor<T>::empty(g.shape());
    const T scale = T(1.0 / (1.0 - p));
    const T* gp = g.data();
    const std::uint8_t* mp = mask.data();
    T* op = gx.data();
    parallel_for(0, g.numel(), kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
        std::int64_t i = b;
        for (; i + 64 <= e; i += 64) detail::dropout_grad_apply(gp + i, mp + i, op + i, scale, detail::Chunk64());
        detail::dropout_grad_apply(gp + i, mp + i, op + i, scale, e - i);
    });
    return gx;
}

}  // namespace polymath::ops
