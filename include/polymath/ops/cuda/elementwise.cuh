// polymath/ops/cuda/elementwise.cuh — elementwise ops on Tensor<T, Cuda>:
// the unary math of ops/unary.hpp (forward and backward), the broadcasting
// binary ops of ops/arith.hpp, ops/binary_math.hpp and ops/compare.hpp (with
// their backward kernels), and polymath::cuda::map, a fused user-defined
// elementwise kernel.
//
// Same names, argument order and semantics as the CPU ops (overloads on
// Tensor<T, Cuda>); results are new contiguous device tensors. dtypes: float
// and double compute in themselves; bfloat16 / half are storage types that
// compute in float (cuda::compute_t) and round once on the store. Arithmetic
// and comparisons also take the integer dtypes, like the CPU ops.
//
// Kernels (namespace polymath::ops::cuda_kernels), both grid-stride loops:
//  * map_contiguous — every operand contiguous with the output's shape (the
//    common case). When all pointers are aligned, each thread moves 16 bytes
//    of the widest operand per load (float4 for float, 2 doubles, 8 halves)
//    through an aligned vector struct, then the remaining tail elementwise.
//  * map_strided — broadcasting and non-contiguous operands. Size-1 dims are
//    dropped and dims that are contiguous in every operand are merged on the
//    host first, so the row-major index is decomposed into few dims, ONCE for
//    all operands (a StridedIndexer per operand would repeat the divisions per
//    operand); 32-bit index math when every offset fits (64-bit division is
//    several times slower), 64-bit otherwise.
// No host synchronisation; everything runs on cuda::current_stream().
//
// Mixing a host and a device tensor in one binary op does not compile: the
// mixed overloads below are deleted, and the compiler points at the line
// saying to move one operand with .to<polymath::Cuda>().
//
// gelu's `approximate`: GeluApprox is defined by ops/unary.hpp (which pulls in
// Eigen, not for .cu files). It is declared here opaquely (`enum class
// GeluApprox;`, int-based like the definition), so both headers can be used
// together; without unary.hpp, pass "none" / "tanh" as a string.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath {
// Defined in ops/unary.hpp as { None, Tanh } (0 and 1).
enum class GeluApprox;
}  // namespace polymath

namespace polymath::ops {
namespace cuda_kernels {

using std::int64_t;

// ---- device math on the compute types (qualified: ops:: has exp, log, ... too) ----
__device__ __forceinline__ float d_exp(float x) { return ::expf(x); }
__device__ __forceinline__ double d_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float d_log(float x) { return ::logf(x); }
__device__ __forceinline__ double d_log(double x) { return ::log(x); }
__device__ __forceinline__ float d_log1p(float x) { return ::log1pf(x); }
__device__ __forceinline__ double d_log1p(double x) { return ::log1p(x); }
__device__ __forceinline__ float d_sqrt(float x) { return ::sqrtf(x); }  // IEEE (nvcc's default -prec-sqrt=true)
__device__ __forceinline__ double d_sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float d_tanh(float x) { return ::tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float d_erf(float x) { return ::erff(x); }
__device__ __forceinline__ double d_erf(double x) { return ::erf(x); }
__device__ __forceinline__ float d_abs(float x) { return ::fabsf(x); }
__device__ __forceinline__ double d_abs(double x) { return ::fabs(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return ::powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return ::pow(x, y); }
template <class A>
__host__ __device__ __forceinline__ bool d_isnan(A x) {
    return x != x;  // false for integers
}

// ---- the map engine ---------------------------------------------------------------

template <class T, int N>
struct alignas(sizeof(T) * N) Vec {
    using type = T;
    T v[N];
};

template <int N, class T>
__device__ __forceinline__ Vec<T, N> load_vec(const T* p) {
    return *reinterpret_cast<const Vec<T, N>*>(p);
}

// o[0..N) = f(v[0..N)...), each operand converted to its compute type.
template <int N, class F, class Out, class... V>
__device__ __forceinline__ void apply_vec(const F& f, Out* o, const V&... v) {
    Vec<Out, N> r;
#pragma unroll
    for (int k = 0; k < N; ++k) r.v[k] = static_cast<Out>(f(static_cast<cuda::compute_t<typename V::type>>(v.v[k])...));
    *reinterpret_cast<Vec<Out, N>*>(o) = r;
}

// All operands contiguous, same shape. `vec`: all pointers aligned to N elements.
template <int N, class F, class Out, class... In>
__global__ void __launch_bounds__(cuda::kThreads) map_contiguous(F f, int64_t n, bool vec, Out* out, const In*... in) {
    const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    int64_t start = 0;
    if (vec) {
        const int64_t nv = n / N;
        for (int64_t k = tid; k < nv; k += stride) apply_vec<N>(f, out + k * N, load_vec<N>(in + k * N)...);
        start = nv * N;
    }
    for (int64_t j = start + tid; j < n; j += stride) out[j] = static_cast<Out>(f(static_cast<cuda::compute_t<In>>(in[j])...));
}

// Shape (coalesced) and one stride row per operand (operand 0 = the output).
template <int K>
struct MultiIndexer {
    int ndim = 0;
    int64_t shape[kMaxDims] = {};
    int64_t strides[K][kMaxDims] = {};
};

template <class Idx, int K>
__device__ __forceinline__ void multi_offsets(const MultiIndexer<K>& ix, Idx i, Idx (&off)[K]) {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ix.ndim - 1; d >= 1; --d) {
        const Idx s = Idx(ix.shape[d]);
        const Idx q = i / s;
        const Idx r = i - q * s;
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += r * Idx(ix.strides[k][d]);
        i = q;
    }
    if (ix.ndim >= 1) {
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += i * Idx(ix.strides[k][0]);
    }
}

template <class Idx, class F, class Out, class... In, std::size_t... Is>
__device__ __forceinline__ void strided_apply(const F& f, Out* out, const Idx* off, std::index_sequence<Is...>,
                                              const In*... in) {
    out[off[0]] = static_cast<Out>(f(static_cast<cuda::compute_t<In>>(in[off[Is + 1]])...));
}

template <class Idx, class F, class Out, class... In>
__device__ __forceinline__ void strided_loop(const F& f, int64_t n, const MultiIndexer<1 + sizeof...(In)>& ix, Out* out,
                                             const In*... in) {
    constexpr int K = 1 + int(sizeof...(In));
    const Idx tid = Idx(blockIdx.x) * Idx(blockDim.x) + Idx(threadIdx.x);
    const Idx stride = Idx(gridDim.x) * Idx(blockDim.x);
    for (Idx i = tid; i < Idx(n); i += stride) {
        Idx off[K];
        multi_offsets<Idx, K>(ix, i, off);
        strided_apply<Idx>(f, out, off, std::index_sequence_for<In...>{}, in...);
    }
}

// Any strides (0 for broadcast operands); idx32: every index and offset < 2^31.
template <class F, class Out, class... In>
__global__ void __launch_bounds__(cuda::kThreads)
    map_strided(F f, int64_t n, bool idx32, MultiIndexer<1 + sizeof...(In)> ix, Out* out, const In*... in) {
    if (idx32)
        strided_loop<std::uint32_t>(f, n, ix, out, in...);
    else
        strided_loop<int64_t>(f, n, ix, out, in...);
}

// Host: drop size-1 dims and merge dims contiguous in every operand. Sets
// idx32 when n and every operand's largest offset are below 2^31 and no stride is negative.
template <int K>
MultiIndexer<K> make_multi_indexer(const Shape& shape, const std::array<const Strides*, K>& st, bool& idx32) {
    MultiIndexer<K> ix;
    for (int d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        if (ix.ndim > 0) {
            const int p = ix.ndim - 1;
            bool merge = true;
            for (int k = 0; k < K; ++k) merge = merge && ix.strides[k][p] == (*st[k])[d] * shape[d];
            if (merge) {
                ix.shape[p] *= shape[d];
                for (int k = 0; k < K; ++k) ix.strides[k][p] = (*st[k])[d];
                continue;
            }
        }
        ix.shape[ix.ndim] = shape[d];
        for (int k = 0; k < K; ++k) ix.strides[k][ix.ndim] = (*st[k])[d];
        ++ix.ndim;
    }
    constexpr int64_t lim = int64_t(1) << 31;
    idx32 = numel_of(shape) < lim;
    for (int k = 0; k < K; ++k) {
        int64_t ext = 0;
        for (int d = 0; d < ix.ndim; ++d) {
            if (ix.strides[k][d] < 0) idx32 = false;
            ext += (ix.shape[d] - 1) * (ix.strides[k][d] < 0 ? -ix.strides[k][d] : ix.strides[k][d]);
        }
        if (ext >= lim) idx32 = false;
    }
    return ix;
}

template <class T, class... Ts>
inline constexpr std::size_t max_size_v = std::max({sizeof(T), sizeof(Ts)...});

template <std::size_t Align>
inline bool aligned_to(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % Align == 0;
}

// out[idx] = f(in[idx]...) for every index of out; every input already has
// out's shape (an expanded view for broadcast operands). out may be strided.
template <class F, class Out, class... In>
void launch_map(const F& f, const Tensor<Out, Cuda>& out, const Tensor<In, Cuda>&... in) {
    static_assert(std::is_trivially_copyable_v<F>, "polymath::cuda::map: the functor is copied to the device");
    const int64_t n = out.numel();
    if (n == 0) return;
    const cudaStream_t s = cuda::current_stream();
    if (out.is_contiguous() && (in.is_contiguous() && ...)) {
        constexpr int N = int(16 / max_size_v<Out, In...>);
        const bool vec = aligned_to<sizeof(Out) * N>(out.data()) && (aligned_to<sizeof(In) * N>(in.data()) && ...);
        map_contiguous<N><<<cuda::grid_for(vec ? (n + N - 1) / N : n), cuda::kThreads, 0, s>>>(f, n, vec, out.data(),
                                                                                            static_cast<const In*>(in.data())...);
        POLYMATH_CUDA_CHECK_LAUNCH("map_contiguous");
    } else {
        constexpr int K = 1 + int(sizeof...(In));
        bool idx32 = false;
        const MultiIndexer<K> ix = make_multi_indexer<K>(out.shape(), {&out.strides(), &in.strides()...}, idx32);
        map_strided<<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(f, n, idx32, ix, out.data(),
                                                                 static_cast<const In*>(in.data())...);
        POLYMATH_CUDA_CHECK_LAUNCH("map_strided");
    }
}

// New contiguous Out tensor of the broadcast shape of the operands, filled by f.
template <class Out, class F, class... In>
Tensor<Out, Cuda> map_broadcast(const char* op, const Shape& shape, const F& f, const Tensor<In, Cuda>&... in) {
    Tensor<Out, Cuda> out = Tensor<Out, Cuda>::empty(shape);
    launch_map(f, out, (in.shape() == shape ? in : in.expand(shape))...);
    (void)op;
    return out;
}

template <class T, class... Ts>
void check_operands(const char* op, const Tensor<T, Cuda>& a, const Tensor<Ts, Cuda>&... rest) {
    a.check_defined(op);
    (rest.check_defined(op), ...);
    cuda::check_same_device(op, a, rest...);
}

template <class T>
void check_floating(const Tensor<T, Cuda>& x, const char* op) {
    static_assert(FloatingDType<T>,
                  "this polymath CUDA op computes in floating point (float, double, or bfloat16/half stored, float "
                  "computed); convert with .to<float>() first");
    x.check_defined(op);
}
template <class T>
void check_same_shape(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& x, const char* op) {
    check_operands(op, g, x);
    POLYMATH_CHECK(g.shape() == x.shape(), op, "gradient of shape ", g.shape(), " does not match the input shape ",
                   x.shape());
}

// 0 = none, 1 = tanh.
inline bool gelu_is_tanh(GeluApprox a) { return static_cast<int>(a) == 1; }
inline GeluApprox gelu_from_string(std::string_view s) {
    if (s == "none") return static_cast<GeluApprox>(0);
    if (s == "tanh") return static_cast<GeluApprox>(1);
    POLYMATH_THROW("gelu", "approximate must be \"none\" or \"tanh\", got \"", std::string(s), "\"");
}

inline constexpr double kSqrt1_2 = 0.70710678118654752440;
inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;
inline constexpr double kSqrt2OverPi = 0.79788456080286535588;
inline constexpr double kGeluKappa = 0.044715;

// ---- functors (operate on compute types; the engine converts) -------------------------

#define POLYMATH_CUDA_UNARY_FUNCTOR(NAME, EXPR)                      \
    struct NAME {                                                    \
        template <class A>                                           \
        __device__ __forceinline__ A operator()(A x) const {         \
            return EXPR;                                             \
        }                                                            \
    };
POLYMATH_CUDA_UNARY_FUNCTOR(ExpF, d_exp(x))
POLYMATH_CUDA_UNARY_FUNCTOR(LogF, d_log(x))
POLYMATH_CUDA_UNARY_FUNCTOR(SqrtF, d_sqrt(x))
POLYMATH_CUDA_UNARY_FUNCTOR(RsqrtF, A(1) / d_sqrt(x))
POLYMATH_CUDA_UNARY_FUNCTOR(AbsF, d_abs(x))
POLYMATH_CUDA_UNARY_FUNCTOR(TanhF, d_tanh(x))
POLYMATH_CUDA_UNARY_FUNCTOR(SigmoidF, A(1) / (A(1) + d_exp(-x)))
POLYMATH_CUDA_UNARY_FUNCTOR(ReluF, (x > A(0) || d_isnan(x)) ? x : A(0))
POLYMATH_CUDA_UNARY_FUNCTOR(SquareF, x* x)
POLYMATH_CUDA_UNARY_FUNCTOR(NegF, -x)
POLYMATH_CUDA_UNARY_FUNCTOR(GeluErfF, (x * A(0.5)) * (d_erf(x * A(kSqrt1_2)) + A(1)))
POLYMATH_CUDA_UNARY_FUNCTOR(GeluTanhF,
                            (x * A(0.5)) * (d_tanh(x * (x * x * A(kSqrt2OverPi * kGeluKappa) + A(kSqrt2OverPi))) + A(1)))
#undef POLYMATH_CUDA_UNARY_FUNCTOR

template <class A>
struct AffineF {
    A s, c;
    __device__ __forceinline__ A operator()(A x) const { return x * s + c; }
};
template <class A>
struct SoftplusF {
    A beta, threshold;
    __device__ __forceinline__ A operator()(A x) const {
        const A bx = x * beta;
        return bx > threshold ? x : A(d_log1p(d_exp(bx)) / beta);
    }
};
// x^p with the cheap forms the CPU uses for common p (mode from pow_mode).
template <class A>
__device__ __forceinline__ A pow_by_mode(A x, A p, int mode) {
    switch (mode) {
        case 0: return A(1);
        case 1: return x;
        case 2: return x * x;
        case 3: return x * x * x;
        case 4: return d_sqrt(x);
        case 5: return A(1) / d_sqrt(x);
        case 6: return A(1) / x;
        case 7: return A(1) / (x * x);
        default: return d_pow(x, p);
    }
}
template <class T>
int pow_mode(T p) {
    if (p == T(0)) return 0;
    if (p == T(1)) return 1;
    if (p == T(2)) return 2;
    if (p == T(3)) return 3;
    if (p == T(0.5)) return 4;
    if (p == T(-0.5)) return 5;
    if (p == T(-1)) return 6;
    if (p == T(-2)) return 7;
    return 8;
}
template <class A>
struct PowScalarF {
    A p;
    int mode;
    __device__ __forceinline__ A operator()(A x) const { return pow_by_mode(x, p, mode); }
};

#define POLYMATH_CUDA_BINARY_FUNCTOR(NAME, EXPR)                     \
    struct NAME {                                                    \
        template <class A>                                           \
        __device__ __forceinline__ auto operator()(A a, A b) const { \
            return EXPR;                                             \
        }                                                            \
    };
POLYMATH_CUDA_BINARY_FUNCTOR(AddF, a + b)
POLYMATH_CUDA_BINARY_FUNCTOR(SubF, a - b)
POLYMATH_CUDA_BINARY_FUNCTOR(MulF, a* b)
POLYMATH_CUDA_BINARY_FUNCTOR(DivF, a / b)
POLYMATH_CUDA_BINARY_FUNCTOR(PowF, d_pow(a, b))
POLYMATH_CUDA_BINARY_FUNCTOR(MaximumF, d_isnan(a) ? a : (d_isnan(b) ? b : (a > b ? a : b)))
POLYMATH_CUDA_BINARY_FUNCTOR(MinimumF, d_isnan(a) ? a : (d_isnan(b) ? b : (a < b ? a : b)))
POLYMATH_CUDA_BINARY_FUNCTOR(EqF, a == b)
POLYMATH_CUDA_BINARY_FUNCTOR(NeF, a != b)
POLYMATH_CUDA_BINARY_FUNCTOR(LtF, a < b)
POLYMATH_CUDA_BINARY_FUNCTOR(LeF, a <= b)
POLYMATH_CUDA_BINARY_FUNCTOR(GtF, a > b)
POLYMATH_CUDA_BINARY_FUNCTOR(GeF, a >= b)
// Backward of unary ops: a = gradient, b = saved input or output.
POLYMATH_CUDA_BINARY_FUNCTOR(ExpBwdF, a* b)
POLYMATH_CUDA_BINARY_FUNCTOR(LogBwdF, a / b)
POLYMATH_CUDA_BINARY_FUNCTOR(SqrtBwdF, a / (b * A(2)))
POLYMATH_CUDA_BINARY_FUNCTOR(RsqrtBwdF, a*(b * b * b) * A(-0.5))
POLYMATH_CUDA_BINARY_FUNCTOR(AbsBwdF, b > A(0) ? a : (b < A(0) ? A(-a) : A(0)))
POLYMATH_CUDA_BINARY_FUNCTOR(TanhBwdF, a*(A(1) - b * b))
POLYMATH_CUDA_BINARY_FUNCTOR(SigmoidBwdF, a*(b * (A(1) - b)))
POLYMATH_CUDA_BINARY_FUNCTOR(ReluBwdF, b <= A(0) ? A(0) : a)
POLYMATH_CUDA_BINARY_FUNCTOR(SquareBwdF, a* b* A(2))
POLYMATH_CUDA_BINARY_FUNCTOR(GeluErfBwdF, a*((d_erf(b * A(kSqrt1_2)) + A(1)) * A(0.5) +
                                             b * d_exp(b * b * A(-0.5)) * A(kInvSqrt2Pi)))
#undef POLYMATH_CUDA_BINARY_FUNCTOR

struct GeluTanhBwdF {
    template <class A>
    __device__ __forceinline__ A operator()(A g, A v) const {
        const A k = A(kSqrt2OverPi), kc = A(kSqrt2OverPi * kGeluKappa), kc3 = A(3 * kSqrt2OverPi * kGeluKappa);
        const A v2 = v * v;
        const A t = d_tanh(v * (v2 * kc + k));
        return g * (A(0.5) * (A(1) + t) + A(0.5) * v * (A(1) - t * t) * (v2 * kc3 + k));
    }
};
template <class A>
struct SoftplusBwdF {
    A beta, threshold;
    __device__ __forceinline__ A operator()(A g, A x) const {
        const A bx = x * beta;
        if (bx > threshold) return g;
        const A z = d_exp(bx);
        return g * z / (z + A(1));
    }
};
template <class A>
struct PowScalarBwdF {
    A p, pm1;
    int mode;  // of p - 1
    __device__ __forceinline__ A operator()(A g, A x) const { return g * pow_by_mode(x, pm1, mode) * p; }
};
template <class A>
struct AddScaledF {  // dst + alpha * src
    A alpha;
    __device__ __forceinline__ A operator()(A d, A s) const { return d + alpha * s; }
};
template <class A, int Op>  // tensor-scalar comparison: 0 eq, 1 ne, 2 lt, 3 le, 4 gt, 5 ge
struct CmpScalarF {
    A s;
    __device__ __forceinline__ bool operator()(A x) const {
        if constexpr (Op == 0) return x == s;
        else if constexpr (Op == 1) return x != s;
        else if constexpr (Op == 2) return x < s;
        else if constexpr (Op == 3) return x <= s;
        else if constexpr (Op == 4) return x > s;
        else return x >= s;
    }
};
struct WhereF {
    template <class A>
    __device__ __forceinline__ A operator()(bool c, A a, A b) const { return c ? a : b; }
};
template <class A>
struct WhereScalarBF {  // c ? a : s
    A s;
    __device__ __forceinline__ A operator()(bool c, A a) const { return c ? a : s; }
};
template <class A>
struct WhereScalarAF {  // c ? s : b
    A s;
    __device__ __forceinline__ A operator()(bool c, A b) const { return c ? s : b; }
};
// Weight of x in d max(x, y): 0 where x < y, 0.5 on a tie, 1 otherwise.
template <class A>
__device__ __forceinline__ A extremum_weight(A x, A y) {
    return x < y ? A(0) : (x == y ? A(0.5) : A(1));
}
template <int Which>  // 0: g * w(a, b), 1: g * w(b, a)
struct ExtremumBwdF {
    template <class A>
    __device__ __forceinline__ A operator()(A g, A a, A b) const {
        return Which == 0 ? g * extremum_weight(a, b) : g * extremum_weight(b, a);
    }
};
struct PowBwdBaseF {
    template <class A>
    __device__ __forceinline__ A operator()(A g, A x, A y) const {
        return g * (y == A(0) ? A(0) : y * d_pow(x, y - A(1)));
    }
};
struct PowBwdExponentF {
    template <class A>
    __device__ __forceinline__ A operator()(A g, A x, A y) const {
        return g * ((x == A(0) && y >= A(0)) ? A(0) : d_pow(x, y) * d_log(x));
    }
};

// Broadcast shape of where's three operands; the error names all three.
inline Shape where_shape(const Shape& c, const Shape& a, const Shape& b) {
    const int n = std::max({c.size(), a.size(), b.size()});
    Shape out = Shape::filled(n, 1);
    for (int i = 0; i < n; ++i) {
        int64_t d = 1;
        bool ok = true;
        for (const Shape* s : {&c, &a, &b}) {
            const int k = i - (n - s->size());
            const int64_t e = k < 0 ? 1 : (*s)[k];
            if (e == 1) continue;
            ok = ok && (d == 1 || d == e);
            d = e;
        }
        POLYMATH_CHECK(ok, "where", "condition of shape ", c, ", input of shape ", a, " and other of shape ", b,
                       " cannot be broadcast together (dimension ", i, ")");
        out[i] = d;
    }
    return out;
}

template <class T, class F>
Tensor<T, Cuda> unary(const char* op, const Tensor<T, Cuda>& x, const F& f) {
    x.check_defined(op);
    return map_broadcast<T>(op, x.shape(), f, x);
}
template <class TO, class T, class F>
Tensor<TO, Cuda> binary(const char* op, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b, const F& f) {
    check_operands(op, a, b);
    const Shape shape = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), op);
    return map_broadcast<TO>(op, shape, f, a, b);
}
template <class T, class F>
Tensor<T, Cuda> ternary(const char* op, const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b,
                        const F& f) {
    check_operands(op, g, a, b);
    const Shape shape = broadcast_shapes(broadcast_shapes(g.shape(), a.shape(), op), b.shape(), op);
    return map_broadcast<T>(op, shape, f, g, a, b);
}

}  // namespace cuda_kernels

// ---- unary forward --------------------------------------------------------------------

#define POLYMATH_CUDA_UNARY_OP(NAME, FUNCTOR)                                   \
    template <class T>                                                          \
    Tensor<T, Cuda> NAME(const Tensor<T, Cuda>& x) {                            \
        cuda_kernels::check_floating(x, #NAME);                                 \
        return cuda_kernels::unary(#NAME, x, cuda_kernels::FUNCTOR{});          \
    }
POLYMATH_CUDA_UNARY_OP(exp, ExpF)
POLYMATH_CUDA_UNARY_OP(log, LogF)
POLYMATH_CUDA_UNARY_OP(sqrt, SqrtF)    // correctly rounded
POLYMATH_CUDA_UNARY_OP(rsqrt, RsqrtF)  // 1 / sqrt(x), as PyTorch (a division by the IEEE sqrt)
POLYMATH_CUDA_UNARY_OP(abs, AbsF)
POLYMATH_CUDA_UNARY_OP(tanh, TanhF)
POLYMATH_CUDA_UNARY_OP(sigmoid, SigmoidF)  // 1 / (1 + exp(-x))
POLYMATH_CUDA_UNARY_OP(relu, ReluF)        // max(x, 0); NaN stays NaN
POLYMATH_CUDA_UNARY_OP(square, SquareF)
#undef POLYMATH_CUDA_UNARY_OP

template <class T>
Tensor<T, Cuda> gelu(const Tensor<T, Cuda>& x, GeluApprox approximate = static_cast<GeluApprox>(0)) {
    cuda_kernels::check_floating(x, "gelu");
    if (cuda_kernels::gelu_is_tanh(approximate)) return cuda_kernels::unary("gelu", x, cuda_kernels::GeluTanhF{});
    return cuda_kernels::unary("gelu", x, cuda_kernels::GeluErfF{});
}
template <class T>
Tensor<T, Cuda> gelu(const Tensor<T, Cuda>& x, std::string_view approximate) {
    return gelu(x, cuda_kernels::gelu_from_string(approximate));
}
// log(1 + exp(beta x)) / beta, or x where beta x > threshold.
template <class T>
Tensor<T, Cuda> softplus(const Tensor<T, Cuda>& x, std::type_identity_t<T> beta = T(1),
                         std::type_identity_t<T> threshold = T(20)) {
    cuda_kernels::check_floating(x, "softplus");
    using A = cuda::compute_t<T>;
    POLYMATH_CHECK(A(beta) != A(0), "softplus", "beta must be nonzero (shape ", x.shape(), ")");
    return cuda_kernels::unary("softplus", x, cuda_kernels::SoftplusF<A>{A(beta), A(threshold)});
}
// x^p (x^0 = 1 everywhere, like torch.pow).
template <class T>
Tensor<T, Cuda> pow_scalar(const Tensor<T, Cuda>& x, std::type_identity_t<T> p) {
    cuda_kernels::check_floating(x, "pow_scalar");
    using A = cuda::compute_t<T>;
    return cuda_kernels::unary("pow_scalar", x, cuda_kernels::PowScalarF<A>{A(p), cuda_kernels::pow_mode(A(p))});
}

// ---- unary backward (g: gradient of the output; x input, y saved output) ----------------

#define POLYMATH_CUDA_UNARY_BWD(NAME, FUNCTOR)                                                   \
    template <class T>                                                                           \
    Tensor<T, Cuda> NAME(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& xy) {                  \
        cuda_kernels::check_floating(g, #NAME);                                                  \
        cuda_kernels::check_same_shape(g, xy, #NAME);                                            \
        return cuda_kernels::map_broadcast<T>(#NAME, g.shape(), cuda_kernels::FUNCTOR{}, g, xy); \
    }
POLYMATH_CUDA_UNARY_BWD(exp_backward, ExpBwdF)          // g y
POLYMATH_CUDA_UNARY_BWD(log_backward, LogBwdF)          // g / x
POLYMATH_CUDA_UNARY_BWD(sqrt_backward, SqrtBwdF)        // g / (2 y)
POLYMATH_CUDA_UNARY_BWD(rsqrt_backward, RsqrtBwdF)      // -0.5 g y^3
POLYMATH_CUDA_UNARY_BWD(abs_backward, AbsBwdF)          // g sign(x), 0 at 0
POLYMATH_CUDA_UNARY_BWD(tanh_backward, TanhBwdF)        // g (1 - y^2)
POLYMATH_CUDA_UNARY_BWD(sigmoid_backward, SigmoidBwdF)  // g y (1 - y)
POLYMATH_CUDA_UNARY_BWD(relu_backward, ReluBwdF)        // g where y > 0
POLYMATH_CUDA_UNARY_BWD(square_backward, SquareBwdF)    // 2 g x
#undef POLYMATH_CUDA_UNARY_BWD

template <class T>
Tensor<T, Cuda> gelu_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& x,
                              GeluApprox approximate = static_cast<GeluApprox>(0)) {
    cuda_kernels::check_floating(g, "gelu_backward");
    cuda_kernels::check_same_shape(g, x, "gelu_backward");
    if (cuda_kernels::gelu_is_tanh(approximate))
        return cuda_kernels::map_broadcast<T>("gelu_backward", g.shape(), cuda_kernels::GeluTanhBwdF{}, g, x);
    return cuda_kernels::map_broadcast<T>("gelu_backward", g.shape(), cuda_kernels::GeluErfBwdF{}, g, x);
}
template <class T>
Tensor<T, Cuda> gelu_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& x, std::string_view approximate) {
    return gelu_backward(g, x, cuda_kernels::gelu_from_string(approximate));
}
template <class T>
Tensor<T, Cuda> softplus_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& x,
                                  std::type_identity_t<T> beta = T(1), std::type_identity_t<T> threshold = T(20)) {
    cuda_kernels::check_floating(g, "softplus_backward");
    cuda_kernels::check_same_shape(g, x, "softplus_backward");
    using A = cuda::compute_t<T>;
    return cuda_kernels::map_broadcast<T>("softplus_backward", g.shape(),
                                          cuda_kernels::SoftplusBwdF<A>{A(beta), A(threshold)}, g, x);
}
// p x^(p-1); 0 everywhere when p == 0.
template <class T>
Tensor<T, Cuda> pow_scalar_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& x, std::type_identity_t<T> p) {
    cuda_kernels::check_floating(g, "pow_scalar_backward");
    cuda_kernels::check_same_shape(g, x, "pow_scalar_backward");
    using A = cuda::compute_t<T>;
    if (A(p) == A(0)) return Tensor<T, Cuda>::zeros(x.shape());
    const A pm1 = A(p) - A(1);
    return cuda_kernels::map_broadcast<T>("pow_scalar_backward", g.shape(),
                                          cuda_kernels::PowScalarBwdF<A>{A(p), pm1, cuda_kernels::pow_mode(pm1)}, g, x);
}

// ---- arithmetic (ops/arith.hpp) ----------------------------------------------------------

template <class T>
Tensor<T, Cuda> add(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    return cuda_kernels::binary<T>("add", a, b, cuda_kernels::AddF{});
}
template <class T>
Tensor<T, Cuda> sub(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    return cuda_kernels::binary<T>("sub", a, b, cuda_kernels::SubF{});
}
template <class T>
Tensor<T, Cuda> mul(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    return cuda_kernels::binary<T>("mul", a, b, cuda_kernels::MulF{});
}
template <class T>
Tensor<T, Cuda> div(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    return cuda_kernels::binary<T>("div", a, b, cuda_kernels::DivF{});
}
template <class T>
Tensor<T, Cuda> neg(const Tensor<T, Cuda>& a) {
    return cuda_kernels::unary("neg", a, cuda_kernels::NegF{});
}
// a * s + c.
template <class T>
Tensor<T, Cuda> affine(const Tensor<T, Cuda>& a, std::type_identity_t<T> s, std::type_identity_t<T> c) {
    using A = cuda::compute_t<T>;
    return cuda_kernels::unary("affine", a, cuda_kernels::AffineF<A>{A(s), A(c)});
}
template <class T>
Tensor<T, Cuda> add_scalar(const Tensor<T, Cuda>& a, std::type_identity_t<T> s) {
    return affine(a, T(1), s);
}
template <class T>
Tensor<T, Cuda> mul_scalar(const Tensor<T, Cuda>& a, std::type_identity_t<T> s) {
    return affine(a, s, T(0));
}
// In place: dst += alpha * src (src broadcast to dst's shape; dst may be a strided view).
template <class T>
void add_(const Tensor<T, Cuda>& dst, const Tensor<T, Cuda>& src, std::type_identity_t<T> alpha = T(1)) {
    cuda_kernels::check_operands("add_", dst, src);
    POLYMATH_CHECK(broadcast_shapes(dst.shape(), src.shape(), "add_") == dst.shape(), "add_", "source of shape ",
                   src.shape(), " does not broadcast to the destination shape ", dst.shape());
    using A = cuda::compute_t<T>;
    cuda_kernels::launch_map(cuda_kernels::AddScaledF<A>{A(alpha)}, dst, dst,
                             src.shape() == dst.shape() ? src : src.expand(dst.shape()));
}

// ---- pow, maximum, minimum (ops/binary_math.hpp) ---------------------------------------------

template <class T>
Tensor<T, Cuda> pow(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    cuda_kernels::check_floating(a, "pow");
    return cuda_kernels::binary<T>("pow", a, b, cuda_kernels::PowF{});
}
// NaN if either is NaN (torch.maximum).
template <class T>
Tensor<T, Cuda> maximum(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    cuda_kernels::check_floating(a, "maximum");
    return cuda_kernels::binary<T>("maximum", a, b, cuda_kernels::MaximumF{});
}
template <class T>
Tensor<T, Cuda> minimum(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    cuda_kernels::check_floating(a, "minimum");
    return cuda_kernels::binary<T>("minimum", a, b, cuda_kernels::MinimumF{});
}
// Backward kernels: results in the broadcast shape of (g, a, b); reduce with sum_to (reduce.cuh).
template <class T>
Tensor<T, Cuda> pow_backward_base(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    cuda_kernels::check_floating(g, "pow_backward");
    return cuda_kernels::ternary("pow_backward", g, a, b, cuda_kernels::PowBwdBaseF{});
}
template <class T>
Tensor<T, Cuda> pow_backward_exponent(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    cuda_kernels::check_floating(g, "pow_backward");
    return cuda_kernels::ternary("pow_backward", g, a, b, cuda_kernels::PowBwdExponentF{});
}
template <class T>
Tensor<T, Cuda> maximum_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b,
                                 int which) {
    cuda_kernels::check_floating(g, "maximum_backward");
    if (which == 0) return cuda_kernels::ternary("maximum_backward", g, a, b, cuda_kernels::ExtremumBwdF<0>{});
    return cuda_kernels::ternary("maximum_backward", g, a, b, cuda_kernels::ExtremumBwdF<1>{});
}
template <class T>
Tensor<T, Cuda> minimum_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b,
                                 int which) {
    cuda_kernels::check_floating(g, "minimum_backward");
    if (which == 0) return cuda_kernels::ternary("minimum_backward", g, a, b, cuda_kernels::ExtremumBwdF<1>{});
    return cuda_kernels::ternary("minimum_backward", g, a, b, cuda_kernels::ExtremumBwdF<0>{});
}

// ---- comparisons and where (ops/compare.hpp) ---------------------------------------------------

#define POLYMATH_CUDA_COMPARISON(NAME, FUNCTOR, OPNUM)                                                   \
    template <class T>                                                                                   \
    Tensor<bool, Cuda> NAME(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {                        \
        return cuda_kernels::binary<bool>(#NAME, a, b, cuda_kernels::FUNCTOR{});                         \
    }                                                                                                    \
    template <class T>                                                                                   \
    Tensor<bool, Cuda> NAME(const Tensor<T, Cuda>& a, std::type_identity_t<T> s) {                       \
        a.check_defined(#NAME);                                                                          \
        using A = cuda::compute_t<T>;                                                                    \
        return cuda_kernels::map_broadcast<bool>(#NAME, a.shape(), cuda_kernels::CmpScalarF<A, OPNUM>{A(s)}, a); \
    }
POLYMATH_CUDA_COMPARISON(eq, EqF, 0)
POLYMATH_CUDA_COMPARISON(ne, NeF, 1)
POLYMATH_CUDA_COMPARISON(lt, LtF, 2)
POLYMATH_CUDA_COMPARISON(le, LeF, 3)
POLYMATH_CUDA_COMPARISON(gt, GtF, 4)
POLYMATH_CUDA_COMPARISON(ge, GeF, 5)
#undef POLYMATH_CUDA_COMPARISON

template <class T>
Tensor<T, Cuda> where(const Tensor<bool, Cuda>& cond, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) {
    cuda_kernels::check_operands("where", cond, a, b);
    const Shape shape = cuda_kernels::where_shape(cond.shape(), a.shape(), b.shape());
    return cuda_kernels::map_broadcast<T>("where", shape, cuda_kernels::WhereF{}, cond, a, b);
}
template <class T>
Tensor<T, Cuda> where(const Tensor<bool, Cuda>& cond, const Tensor<T, Cuda>& a, std::type_identity_t<T> b) {
    cuda_kernels::check_operands("where", cond, a);
    const Shape shape = cuda_kernels::where_shape(cond.shape(), a.shape(), Shape{});
    using A = cuda::compute_t<T>;
    return cuda_kernels::map_broadcast<T>("where", shape, cuda_kernels::WhereScalarBF<A>{A(b)}, cond, a);
}
template <class T>
Tensor<T, Cuda> where(const Tensor<bool, Cuda>& cond, std::type_identity_t<T> a, const Tensor<T, Cuda>& b) {
    cuda_kernels::check_operands("where", cond, b);
    const Shape shape = cuda_kernels::where_shape(cond.shape(), Shape{}, b.shape());
    using A = cuda::compute_t<T>;
    return cuda_kernels::map_broadcast<T>("where", shape, cuda_kernels::WhereScalarAF<A>{A(a)}, cond, b);
}

// ---- a host tensor with a device tensor: refused at compile time ----------------------------------
// ERROR HERE means: one operand is a Tensor<T, polymath::Cpu> and the other a Tensor<T, polymath::Cuda>.
// polymath does not copy implicitly; move the host one with x.to<polymath::Cuda>() (or the device one
// with .to<polymath::Cpu>()) first.
#define POLYMATH_CUDA_NO_MIXED(NAME)                                                                    \
    template <class T>                                                                                  \
    void NAME(const Tensor<T, Cpu>& host, const Tensor<T, Cuda>& device) =                              \
        delete; /* mixed Cpu/Cuda operands: move one with .to<polymath::Cuda>() */                      \
    template <class T>                                                                                  \
    void NAME(const Tensor<T, Cuda>& device, const Tensor<T, Cpu>& host) =                              \
        delete; /* mixed Cuda/Cpu operands: move one with .to<polymath::Cuda>() */
POLYMATH_CUDA_NO_MIXED(add)
POLYMATH_CUDA_NO_MIXED(sub)
POLYMATH_CUDA_NO_MIXED(mul)
POLYMATH_CUDA_NO_MIXED(div)
POLYMATH_CUDA_NO_MIXED(pow)
POLYMATH_CUDA_NO_MIXED(maximum)
POLYMATH_CUDA_NO_MIXED(minimum)
POLYMATH_CUDA_NO_MIXED(eq)
POLYMATH_CUDA_NO_MIXED(ne)
POLYMATH_CUDA_NO_MIXED(lt)
POLYMATH_CUDA_NO_MIXED(le)
POLYMATH_CUDA_NO_MIXED(gt)
POLYMATH_CUDA_NO_MIXED(ge)
#undef POLYMATH_CUDA_NO_MIXED

}  // namespace polymath::ops

namespace polymath {

// Operators on device tensors (no graph), like ops/arith.hpp's for the host.
template <class T>
Tensor<T, Cuda> operator+(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) { return ops::add(a, b); }
template <class T>
Tensor<T, Cuda> operator-(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) { return ops::sub(a, b); }
template <class T>
Tensor<T, Cuda> operator*(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) { return ops::mul(a, b); }
template <class T>
Tensor<T, Cuda> operator/(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b) { return ops::div(a, b); }
template <class T>
Tensor<T, Cuda> operator-(const Tensor<T, Cuda>& a) { return ops::neg(a); }
template <class T>
Tensor<T, Cuda> operator+(const Tensor<T, Cuda>& a, std::type_identity_t<T> s) { return ops::add_scalar(a, s); }
template <class T>
Tensor<T, Cuda> operator-(const Tensor<T, Cuda>& a, std::type_identity_t<T> s) { return ops::add_scalar(a, T(-s)); }
template <class T>
Tensor<T, Cuda> operator*(const Tensor<T, Cuda>& a, std::type_identity_t<T> s) { return ops::mul_scalar(a, s); }
template <class T>
Tensor<T, Cuda> operator*(std::type_identity_t<T> s, const Tensor<T, Cuda>& a) { return ops::mul_scalar(a, s); }
template <class T>
Tensor<T, Cuda> operator+(std::type_identity_t<T> s, const Tensor<T, Cuda>& a) { return ops::add_scalar(a, s); }

namespace cuda {

// A fused elementwise kernel: out[i] = f(in0[i], in1[i], ...) over tensors of
// one shape, in a single launch (no temporaries between the steps of f).
// f is a trivially copyable functor object with a __device__ operator(); it
// receives each input in its compute type (float for bfloat16 / half, the
// type itself otherwise) and its result is converted to Out. Inputs and out
// may be strided views; out may also be one of the inputs (each element is
// read before it is written).
//
//   struct AxpbyRelu {            // relu(a x + b y)
//       float a, b;
//       __device__ float operator()(float x, float y) const {
//           const float v = a * x + b * y;
//           return v > 0.f ? v : 0.f;
//       }
//   };
//   auto out = Tensor<float, Cuda>::empty(x.shape());
//   polymath::cuda::map(AxpbyRelu{2.f, -1.f}, out, x, y);
template <class F, class Out, class... In>
void map(const F& f, const Tensor<Out, Cuda>& out, const Tensor<In, Cuda>&... in) {
    static_assert(sizeof...(In) >= 1, "polymath::cuda::map needs at least one input tensor");
    ops::cuda_kernels::check_operands("map", out, in...);
    auto same = [&](const auto& t) {
        POLYMATH_CHECK(t.shape() == out.shape(), "map", "input of shape ", t.shape(),
                       " does not match the output shape ", out.shape(), " (map does not broadcast; expand() first)");
    };
    (same(in), ...);
    ops::cuda_kernels::launch_map(f, out, in...);
}

}  // namespace cuda
}  // namespace polymath
