// polymath/optim/cuda/fused.cuh — multi-tensor fused optimizer steps on the
// device: Adam, AdamW and SGD over many parameter tensors in one launch.
//
//   using namespace polymath;
//   std::vector<Tensor<float, Cuda>> params = ..., grads = ...;
//   auto m = optim::cuda::zeros_like(params), v = optim::cuda::zeros_like(params);
//   optim::cuda::adamw_step(params, grads, m, v, /*step=*/t, {.lr = 3e-4, .weight_decay = 0.1});
//   optim::cuda::sgd_step(params, grads, bufs, t, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
//
// The update formulas are EXACTLY those of optim/adam.hpp and optim/sgd.hpp
// (same operation order, same scalars computed in double on the host and cast
// to T): Adam's L2 term g + wd·p, AdamW's decoupled p·(1 - lr·wd) applied
// first, m = m + (1-β1)(g - m), v = β2·v + (1-β2)·g², denom = sqrt(v)/sqrt(bc2) + eps
// (eps outside the sqrt; v_max with amsgrad), p -= (lr/bc1)·(m/denom); SGD's
// d = g + wd·p, b = d at step 1 else μ·b + (1-dampening)·d, Nesterov d + μ·b.
// Every + - × ÷ √ is an explicit round-to-nearest intrinsic (never contracted
// into an FMA), so with a CPU build that does not contract either (and whose
// sqrt is correctly rounded: Eigen's AVX-512 float/double sqrt under
// EIGEN_FAST_MATH is not) the device agrees with the CPU optimizer bit for
// bit; against a -march=native build expect a few ulps. `step` is the 1-based update
// count t of the parameters (the CPU keeps one per parameter; here all the
// tensors of one call share it). The options structs mirror the CPU ones
// (defined here because the CPU optimizer headers need Eigen, which a .cu file
// does not include).
//
// Gradients may be bfloat16 / half with float parameters (fp32 master
// weights): g is converted to float as it is read.
//
// Kernel (multi_tensor_apply): the tensors' {param, grad, slot0..2, n}
// pointers travel IN THE KERNEL PARAMETERS (up to 48 tensors per launch, a
// struct under 4 KiB: no device array to upload, no host synchronisation;
// more tensors take more launches). Every tensor is cut into chunks of 32768
// elements; block b handles chunk b (grid-stride over chunks), finding its
// tensor by a binary search of the chunks' prefix sums. Inside a chunk,
// 16-byte vector loads/stores (float4 / double2) when all of the tensor's
// pointers are 16-byte aligned (the allocator's blocks are), then a scalar
// tail. Memory-bound: 2 loads+1 store (SGD) to 4 loads+3 stores (Adam) per element.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/cuda/check.hpp"
#include "polymath/cuda/launch.cuh"
#include "polymath/cuda/runtime.hpp"
#include "polymath/cuda/tensor_backend.cuh"
#include "polymath/tensor/tensor.hpp"

namespace polymath::optim::cuda {

struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;  // L2 added to the gradient
    bool amsgrad = false;
};

struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay
    bool amsgrad = false;
};

struct SGDOptions {
    double lr = 1e-3;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};

// Zero tensors shaped like each of ts (optimizer slots).
template <class T>
std::vector<Tensor<T, Cuda>> zeros_like(const std::vector<Tensor<T, Cuda>>& ts) {
    std::vector<Tensor<T, Cuda>> out;
    out.reserve(ts.size());
    for (const auto& t : ts) out.push_back(Tensor<T, Cuda>::zeros(t.shape()));
    return out;
}

namespace kernels {

inline constexpr int kMaxTensors = 48;
inline constexpr std::int64_t kChunk = 32768;
inline constexpr int kThreads = 256;

template <class T, class G>
struct MultiTensorArgs {
    int count = 0;
    std::int64_t chunk_begin[kMaxTensors + 1] = {};  // prefix sums of the chunk counts
    std::int64_t n[kMaxTensors] = {};
    T* p[kMaxTensors] = {};
    const G* g[kMaxTensors] = {};
    T* s0[kMaxTensors] = {};  // slots; nullptr where the optimizer has none
    T* s1[kMaxTensors] = {};
    T* s2[kMaxTensors] = {};
    unsigned char vec[kMaxTensors] = {};  // all pointers 16-byte aligned
};

// Correctly rounded single operations (no FMA contraction).
__device__ __forceinline__ float op_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double op_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float op_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double op_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float op_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double op_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float op_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double op_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float op_sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double op_sqrt(double a) { return __dsqrt_rn(a); }

template <class T, class G>
__device__ __forceinline__ T grad_value(G g) {
    if constexpr (std::is_same_v<T, G>)
        return g;
    else
        return T(float(g));
}

template <class T>
struct AdamOp {
    T step_size, bc2_sqrt, b2, eps, wd, c1, c2, decay;
    bool use_wd, dec, ams;
    // s0 = m, s1 = v, s2 = v_max (amsgrad).
    __device__ __forceinline__ void operator()(T& p, T g, T& m, T& v, T& vmax) const {
        if (dec && use_wd) p = op_mul(p, decay);
        const T gg = use_wd && !dec ? op_add(g, op_mul(wd, p)) : g;
        m = op_add(m, op_mul(c1, op_sub(gg, m)));
        v = op_add(op_mul(b2, v), op_mul(c2, op_mul(gg, gg)));
        T vv = v;
        if (ams) {
            vmax = vmax < v ? v : vmax;
            vv = vmax;
        }
        const T denom = op_add(op_div(op_sqrt(vv), bc2_sqrt), eps);
        p = op_sub(p, op_mul(step_size, op_div(m, denom)));
    }
};

template <class T>
struct SgdOp {
    T lr, wd, mom, damp1;
    bool use_wd, use_mom, nest, first;
    // s0 = momentum buffer.
    __device__ __forceinline__ void operator()(T& p, T g, T& b, T&, T&) const {
        const T d = use_wd ? op_add(g, op_mul(wd, p)) : g;
        if (!use_mom) {
            p = op_sub(p, op_mul(lr, d));
            return;
        }
        b = first ? d : op_add(op_mul(mom, b), op_mul(damp1, d));
        p = nest ? op_sub(p, op_mul(lr, op_add(d, op_mul(mom, b)))) : op_sub(p, op_mul(lr, b));
    }
};

template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
    T v[V];
};

template <class T, class G, class Op>
__global__ void __launch_bounds__(kThreads) multi_tensor_apply(const MultiTensorArgs<T, G> a, const Op op) {
    constexpr int V = 16 / sizeof(T);  // 4 floats, 2 doubles
    const std::int64_t total = a.chunk_begin[a.count];
    for (std::int64_t c = blockIdx.x; c < total; c += gridDim.x) {
        // Tensor t: the last one with chunk_begin[t] <= c (tensors with no chunks are not listed).
        int lo = 0, hi = a.count - 1;
        while (lo < hi) {
            const int mid = (lo + hi + 1) >> 1;
            if (a.chunk_begin[mid] <= c)
                lo = mid;
            else
                hi = mid - 1;
        }
        const int t = lo;
        const std::int64_t start = (c - a.chunk_begin[t]) * kChunk;
        const std::int64_t end = a.n[t] < start + kChunk ? a.n[t] : start + kChunk;
        T* __restrict__ p = a.p[t];
        const G* __restrict__ g = a.g[t];
        T* __restrict__ s0 = a.s0[t];
        T* __restrict__ s1 = a.s1[t];
        T* __restrict__ s2 = a.s2[t];
        std::int64_t i0 = start;
        if (a.vec[t]) {
            const std::int64_t vend = start + (end - start) / V * V;
            for (std::int64_t i = start + std::int64_t(threadIdx.x) * V; i < vend; i += std::int64_t(blockDim.x) * V) {
                Pack<T, V> pp = *reinterpret_cast<const Pack<T, V>*>(p + i);
                const Pack<G, V> gp = *reinterpret_cast<const Pack<G, V>*>(g + i);
                Pack<T, V> a0{}, a1{}, a2{};
                if (s0) a0 = *reinterpret_cast<const Pack<T, V>*>(s0 + i);
                if (s1) a1 = *reinterpret_cast<const Pack<T, V>*>(s1 + i);
                if (s2) a2 = *reinterpret_cast<const Pack<T, V>*>(s2 + i);
#pragma unroll
                for (int u = 0; u < V; ++u) op(pp.v[u], grad_value<T>(gp.v[u]), a0.v[u], a1.v[u], a2.v[u]);
                *reinterpret_cast<Pack<T, V>*>(p + i) = pp;
                if (s0) *reinterpret_cast<Pack<T, V>*>(s0 + i) = a0;
                if (s1) *reinterpret_cast<Pack<T, V>*>(s1 + i) = a1;
                if (s2) *reinterpret_cast<Pack<T, V>*>(s2 + i) = a2;
            }
            i0 = vend;
        }
        for (std::int64_t i = i0 + threadIdx.x; i < end; i += blockDim.x) {
            T pv = p[i];
            T x0 = s0 ? s0[i] : T(0), x1 = s1 ? s1[i] : T(0), x2 = s2 ? s2[i] : T(0);
            op(pv, grad_value<T>(g[i]), x0, x1, x2);
            p[i] = pv;
            if (s0) s0[i] = x0;
            if (s1) s1[i] = x1;
            if (s2) s2[i] = x2;
        }
    }
}

}  // namespace kernels

namespace detail {

template <class T>
using TensorList = std::vector<Tensor<T, Cuda>>;

inline bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Checks the lists and launches Op over every tensor, kMaxTensors per launch.
template <class T, class G, class Op>
void apply(const char* op_name, const TensorList<T>& params, const TensorList<G>& grads_in,
           const TensorList<T>* s0, const TensorList<T>* s1, const TensorList<T>* s2, const Op& op) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "polymath::optim::cuda: parameters are float or double");
    static_assert(std::is_same_v<G, T> || (std::is_same_v<T, float> && (std::is_same_v<G, bfloat16> ||
                                                                          std::is_same_v<G, half>)),
                  "polymath::optim::cuda: gradients are T, or bfloat16/half with float parameters");
    const std::size_t N = params.size();
    POLYMATH_CHECK(grads_in.size() == N, op_name, N, " parameters but ", grads_in.size(), " gradients");
    for (const TensorList<T>* s : {s0, s1, s2})
        if (s) POLYMATH_CHECK(s->size() == N, op_name, N, " parameters but ", s->size(), " state tensors in a slot");
    std::vector<Tensor<G, Cuda>> grads;  // contiguous copies live until the launches are queued
    grads.reserve(N);
    for (std::size_t i = 0; i < N; ++i) {
        const Tensor<T, Cuda>& p = params[i];
        POLYMATH_CHECK(p.defined() && grads_in[i].defined(), op_name, "parameter ", i, " or its gradient is undefined");
        POLYMATH_CHECK(p.is_contiguous(), op_name, "parameter ", i, " of shape ", p.shape(),
                       " is not contiguous (updated in place)");
        POLYMATH_CHECK(grads_in[i].shape() == p.shape(), op_name, "gradient ", i, " of shape ", grads_in[i].shape(),
                       " differs from its parameter's ", p.shape());
        ::polymath::cuda::check_same_device(op_name, p, grads_in[i]);
        for (const TensorList<T>* s : {s0, s1, s2}) {
            if (!s) continue;
            const Tensor<T, Cuda>& st = (*s)[i];
            POLYMATH_CHECK(st.defined() && st.shape() == p.shape() && st.is_contiguous(), op_name, "state tensor ", i,
                           " of shape ", st.shape(), " must be contiguous and shaped like its parameter ", p.shape());
            ::polymath::cuda::check_same_device(op_name, p, st);
        }
        grads.push_back(grads_in[i].contiguous());
    }
    const cudaStream_t stream = ::polymath::cuda::current_stream();
    kernels::MultiTensorArgs<T, G> a;
    auto flush = [&] {
        if (a.count == 0) return;
        const std::int64_t chunks = a.chunk_begin[a.count];
        const unsigned grid = unsigned(
            std::min<std::int64_t>(chunks, std::int64_t(::polymath::cuda::multiprocessor_count()) * 16));
        kernels::multi_tensor_apply<T, G, Op><<<grid, kernels::kThreads, 0, stream>>>(a, op);
        POLYMATH_CUDA_CHECK_LAUNCH("optim::cuda fused step");
        a = kernels::MultiTensorArgs<T, G>{};
    };
    for (std::size_t i = 0; i < N; ++i) {
        const std::int64_t n = params[i].numel();
        if (n == 0) continue;
        const int t = a.count;
        a.p[t] = params[i].data();
        a.g[t] = grads[i].data();
        a.s0[t] = s0 ? (*s0)[i].data() : nullptr;
        a.s1[t] = s1 ? (*s1)[i].data() : nullptr;
        a.s2[t] = s2 ? (*s2)[i].data() : nullptr;
        a.n[t] = n;
        a.vec[t] = aligned16(a.p[t]) && aligned16(a.s0[t]) && aligned16(a.s1[t]) && aligned16(a.s2[t]) &&
                   reinterpret_cast<std::uintptr_t>(a.g[t]) % (sizeof(G) * (16 / sizeof(T))) == 0;
        a.chunk_begin[t + 1] = a.chunk_begin[t] + (n + kernels::kChunk - 1) / kernels::kChunk;
        a.count = t + 1;
        if (a.count == kernels::kMaxTensors) flush();
    }
    flush();
}

template <class T>
kernels::AdamOp<T> adam_op(const char* op, double lr, double beta1, double beta2, double eps, double weight_decay,
                           bool amsgrad, bool decoupled, std::int64_t t) {
    POLYMATH_CHECK(std::isfinite(lr) && lr >= 0, op, "lr must be finite and >= 0, got ", lr);
    POLYMATH_CHECK(beta1 >= 0 && beta1 < 1, op, "beta1 must be in [0, 1), got ", beta1);
    POLYMATH_CHECK(beta2 >= 0 && beta2 < 1, op, "beta2 must be in [0, 1), got ", beta2);
    POLYMATH_CHECK(std::isfinite(eps) && eps >= 0, op, "eps must be finite and >= 0, got ", eps);
    POLYMATH_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, op, "weight_decay must be >= 0, got ",
                   weight_decay);
    POLYMATH_CHECK(t >= 1, op, "step must be >= 1 (the 1-based update count), got ", t);
    // As optim/adam.hpp's update().
    const double bc1 = 1.0 - std::pow(beta1, double(t));
    const double bc2 = 1.0 - std::pow(beta2, double(t));
    kernels::AdamOp<T> o;
    o.step_size = T(lr / bc1);
    o.bc2_sqrt = T(std::sqrt(bc2));
    o.b2 = T(beta2);
    o.eps = T(eps);
    o.wd = T(weight_decay);
    o.c1 = T(1.0 - beta1);
    o.c2 = T(1.0 - beta2);
    o.decay = T(1.0 - lr * weight_decay);
    o.use_wd = weight_decay != 0.0;
    o.dec = decoupled;
    o.ams = amsgrad;
    return o;
}

}  // namespace detail

// One Adam step (torch.optim.Adam) over every tensor: params[i] -= ... in place,
// exp_avg / exp_avg_sq (and max_exp_avg_sq with amsgrad) updated. step = t >= 1.
template <class T, class G>
void adam_step(const std::vector<Tensor<T, Cuda>>& params, const std::vector<Tensor<G, Cuda>>& grads,
               const std::vector<Tensor<T, Cuda>>& exp_avg, const std::vector<Tensor<T, Cuda>>& exp_avg_sq,
               std::int64_t step, const AdamOptions& o = {},
               const std::vector<Tensor<T, Cuda>>& max_exp_avg_sq = {}) {
    const auto op = detail::adam_op<T>("optim::cuda::adam_step", o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                                       o.amsgrad, false, step);
    POLYMATH_CHECK(!o.amsgrad || max_exp_avg_sq.size() == params.size(), "optim::cuda::adam_step",
                   "amsgrad needs one max_exp_avg_sq tensor per parameter");
    detail::apply<T, G>("optim::cuda::adam_step", params, grads, &exp_avg, &exp_avg_sq,
                        o.amsgrad ? &max_exp_avg_sq : nullptr, op);
}

// One AdamW step (torch.optim.AdamW: decoupled weight decay).
template <class T, class G>
void adamw_step(const std::vector<Tensor<T, Cuda>>& params, const std::vector<Tensor<G, Cuda>>& grads,
                const std::vector<Tensor<T, Cuda>>& exp_avg, const std::vector<Tensor<T, Cuda>>& exp_avg_sq,
                std::int64_t step, const AdamWOptions& o = {},
                const std::vector<Tensor<T, Cuda>>& max_exp_avg_sq = {}) {
    const auto op = detail::adam_op<T>("optim::cuda::adamw_step", o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                                       o.amsgrad, true, step);
    POLYMATH_CHECK(!o.amsgrad || max_exp_avg_sq.size() == params.size(), "optim::cuda::adamw_step",
                   "amsgrad needs one max_exp_avg_sq tensor per parameter");
    detail::apply<T, G>("optim::cuda::adamw_step", params, grads, &exp_avg, &exp_avg_sq,
                        o.amsgrad ? &max_exp_avg_sq : nullptr, op);
}

// One SGD step (torch.optim.SGD). momentum_buffers: one per parameter when
// momentum != 0 (ignored otherwise); step = t >= 1 (t == 1 initialises the buffers).
template <class T, class G>
void sgd_step(const std::vector<Tensor<T, Cuda>>& params, const std::vector<Tensor<G, Cuda>>& grads,
              const std::vector<Tensor<T, Cuda>>& momentum_buffers, std::int64_t step, const SGDOptions& o = {}) {
    const char* op = "optim::cuda::sgd_step";
    POLYMATH_CHECK(std::isfinite(o.lr) && o.lr >= 0, op, "lr must be finite and >= 0, got ", o.lr);
    POLYMATH_CHECK(std::isfinite(o.momentum) && o.momentum >= 0, op, "momentum must be >= 0, got ", o.momentum);
    POLYMATH_CHECK(std::isfinite(o.dampening), op, "dampening must be finite, got ", o.dampening);
    POLYMATH_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, op, "weight_decay must be >= 0, got ",
                   o.weight_decay);
    POLYMATH_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), op,
                   "Nesterov momentum requires momentum > 0 and dampening == 0, got momentum=", o.momentum,
                   " dampening=", o.dampening);
    POLYMATH_CHECK(step >= 1, op, "step must be >= 1 (the 1-based update count), got ", step);
    const bool use_mom = o.momentum != 0.0;
    POLYMATH_CHECK(!use_mom || momentum_buffers.size() == params.size(), op,
                   "momentum needs one momentum buffer per parameter, got ", momentum_buffers.size(), " for ",
                   params.size(), " parameters");
    kernels::SgdOp<T> k;
    k.lr = T(o.lr);
    k.wd = T(o.weight_decay);
    k.mom = T(o.momentum);
    k.damp1 = T(1.0 - o.dampening);
    k.use_wd = o.weight_decay != 0.0;
    k.use_mom = use_mom;
    k.nest = o.nesterov;
    k.first = step == 1;
    detail::apply<T, G>(op, params, grads, use_mom ? &momentum_buffers : nullptr, nullptr, nullptr, k);
}

}  // namespace polymath::optim::cuda
