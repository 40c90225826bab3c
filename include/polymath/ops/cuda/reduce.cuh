// polymath/ops/cuda/reduce.cuh — reductions on Tensor<T, Cuda> over any set of
// axes with keepdim (sum, mean, amax, amin, var), argmax, and sum_to (the
// backward of broadcasting). Same names, arguments and semantics as
// ops/reduce.hpp: an empty axes list means all axes; amax / amin propagate
// NaN; argmax takes the first index on ties and counts NaN as the largest
// (the first NaN wins); sum over an empty range is 0, while mean, var, amax,
// amin and argmax over one throw.
//
// dtypes: float and double; bfloat16 / half are stored and accumulated in
// float (one rounding at the end). argmax takes every dtype.
//
// Like the CPU, every reduction is brought to [O, R, I] (O outer, R reduced,
// I inner; a non-contiguous set of axes is permuted to the end and the input
// made contiguous). Kernels (namespace polymath::ops::cuda_kernels):
//  * reduce_warp_rows  (I == 1, R <= 256): one warp per row, lanes stride the
//    row, shuffle tree. Many short rows (softmax-like statistics).
//  * reduce_block_rows (I == 1): one 512-thread block per (row, chunk); each
//    thread strides the chunk (coalesced), warp shuffles then one warp over
//    the per-warp partials in shared memory.
//  * reduce_cols       (I > 1): a 32 x 8 block owns 32 adjacent columns i of
//    one o; the 32 lanes of a warp read 32 consecutive elements of a row
//    (coalesced along I), the 8 warps split R, then combine through shared
//    memory in a fixed order.
// When the natural grid is too small to fill the GPU (few long rows, e.g. a
// full sum or [100000, 5] over axis 0), R is cut into C chunks: pass 1 writes
// partial states [O, C, I] to a pool buffer, pass 2 reduces them as a new
// [O, C, I] problem. Every combination order is fixed: results are
// deterministic run to run (no atomics).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::ops {
namespace cuda_kernels {

using std::int64_t;

// ---- reducers: State, identity, make(value, r), combine, finish ------------------------

template <class S>
__device__ __forceinline__ S shfl_down_any(S v, int off) {
    if constexpr (std::is_integral_v<S> && sizeof(S) < 4)
        return static_cast<S>(__shfl_down_sync(0xffffffffu, static_cast<int>(v), off));
    else
        return __shfl_down_sync(0xffffffffu, v, off);
}

template <class A>
struct SumRed {
    using State = A;
    __device__ static State identity() { return A(0); }
    __device__ static State make(A v, int64_t) { return v; }
    __device__ static State combine(State a, State b) { return a + b; }
    __device__ static State shfl_down(State s, int off) { return shfl_down_any(s, off); }
    template <class Out>
    __device__ static Out finish(State s, A scale) {
        return static_cast<Out>(s * scale);
    }
};
template <class A>
struct MaxRed {
    using State = A;
    __device__ static State identity() { return A(-INFINITY); }
    __device__ static State make(A v, int64_t) { return v; }
    __device__ static State combine(State a, State b) { return (a != a || a > b) ? a : b; }  // NaN wins
    __device__ static State shfl_down(State s, int off) { return shfl_down_any(s, off); }
    template <class Out>
    __device__ static Out finish(State s, A) {
        return static_cast<Out>(s);
    }
};
template <class A>
struct MinRed {
    using State = A;
    __device__ static State identity() { return A(INFINITY); }
    __device__ static State make(A v, int64_t) { return v; }
    __device__ static State combine(State a, State b) { return (a != a || a < b) ? a : b; }
    __device__ static State shfl_down(State s, int off) { return shfl_down_any(s, off); }
    template <class Out>
    __device__ static Out finish(State s, A) {
        return static_cast<Out>(s);
    }
};
template <class A>
struct ArgState {
    A v;
    int64_t i;  // -1: no element yet
};
template <class A>
struct ArgmaxRed {
    using State = ArgState<A>;
    __device__ static State identity() { return State{A(0), -1}; }
    __device__ static State make(A v, int64_t r) { return State{v, r}; }
    // Associative and commutative: NaN beats numbers, larger beats smaller, the lower index breaks ties.
    __device__ static State combine(State a, State b) {
        if (a.i < 0) return b;
        if (b.i < 0) return a;
        const bool an = a.v != a.v, bn = b.v != b.v;
        if (an || bn) {
            if (an && bn) return a.i < b.i ? a : b;
            return an ? a : b;
        }
        if (a.v > b.v) return a;
        if (b.v > a.v) return b;
        return a.i < b.i ? a : b;
    }
    __device__ static State shfl_down(State s, int off) {
        return State{shfl_down_any(s.v, off), shfl_down_any(s.i, off)};
    }
    template <class Out>
    __device__ static Out finish(State s, A) {
        return static_cast<Out>(s.i);
    }
};

// ---- loads and stores in [O, R, I] ------------------------------------------------------

struct NoPre {
    template <class A>
    __device__ A operator()(A v, int64_t) const { return v; }
};
template <class A>
struct SqDiffPre {  // (v - center[o, i])^2, var's second pass
    const A* center;
    __device__ A operator()(A v, int64_t k) const {
        const A d = v - center[k];
        return d * d;
    }
};
template <class T, class Red, class Pre>
struct SrcLoad {
    const T* x;
    int64_t R, I;
    Pre pre;
    __device__ typename Red::State operator()(int64_t o, int64_t r, int64_t i) const {
        using A = cuda::compute_t<T>;
        return Red::make(pre(static_cast<A>(x[(o * R + r) * I + i]), o * I + i), r);
    }
};
template <class S>
struct PartLoad {
    const S* p;
    int64_t C, I;
    __device__ S operator()(int64_t o, int64_t c, int64_t i) const { return p[(o * C + c) * I + i]; }
};
template <class S>
struct PartStore {
    S* p;
    int64_t C, I;
    __device__ void operator()(int64_t o, int64_t c, int64_t i, S s) const { p[(o * C + c) * I + i] = s; }
};
template <class Out, class Red, class A>
struct FinalStore {
    Out* y;
    int64_t I;
    A scale;
    __device__ void operator()(int64_t o, int64_t, int64_t i, typename Red::State s) const {
        y[o * I + i] = Red::template finish<Out>(s, scale);
    }
};

// Lane 0 ends with the combination of all 32 lanes' states (every lane must take part).
template <class Red>
__device__ __forceinline__ typename Red::State warp_reduce(typename Red::State s) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s = Red::combine(s, Red::shfl_down(s, off));
    return s;
}

inline constexpr int kRowThreads = 512;

template <class Red, class Load, class Store>
__global__ void __launch_bounds__(cuda::kThreads) reduce_warp_rows(Load ld, Store st, int64_t O, int64_t R) {
    const int lane = int(threadIdx.x & 31);
    const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;
    const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
    for (int64_t o = warp; o < O; o += nwarps) {  // warp-uniform
        typename Red::State acc = Red::identity();
        for (int64_t r = lane; r < R; r += 32) acc = Red::combine(acc, ld(o, r, 0));
        acc = warp_reduce<Red>(acc);
        if (lane == 0) st(o, 0, 0, acc);
    }
}

template <class Red, class Load, class Store>
__global__ void __launch_bounds__(kRowThreads)
    reduce_block_rows(Load ld, Store st, int64_t O, int64_t R, int64_t C, int64_t len) {
    __shared__ typename Red::State sh[32];
    const int lane = int(threadIdx.x & 31), wid = int(threadIdx.x >> 5), nw = int(blockDim.x >> 5);
    for (int64_t b = blockIdx.x; b < O * C; b += gridDim.x) {  // block-uniform
        const int64_t o = b / C, c = b - o * C;
        const int64_t lo = c * len, hi = lo + len < R ? lo + len : R;
        typename Red::State acc = Red::identity();
#pragma unroll 4
        for (int64_t r = lo + threadIdx.x; r < hi; r += blockDim.x) acc = Red::combine(acc, ld(o, r, 0));
        acc = warp_reduce<Red>(acc);
        if (lane == 0) sh[wid] = acc;
        __syncthreads();
        if (wid == 0) {
            acc = lane < nw ? sh[lane] : Red::identity();
            acc = warp_reduce<Red>(acc);
            if (lane == 0) st(o, c, 0, acc);
        }
        __syncthreads();  // sh is reused by the next row
    }
}

template <class Red, class Load, class Store>
__global__ void __launch_bounds__(256)
    reduce_cols(Load ld, Store st, int64_t O, int64_t R, int64_t I, int64_t C, int64_t len) {
    __shared__ typename Red::State sh[8][33];
    const int tx = int(threadIdx.x), ty = int(threadIdx.y);  // blockDim = (32, 8)
    const int64_t nib = (I + 31) / 32;
    const int64_t tiles = nib * O * C;
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {  // block-uniform
        const int64_t ib = t % nib, oc = t / nib;
        const int64_t c = oc % C, o = oc / C;
        const int64_t i = ib * 32 + tx;
        const int64_t lo = c * len, hi = lo + len < R ? lo + len : R;
        typename Red::State acc = Red::identity();
        if (i < I) {
#pragma unroll 4
            for (int64_t r = lo + ty; r < hi; r += 8) acc = Red::combine(acc, ld(o, r, i));
        }
        sh[ty][tx] = acc;
        __syncthreads();
        if (ty == 0 && i < I) {
            typename Red::State s = sh[0][tx];
#pragma unroll
            for (int k = 1; k < 8; ++k) s = Red::combine(s, sh[k][tx]);
            st(o, c, i, s);
        }
        __syncthreads();
    }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One pass over [O, R, I] in C chunks of len along R (C == 1: whole rows).
template <class Red, class Load, class Store>
void reduce_pass(const Load& ld, const Store& st, int64_t O, int64_t R, int64_t I, int64_t C, int64_t len) {
    const cudaStream_t s = cuda::current_stream();
    const int64_t cap = int64_t(cuda::multiprocessor_count()) * 32;
    if (I == 1 && C == 1 && R <= 256) {
        reduce_warp_rows<Red><<<cuda::grid_for(O * 32), cuda::kThreads, 0, s>>>(ld, st, O, R);
        POLYMATH_CUDA_CHECK_LAUNCH("reduce_warp_rows");
    } else if (I == 1) {
        reduce_block_rows<Red><<<unsigned(std::min(O * C, cap)), kRowThreads, 0, s>>>(ld, st, O, R, C, len);
        POLYMATH_CUDA_CHECK_LAUNCH("reduce_block_rows");
    } else {
        reduce_cols<Red><<<unsigned(std::min(ceil_div(I, 32) * O * C, cap)), dim3(32, 8), 0, s>>>(ld, st, O, R, I, C,
                                                                                                  len);
        POLYMATH_CUDA_CHECK_LAUNCH("reduce_cols");
    }
}

// y[o * I + i] = finish(reduce_r pre(x[o, r, i])). O * I > 0.
template <class Red, class Out, class T, class Pre, class A>
void reduce_ori(const T* x, int64_t O, int64_t R, int64_t I, Out* y, A scale, Pre pre) {
    using S = typename Red::State;
    const int64_t target = int64_t(cuda::multiprocessor_count()) * 8;  // blocks that fill the GPU
    int64_t C = 1;
    if (I == 1) {
        if (R > 4096 && O < target) C = std::min(ceil_div(2 * target, O), ceil_div(R, 2048));
    } else {
        const int64_t base = ceil_div(I, 32) * O;
        if (R > 64 && base < target) C = std::min(ceil_div(2 * target, base), ceil_div(R, 32));
    }
    C = std::max<int64_t>(1, std::min<int64_t>(C, 1024));
    const int64_t len = std::max<int64_t>(1, ceil_div(R, C));
    C = std::max<int64_t>(1, ceil_div(R, len));
    const SrcLoad<T, Red, Pre> ld{x, R, I, pre};
    const FinalStore<Out, Red, A> fin{y, I, scale};
    if (C == 1) {
        reduce_pass<Red>(ld, fin, O, R, I, 1, len);
        return;
    }
    // Partial states [O, C, I] in a pool buffer (stream-ordered: freed after pass 2 is queued).
    const Tensor<std::uint8_t, Cuda> buf = Tensor<std::uint8_t, Cuda>::empty({O * C * I * int64_t(sizeof(S))});
    S* part = reinterpret_cast<S*>(buf.data());
    reduce_pass<Red>(ld, PartStore<S>{part, C, I}, O, R, I, C, len);
    reduce_pass<Red>(PartLoad<S>{part, C, I}, fin, O, C, I, 1, C);
}

// ---- axes (as ops/reduce.hpp; own copies, the CPU header needs Eigen) -------------------

inline std::vector<int> normalize_axes(const std::vector<int64_t>& axes, int ndim, const char* op) {
    std::vector<int> out;
    if (axes.empty()) {
        out.resize(static_cast<std::size_t>(ndim));
        std::iota(out.begin(), out.end(), 0);
        return out;
    }
    for (auto a : axes) out.push_back(normalize_axis(a, ndim, op));
    std::sort(out.begin(), out.end());
    for (std::size_t i = 1; i < out.size(); ++i)
        POLYMATH_CHECK(out[i] != out[i - 1], op, "axis ", out[i], " repeated in the reduction axes");
    if (ndim == 0) out.clear();
    return out;
}
inline Shape reduced_shape(const Shape& s, const std::vector<int>& axes, bool keepdim) {
    Shape out;
    std::size_t k = 0;
    for (int d = 0; d < s.size(); ++d) {
        const bool red = k < axes.size() && axes[k] == d;
        if (red) ++k;
        if (!red)
            out.push_back(s[d]);
        else if (keepdim)
            out.push_back(1);
    }
    return out;
}

template <class T>
struct OriCuda {
    Tensor<T, Cuda> x;  // contiguous
    int64_t O = 1, R = 1, I = 1;
};
template <class T>
OriCuda<T> to_ori(const Tensor<T, Cuda>& x, const std::vector<int>& axes) {
    OriCuda<T> r;
    const int nd = x.dim();
    const bool block = axes.empty() || axes.back() - axes.front() + 1 == static_cast<int>(axes.size());
    Tensor<T, Cuda> src = x;
    std::vector<int> red = axes;
    if (!block) {  // move the reduced axes to the end
        std::vector<int64_t> perm;
        std::size_t k = 0;
        for (int d = 0; d < nd; ++d) {
            if (k < axes.size() && axes[k] == d) {
                ++k;
                continue;
            }
            perm.push_back(d);
        }
        for (int a : axes) perm.push_back(a);
        src = x.permute(perm);
        red.clear();
        for (int i = nd - static_cast<int>(axes.size()); i < nd; ++i) red.push_back(i);
    }
    r.x = src.contiguous();
    if (red.empty()) {
        r.O = r.x.numel();
        return r;
    }
    for (int d = 0; d < red.front(); ++d) r.O *= r.x.shape()[d];
    for (int a : red) r.R *= r.x.shape()[a];
    for (int d = red.back() + 1; d < nd; ++d) r.I *= r.x.shape()[d];
    return r;
}

template <class T>
void check_reduce_dtype() {
    static_assert(FloatingDType<T>,
                  "polymath CUDA reductions compute in float or double (bfloat16 / half accumulate in float); "
                  "convert with .to<float>() first");
}

template <class T>
int64_t reduced_count(const Tensor<T, Cuda>& x, const std::vector<int64_t>& axes, const char* op) {
    int64_t n = 1;
    for (int a : normalize_axes(axes, x.dim(), op)) n *= x.shape()[a];
    return n;
}

// sum (scale 1), mean (scale 1 / n), amax, amin.
template <template <class> class RedT, class T>
Tensor<T, Cuda> reduce(const char* name, bool needs_nonempty, const Tensor<T, Cuda>& x,
                       const std::vector<int64_t>& axes, bool keepdim, double scale = 1.0) {
    check_reduce_dtype<T>();
    x.check_defined(name);
    using A = cuda::compute_t<T>;
    const std::vector<int> ax = normalize_axes(axes, x.dim(), name);
    const OriCuda<T> ori = to_ori(x, ax);
    if (needs_nonempty)
        POLYMATH_CHECK(ori.R > 0 || ori.O * ori.I == 0, name, "cannot reduce over an empty range (shape ", x.shape(),
                       ")");
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(reduced_shape(x.shape(), ax, keepdim));
    if (out.numel() > 0) reduce_ori<RedT<A>>(ori.x.data(), ori.O, ori.R, ori.I, out.data(), A(scale), NoPre{});
    return out;
}

}  // namespace cuda_kernels

template <class T>
Tensor<T, Cuda> sum(const Tensor<T, Cuda>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    return cuda_kernels::reduce<cuda_kernels::SumRed>("sum", false, x, axes, keepdim);
}
template <class T>
Tensor<T, Cuda> amax(const Tensor<T, Cuda>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    return cuda_kernels::reduce<cuda_kernels::MaxRed>("max", true, x, axes, keepdim);
}
template <class T>
Tensor<T, Cuda> amin(const Tensor<T, Cuda>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    return cuda_kernels::reduce<cuda_kernels::MinRed>("min", true, x, axes, keepdim);
}
// The sum times 1 / n (the scale applied in the kernel's final store, in the compute type).
template <class T>
Tensor<T, Cuda> mean(const Tensor<T, Cuda>& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false) {
    cuda_kernels::check_reduce_dtype<T>();
    x.check_defined("mean");
    const std::int64_t n = cuda_kernels::reduced_count(x, axes, "mean");
    POLYMATH_CHECK(n > 0, "mean", "cannot average over an empty range (shape ", x.shape(), ")");
    using A = cuda::compute_t<T>;
    return cuda_kernels::reduce<cuda_kernels::SumRed>("sum", false, x, axes, keepdim, double(A(1) / A(n)));
}
// Variance with Bessel-style `correction` (1: unbiased, like torch.var). Two
// passes like the CPU: the mean per output (kept in the compute type), then
// the scaled sum of squared deviations, fused into the reduction's loads.
template <class T>
Tensor<T, Cuda> var(const Tensor<T, Cuda>& x, const std::vector<std::int64_t>& axes = {}, std::int64_t correction = 1,
                    bool keepdim = false) {
    cuda_kernels::check_reduce_dtype<T>();
    x.check_defined("var");
    const std::int64_t n = cuda_kernels::reduced_count(x, axes, "var");
    POLYMATH_CHECK(n - correction > 0, "var", "needs more than ", correction, " elements per reduction, got ", n,
                   " (shape ", x.shape(), ")");
    using A = cuda::compute_t<T>;
    const std::vector<int> ax = cuda_kernels::normalize_axes(axes, x.dim(), "var");
    const cuda_kernels::OriCuda<T> ori = cuda_kernels::to_ori(x, ax);
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(cuda_kernels::reduced_shape(x.shape(), ax, keepdim));
    if (out.numel() == 0) return out;
    const Tensor<A, Cuda> m = Tensor<A, Cuda>::empty({ori.O * ori.I});
    cuda_kernels::reduce_ori<cuda_kernels::SumRed<A>>(ori.x.data(), ori.O, ori.R, ori.I, m.data(), A(1) / A(n),
                                                      cuda_kernels::NoPre{});
    cuda_kernels::reduce_ori<cuda_kernels::SumRed<A>>(ori.x.data(), ori.O, ori.R, ori.I, out.data(),
                                                      A(1) / A(n - correction), cuda_kernels::SqDiffPre<A>{m.data()});
    return out;
}

// Index of the largest element along `axis` (first one on ties; NaN counts as largest).
template <class T>
Tensor<std::int64_t, Cuda> argmax(const Tensor<T, Cuda>& x, std::int64_t axis, bool keepdim = false) {
    x.check_defined("argmax");
    const int a = normalize_axis(axis, x.dim(), "argmax");
    const std::vector<int> ax = x.dim() ? std::vector<int>{a} : std::vector<int>{};
    const cuda_kernels::OriCuda<T> ori = cuda_kernels::to_ori(x, ax);
    POLYMATH_CHECK(ori.R > 0 || ori.O * ori.I == 0, "argmax", "cannot take argmax over an empty axis (shape ",
                   x.shape(), ")");
    Tensor<std::int64_t, Cuda> out =
        Tensor<std::int64_t, Cuda>::empty(cuda_kernels::reduced_shape(x.shape(), ax, keepdim));
    using A = cuda::compute_t<T>;
    if (out.numel() > 0)
        cuda_kernels::reduce_ori<cuda_kernels::ArgmaxRed<A>>(ori.x.data(), ori.O, ori.R, ori.I, out.data(), A(1),
                                                             cuda_kernels::NoPre{});
    return out;
}

// Sums a broadcast result back to `shape` (the backward of broadcasting).
template <class T>
Tensor<T, Cuda> sum_to(const Tensor<T, Cuda>& g, const Shape& shape) {
    if (g.shape() == shape) return g;
    const int lead = g.dim() - shape.size();
    POLYMATH_CHECK(lead >= 0, "sum_to", "cannot reduce shape ", g.shape(), " to ", shape);
    std::vector<std::int64_t> axes;
    for (int d = 0; d < g.dim(); ++d) {
        if (d < lead) {
            axes.push_back(d);
            continue;
        }
        const std::int64_t want = shape[d - lead];
        if (want == 1 && g.shape()[d] != 1) axes.push_back(d);
        else
            POLYMATH_CHECK(want == g.shape()[d], "sum_to", "cannot reduce shape ", g.shape(), " to ", shape);
    }
    if (axes.empty()) return g.reshape(shape);
    return sum(g, axes, true).reshape(shape);
}

}  // namespace polymath::ops
