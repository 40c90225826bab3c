// polymath/ops/cuda/loss.cuh — cross_entropy, nll_loss, mse_loss and their
// backward kernels on Tensor<T, Cuda> (no autograd), mirroring
// polymath/ops/loss.hpp (torch.nn.functional semantics without class weights):
//
//   cross_entropy_forward(logits, targets, CrossEntropyOptions) -> CrossEntropyForwardCuda<T>{loss, lse, count}
//   cross_entropy(logits, targets, opt)                          -> loss
//   cross_entropy_backward(g, logits, targets, lse, count, opt)  -> d logits
//   nll_loss(log_probs, targets, NllLossOptions) / nll_loss_backward(g, log_probs, targets, opt)
//   mse_loss(a, b, reduction) / mse_loss_backward(g, a, b, reduction, need_a, need_b) -> MseGradsCuda<T>{da, db}
//
// logits / log_probs are [N, C] with targets [N], or [N, C, d1, ...] with
// targets [N, d1, ...] (int64 class indices, Tensor<std::int64_t, Cuda>).
// ignore_index positions contribute 0 and are not counted; Mean divides by the
// kept count (0/0 = NaN when all are ignored; the gradient is then zero).
//
// Targets are validated like the CPU (a target outside [0, C) that is not
// ignore_index throws, naming value, position and C). Throwing needs the
// host, so every op that takes targets runs one single-block kernel that
// counts the kept targets and finds the first bad position, then reads those
// 24 bytes back: ONE small host synchronisation per call. That count is also
// the host-side `count` the CPU's CrossEntropyForward carries.
//
// Kernels:
//   * ce_fwd_warp / ce_fwd_block: the fused log-softmax per [P, C] row (class
//     axis last; [N, C, d...] inputs are permuted to rows first, as the CPU):
//     one warp per row with the row in registers for C <= 1024, one 512-thread
//     block per row (sweeps in L1/L2) beyond. Writes the per-position loss and
//     lse in compute precision.
//   * ce_bwd: d logits = ((exp(x - lse) - eps/C) * s), minus (1 - eps) * s at
//     the target; a warp (C <= 1024) or a block per row, no reductions.
//   * loss_sum_single_block: the Mean / Sum reduction of the per-position
//     losses in double, by one block in a fixed order (deterministic; the
//     number of positions is small next to the logits).
//   * nll_fwd / nll_bwd_scatter read and write [N, C, d...] in place (no
//     permute): one thread per position.
//   * mse: elementwise over the broadcast shape through strided indexers; the
//     Mean / Sum reduction is two-stage (a block count that depends only on
//     the element count, partials in double, then one block), and the backward
//     sums over broadcast dims with one thread per element of a (or b),
//     looping over the broadcast positions in a fixed order: no float atomics.
// dtypes: float, double; bfloat16 / half storage computing in float (lse and
// the per-position losses are kept in float for them).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "polymath/ops/cuda/softmax.cuh"  // shared device helpers

// The loss options are shared with the CPU ops (ops/loss_options.hpp).
#include "polymath/ops/loss_options.hpp"

namespace polymath::ops {

namespace cuda_kernels {

struct MinOp {
    template <class C>
    __device__ __forceinline__ C operator()(C a, C b) const {
        return b < a ? b : a;
    }
};

// One block: out[0] = number of targets != ign, out[1] = first position whose
// target is neither ign nor in [0, C) (P if none), out[2] = its value.
template <int Unused = 0>  // a template, so that the header may be in several TUs
__global__ void __launch_bounds__(1024) loss_check_targets(const std::int64_t* __restrict__ t, std::int64_t P,
                                                           std::int64_t C, std::int64_t ign,
                                                           std::int64_t* __restrict__ out) {
    __shared__ long long sh[33];
    long long cnt = 0, bad = P;
    for (std::int64_t p = threadIdx.x; p < P; p += blockDim.x) {
        const std::int64_t v = t[p];
        if (v == ign) continue;
        ++cnt;
        if ((v < 0 || v >= C) && bad == P) bad = p;  // p grows per thread: the first one is its minimum
    }
    cnt = block_reduce(cnt, SumOp{}, 0LL, sh);
    bad = block_reduce(bad, MinOp{}, static_cast<long long>(P), sh);
    if (threadIdx.x == 0) {
        out[0] = cnt;
        out[1] = bad;
        out[2] = bad < P ? t[bad] : 0;
    }
}

// Cross-entropy forward, one warp per row (C <= 32 * VPT).
template <class T, int VPT>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    ce_fwd_warp(const T* __restrict__ x, const std::int64_t* __restrict__ t, cuda::compute_t<T>* __restrict__ per,
                cuda::compute_t<T>* __restrict__ lse, std::int64_t P, int C, std::int64_t ign, cuda::compute_t<T> keep,
                cuda::compute_t<T> eps_c, bool smooth) {
    using Cm = cuda::compute_t<T>;
    const int lane = int(threadIdx.x) & 31;
    const std::int64_t stride = std::int64_t(gridDim.x) * kWarpRowsPerBlock;
    for (std::int64_t p = std::int64_t(blockIdx.x) * kWarpRowsPerBlock + (threadIdx.x >> 5); p < P; p += stride) {
        const std::int64_t tp = t[p];  // warp-uniform
        if (tp == ign) {
            if (lane == 0) {
                per[p] = Cm(0);
                lse[p] = Cm(0);
            }
            continue;
        }
        const T* xr = x + p * C;
        Cm v[VPT];
        Cm m = dev_neg_inf<Cm>();
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            v[k] = j < C ? ld(xr + j) : Cm(0);
            if (j < C) m = nan_max(m, v[k]);
        }
        m = warp_reduce(m, MaxOp{});
        Cm s = Cm(0);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            if (j < C) s += dev_exp(v[k] - m);
        }
        const Cm l = m + dev_log(warp_reduce(s, SumOp{}));
        Cm loss = l - ld(xr + tp);
        if (smooth) {
            Cm q = Cm(0);
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const int j = lane + 32 * k;
                if (j < C) q += l - v[k];
            }
            loss = keep * loss + eps_c * warp_reduce(q, SumOp{});
        }
        if (lane == 0) {
            per[p] = loss;
            lse[p] = l;
        }
    }
}

// Cross-entropy forward, one block per row (C > 1024).
template <class T>
__global__ void __launch_bounds__(kRowBlockThreads)
    ce_fwd_block(const T* __restrict__ x, const std::int64_t* __restrict__ t, cuda::compute_t<T>* __restrict__ per,
                 cuda::compute_t<T>* __restrict__ lse, std::int64_t P, std::int64_t C, std::int64_t ign,
                 cuda::compute_t<T> keep, cuda::compute_t<T> eps_c, bool smooth) {
    using Cm = cuda::compute_t<T>;
    __shared__ Cm sh[33];
    for (std::int64_t p = blockIdx.x; p < P; p += gridDim.x) {
        const std::int64_t tp = t[p];  // block-uniform
        if (tp == ign) {
            if (threadIdx.x == 0) {
                per[p] = Cm(0);
                lse[p] = Cm(0);
            }
            continue;
        }
        const T* xr = x + p * C;
        Cm m = dev_neg_inf<Cm>();
        for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) m = nan_max(m, ld(xr + j));
        m = block_reduce(m, MaxOp{}, dev_neg_inf<Cm>(), sh);
        Cm s = Cm(0);
        for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) s += dev_exp(ld(xr + j) - m);
        const Cm l = m + dev_log(block_reduce(s, SumOp{}, Cm(0), sh));
        Cm loss = l - ld(xr + tp);
        if (smooth) {
            Cm q = Cm(0);
            for (std::int64_t j = threadIdx.x; j < C; j += blockDim.x) q += l - ld(xr + j);
            loss = keep * loss + eps_c * block_reduce(q, SumOp{}, Cm(0), sh);
        }
        if (threadIdx.x == 0) {
            per[p] = loss;
            lse[p] = l;
        }
    }
}

// Scale of the upstream gradient at position p: mode 0 (Reduction::None) g[p];
// 1 (Mean) g[0] / count (0 when count == 0); 2 (Sum) g[0].
template <class T>
__device__ __forceinline__ cuda::compute_t<T> loss_grad_scale(const T* g, int mode, std::int64_t count, std::int64_t p) {
    using Cm = cuda::compute_t<T>;
    if (mode == 0) return ld(g + p);
    if (mode == 1) return count > 0 ? ld(g) / Cm(count) : Cm(0);
    return ld(g);
}

// d logits rows; Block: one block per row, else one warp per row.
template <class T, bool Block>
__global__ void ce_bwd(const T* __restrict__ x, const std::int64_t* __restrict__ t,
                       const cuda::compute_t<T>* __restrict__ lse, const T* __restrict__ g, int mode,
                       std::int64_t count, T* __restrict__ gx, std::int64_t P, std::int64_t C, std::int64_t ign,
                       cuda::compute_t<T> keep, cuda::compute_t<T> eps_c) {
    using Cm = cuda::compute_t<T>;
    const int gsize = Block ? int(blockDim.x) : 32;
    const int lid = Block ? int(threadIdx.x) : int(threadIdx.x) & 31;
    const std::int64_t groups_per_block = Block ? 1 : blockDim.x / 32;
    const std::int64_t p0 = std::int64_t(blockIdx.x) * groups_per_block + (Block ? 0 : threadIdx.x >> 5);
    const std::int64_t stride = std::int64_t(gridDim.x) * groups_per_block;
    for (std::int64_t p = p0; p < P; p += stride) {
        const std::int64_t tp = t[p];
        T* gr = gx + p * C;
        if (tp == ign) {
            for (std::int64_t j = lid; j < C; j += gsize) gr[j] = dtype_cast<T>(0);
            continue;
        }
        const T* xr = x + p * C;
        const Cm s = loss_grad_scale(g, mode, count, p), l = lse[p];
        for (std::int64_t j = lid; j < C; j += gsize) {
            Cm v = (dev_exp(ld(xr + j) - l) - eps_c) * s;
            if (j == tp) v -= keep * s;
            st(gr + j, v);
        }
    }
}

// Mean / Sum of per[0..n) in double by one block, fixed order: out[0] = sum / div.
template <class T, class S>
__global__ void __launch_bounds__(1024) loss_sum_single_block(const S* __restrict__ per, std::int64_t n, double div,
                                                              T* __restrict__ out) {
    __shared__ double sh[33];
    double acc = 0;
    for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += double(per[i]);
    acc = block_reduce(acc, SumOp{}, 0.0, sh);
    if (threadIdx.x == 0) out[0] = dtype_cast<T>(acc / div);
}

// per[p] = -x[n, t_p, d] (0 where ignored); x contiguous [N, C, Dd], p = n * Dd + d.
template <class T>
__global__ void nll_fwd(const T* __restrict__ x, const std::int64_t* __restrict__ t,
                        cuda::compute_t<T>* __restrict__ per, std::int64_t P, std::int64_t C, std::int64_t Dd,
                        std::int64_t ign) {
    using Cm = cuda::compute_t<T>;
    for (std::int64_t p = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; p < P;
         p += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t tp = t[p];
        if (tp == ign) {
            per[p] = Cm(0);
            continue;
        }
        const std::int64_t n = p / Dd, d = p - n * Dd;
        per[p] = -ld(x + (n * C + tp) * Dd + d);
    }
}

// gx (zeroed, contiguous [N, C, Dd]) gets -scale(p) at [n, t_p, d].
template <class T>
__global__ void nll_bwd_scatter(const std::int64_t* __restrict__ t, const T* __restrict__ g, int mode,
                                std::int64_t count, T* __restrict__ gx, std::int64_t P, std::int64_t C,
                                std::int64_t Dd, std::int64_t ign) {
    for (std::int64_t p = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; p < P;
         p += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t tp = t[p];
        if (tp == ign) continue;
        const std::int64_t n = p / Dd, d = p - n * Dd;
        st(gx + (n * C + tp) * Dd + d, -loss_grad_scale(g, mode, count, p));
    }
}

// out[i] = (a - b)^2 over the broadcast shape (out contiguous).
template <class T>
__global__ void mse_none(const T* __restrict__ a, cuda::StridedIndexer ia, const T* __restrict__ b,
                         cuda::StridedIndexer ib, T* __restrict__ out, std::int64_t n) {
    using Cm = cuda::compute_t<T>;
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x) {
        const Cm d = ld(a + ia.offset(i)) - ld(b + ib.offset(i));
        st(out + i, d * d);
    }
}

inline constexpr int kMseThreads = 256;
// Blocks of the first reduction stage: a function of n only (deterministic on any device).
inline unsigned mse_partial_blocks(std::int64_t n) {
    return unsigned(std::clamp<std::int64_t>((n + 4 * kMseThreads - 1) / (4 * kMseThreads), 1, 1024));
}

template <class T>
__global__ void __launch_bounds__(kMseThreads) mse_partial(const T* __restrict__ a, cuda::StridedIndexer ia,
                                                           const T* __restrict__ b, cuda::StridedIndexer ib,
                                                           double* __restrict__ partial, std::int64_t n) {
    using Cm = cuda::compute_t<T>;
    __shared__ double sh[33];
    double acc = 0;
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x) {
        const Cm d = ld(a + ia.offset(i)) - ld(b + ib.offset(i));
        acc += double(d * d);
    }
    acc = block_reduce(acc, SumOp{}, 0.0, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// out[j] = sign * sum over the broadcast positions k of ((a - b) * g) * scale,
// j over the operand's own elements (kept dims), k over the dims it was
// broadcast along. Offsets split: kept index + reduced index (disjoint dims).
struct MseSumToIndexers {
    cuda::StridedIndexer a_keep, a_red, b_keep, b_red, g_keep, g_red;
};
template <class T>
__global__ void mse_bwd_sum_to(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ g,
                               MseSumToIndexers ix, T* __restrict__ out, std::int64_t n_keep, std::int64_t n_red,
                               cuda::compute_t<T> scale, cuda::compute_t<T> sign) {
    using Cm = cuda::compute_t<T>;
    for (std::int64_t j = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; j < n_keep;
         j += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t oa = ix.a_keep.offset(j), ob = ix.b_keep.offset(j), og = ix.g_keep.offset(j);
        Cm acc = Cm(0);
        for (std::int64_t k = 0; k < n_red; ++k) {
            const Cm d = ((ld(a + oa + ix.a_red.offset(k)) - ld(b + ob + ix.b_red.offset(k))) *
                          ld(g + og + ix.g_red.offset(k))) *
                         scale;
            acc += sign * d;
        }
        st(out + j, acc);
    }
}

}  // namespace cuda_kernels

namespace detail {

inline std::string cuda_loss_index_string(std::int64_t flat, const Shape& s) {
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

// The [N, C, d...] geometry of a class-axis-1 input, the contiguous targets
// and the kept count (one small host read-back; throws like the CPU on a bad target).
struct CudaLossTargets {
    Tensor<std::int64_t, Cuda> targets;  // contiguous, [P]
    std::int64_t P = 0, C = 0, N = 0, Dd = 1, count = 0;
    Shape loss_shape;  // [N, d...]
};

template <class T>
CudaLossTargets cuda_loss_targets(const Tensor<T, Cuda>& x, const Tensor<std::int64_t, Cuda>& targets,
                                  std::int64_t ignore_index, const char* op, const char* what) {
    static_assert(cuda_kernels::is_cuda_float_v<T>, "polymath CUDA losses take float, double, bfloat16 or half");
    x.check_defined(op);
    targets.check_defined(op);
    POLYMATH_CHECK(x.dim() >= 2, op, what, " must be [N, C] or [N, C, d1, ...], got shape ", x.shape());
    CudaLossTargets r;
    r.N = x.shape()[0];
    r.C = x.shape()[1];
    r.loss_shape.push_back(x.shape()[0]);
    for (int d = 2; d < x.dim(); ++d) {
        r.loss_shape.push_back(x.shape()[d]);
        r.Dd *= x.shape()[d];
    }
    POLYMATH_CHECK(targets.shape() == r.loss_shape, op, "targets of shape ", targets.shape(), " do not match ", what,
                   " of shape ", x.shape(), " (expected targets of shape ", r.loss_shape, ")");
    cuda::check_same_device(op, x, targets);
    r.P = numel_of(r.loss_shape);
    r.targets = targets.contiguous();
    if (r.P == 0) return r;
    Tensor<std::int64_t, Cuda> res = Tensor<std::int64_t, Cuda>::empty({3});
    cuda_kernels::loss_check_targets<><<<1, 1024, 0, cuda::current_stream()>>>(r.targets.data(), r.P, r.C, ignore_index,
                                                                             res.data());
    POLYMATH_CUDA_CHECK_LAUNCH("loss target check");
    const std::vector<std::int64_t> v = res.to_vector();  // waits for the stream (24 bytes)
    if (v[1] < r.P) {
        POLYMATH_THROW(op, "target value ", v[2], " at position ", cuda_loss_index_string(v[1], r.loss_shape),
                       " of targets ", targets.shape(), " is out of range for ", r.C, " classes (valid: 0..", r.C - 1,
                       ", or ignore_index ", ignore_index, ")");
    }
    r.count = v[0];
    return r;
}

// Per-position losses (compute type, [P]) -> the reduced loss in T.
template <class T>
Tensor<T, Cuda> cuda_loss_reduce(const Tensor<cuda::compute_t<T>, Cuda>& per, std::int64_t count, Reduction red,
                                 const Shape& shape) {
    if (red == Reduction::None) return per.template to<T>().reshape(shape);
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(Shape{});
    const double div = red == Reduction::Mean ? double(count) : 1.0;  // Mean with count 0: 0/0 = NaN
    cuda_kernels::loss_sum_single_block<T><<<1, 1024, 0, cuda::current_stream()>>>(per.data(), per.numel(), div,
                                                                                   out.data());
    POLYMATH_CUDA_CHECK_LAUNCH("loss reduction");
    return out;
}

// Checks g against the reduction; returns g contiguous and the kernel mode
// (0 None: per position, 1 Mean, 2 Sum).
template <class T>
Tensor<T, Cuda> cuda_loss_grad(const Tensor<T, Cuda>& g, Reduction red, const Shape& loss_shape, const char* op,
                               int& mode) {
    g.check_defined(op);
    if (red == Reduction::None) {
        POLYMATH_CHECK(g.shape() == loss_shape, op, "gradient of shape ", g.shape(), " does not match the loss shape ",
                       loss_shape);
        mode = 0;
    } else {
        POLYMATH_CHECK(g.numel() == 1, op, "gradient of a reduced loss must have one element, got shape ", g.shape());
        mode = red == Reduction::Mean ? 1 : 2;
    }
    return g.contiguous();
}

}  // namespace detail

template <class T>
struct CrossEntropyForwardCuda {
    Tensor<T, Cuda> loss;                  // 0-d, or the targets' shape for Reduction::None
    Tensor<cuda::compute_t<T>, Cuda> lse;  // [P] log-sum-exp per position (0 where ignored)
    std::int64_t count = 0;                // non-ignored positions
};

template <class T>
CrossEntropyForwardCuda<T> cross_entropy_forward(const Tensor<T, Cuda>& logits,
                                                 const Tensor<std::int64_t, Cuda>& targets,
                                                 const CrossEntropyOptions& opt = {}) {
    using Cm = cuda::compute_t<T>;
    POLYMATH_CHECK(opt.label_smoothing >= 0.0 && opt.label_smoothing <= 1.0, "cross_entropy",
                   "label_smoothing must be in [0, 1], got ", opt.label_smoothing);
    const detail::CudaLossTargets lt =
        detail::cuda_loss_targets(logits, targets, opt.ignore_index, "cross_entropy", "logits");
    CrossEntropyForwardCuda<T> out;
    out.count = lt.count;
    out.lse = Tensor<Cm, Cuda>::empty({lt.P});
    Tensor<Cm, Cuda> per = Tensor<Cm, Cuda>::empty({lt.P});
    const std::int64_t P = lt.P, C = lt.C;
    if (P > 0 && C > 0) {
        std::vector<std::int64_t> perm{0};
        for (int d = 2; d < logits.dim(); ++d) perm.push_back(d);
        perm.push_back(1);
        const Tensor<T, Cuda> rows =
            logits.dim() == 2 ? logits.contiguous() : logits.permute(perm).contiguous().view({P, C});
        const Cm eps = Cm(opt.label_smoothing), keep = Cm(1) - eps, eps_c = eps / Cm(C);
        const bool smooth = opt.label_smoothing != 0.0;
        const cudaStream_t s = cuda::current_stream();
        namespace k = cuda_kernels;
        if (C <= k::kRowWarpMax) {
            k::dispatch_vpt(C, [&](auto vpt) {
                k::ce_fwd_warp<T, decltype(vpt)::value><<<k::warp_row_blocks(P), 32 * k::kWarpRowsPerBlock, 0, s>>>(
                    rows.data(), lt.targets.data(), per.data(), out.lse.data(), P, int(C), opt.ignore_index, keep,
                    eps_c, smooth);
            });
        } else {
            k::ce_fwd_block<T><<<k::block_row_blocks(P), k::kRowBlockThreads, 0, s>>>(
                rows.data(), lt.targets.data(), per.data(), out.lse.data(), P, C, opt.ignore_index, keep, eps_c,
                smooth);
        }
        POLYMATH_CUDA_CHECK_LAUNCH("cross_entropy");
    } else if (P > 0) {  // C == 0: every target must have been ignored; losses 0
        per.fill_(Cm(0));
        out.lse.fill_(Cm(0));
    }
    out.loss = detail::cuda_loss_reduce<T>(per, lt.count, opt.reduction, lt.loss_shape);
    return out;
}

template <class T>
Tensor<T, Cuda> cross_entropy(const Tensor<T, Cuda>& logits, const Tensor<std::int64_t, Cuda>& targets,
                              const CrossEntropyOptions& opt = {}) {
    return cross_entropy_forward(logits, targets, opt).loss;
}

// d logits (shape of logits) from the loss gradient g (0-d, or the targets'
// shape for Reduction::None) and the forward's lse and count.
template <class T>
Tensor<T, Cuda> cross_entropy_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& logits,
                                       const Tensor<std::int64_t, Cuda>& targets,
                                       const Tensor<cuda::compute_t<T>, Cuda>& lse, std::int64_t count,
                                       const CrossEntropyOptions& opt = {}) {
    using Cm = cuda::compute_t<T>;
    const detail::CudaLossTargets lt =
        detail::cuda_loss_targets(logits, targets, opt.ignore_index, "cross_entropy_backward", "logits");
    int mode = 0;
    const Tensor<T, Cuda> gc = detail::cuda_loss_grad(g, opt.reduction, lt.loss_shape, "cross_entropy_backward", mode);
    lse.check_defined("cross_entropy_backward");
    POLYMATH_CHECK(lse.numel() == lt.P, "cross_entropy_backward", "lse of shape ", lse.shape(), " does not have ", lt.P,
                   " elements");
    cuda::check_same_device("cross_entropy_backward", logits, g, lse);
    const std::int64_t P = lt.P, C = lt.C;
    Tensor<T, Cuda> grad = Tensor<T, Cuda>::empty({P, C});
    if (P > 0 && C > 0) {
        const Tensor<Cm, Cuda> lc = lse.contiguous();
        std::vector<std::int64_t> perm{0};
        for (int d = 2; d < logits.dim(); ++d) perm.push_back(d);
        perm.push_back(1);
        const Tensor<T, Cuda> rows =
            logits.dim() == 2 ? logits.contiguous() : logits.permute(perm).contiguous().view({P, C});
        const Cm eps = Cm(opt.label_smoothing), keep = Cm(1) - eps, eps_c = eps / Cm(C);
        const cudaStream_t s = cuda::current_stream();
        namespace k = cuda_kernels;
        if (C <= k::kRowWarpMax)
            k::ce_bwd<T, false><<<k::warp_row_blocks(P), 32 * k::kWarpRowsPerBlock, 0, s>>>(
                rows.data(), lt.targets.data(), lc.data(), gc.data(), mode, count, grad.data(), P, C,
                opt.ignore_index, keep, eps_c);
        else
            k::ce_bwd<T, true><<<k::block_row_blocks(P), k::kRowBlockThreads, 0, s>>>(
                rows.data(), lt.targets.data(), lc.data(), gc.data(), mode, count, grad.data(), P, C,
                opt.ignore_index, keep, eps_c);
        POLYMATH_CUDA_CHECK_LAUNCH("cross_entropy_backward");
    }
    const Shape& shape = logits.shape();
    if (shape.size() == 2) return grad.view(shape);
    Shape sv{shape[0]};
    for (int d = 2; d < shape.size(); ++d) sv.push_back(shape[d]);
    sv.push_back(shape[1]);
    std::vector<std::int64_t> perm{0, shape.size() - 1};
    for (int d = 1; d < shape.size() - 1; ++d) perm.push_back(d);
    return grad.view(sv).permute(perm).contiguous();
}

// Negative log likelihood of log-probabilities (e.g. log_softmax output).
template <class T>
Tensor<T, Cuda> nll_loss(const Tensor<T, Cuda>& log_probs, const Tensor<std::int64_t, Cuda>& targets,
                         const NllLossOptions& opt = {}) {
    using Cm = cuda::compute_t<T>;
    const detail::CudaLossTargets lt =
        detail::cuda_loss_targets(log_probs, targets, opt.ignore_index, "nll_loss", "log_probs");
    const Tensor<T, Cuda> x = log_probs.contiguous();
    Tensor<Cm, Cuda> per = Tensor<Cm, Cuda>::empty({lt.P});
    if (lt.P > 0) {
        cuda_kernels::nll_fwd<T><<<cuda::grid_for(lt.P), cuda::kThreads, 0, cuda::current_stream()>>>(
            x.data(), lt.targets.data(), per.data(), lt.P, lt.C, lt.Dd, opt.ignore_index);
        POLYMATH_CUDA_CHECK_LAUNCH("nll_loss");
    }
    return detail::cuda_loss_reduce<T>(per, lt.count, opt.reduction, lt.loss_shape);
}

// d log_probs: -g/count at [p, target_p], 0 elsewhere.
template <class T>
Tensor<T, Cuda> nll_loss_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& log_probs,
                                  const Tensor<std::int64_t, Cuda>& targets, const NllLossOptions& opt = {}) {
    const detail::CudaLossTargets lt =
        detail::cuda_loss_targets(log_probs, targets, opt.ignore_index, "nll_loss_backward", "log_probs");
    int mode = 0;
    const Tensor<T, Cuda> gc = detail::cuda_loss_grad(g, opt.reduction, lt.loss_shape, "nll_loss_backward", mode);
    cuda::check_same_device("nll_loss_backward", log_probs, g);
    Tensor<T, Cuda> grad = Tensor<T, Cuda>::zeros(log_probs.shape());
    if (lt.P > 0) {
        cuda_kernels::nll_bwd_scatter<T><<<cuda::grid_for(lt.P), cuda::kThreads, 0, cuda::current_stream()>>>(
            lt.targets.data(), gc.data(), mode, lt.count, grad.data(), lt.P, lt.C, lt.Dd, opt.ignore_index);
        POLYMATH_CUDA_CHECK_LAUNCH("nll_loss_backward");
    }
    return grad;
}

// Mean (or sum, or elementwise) squared error; a and b broadcast.
template <class T>
Tensor<T, Cuda> mse_loss(const Tensor<T, Cuda>& a_in, const Tensor<T, Cuda>& b_in,
                         Reduction reduction = Reduction::Mean) {
    static_assert(cuda_kernels::is_cuda_float_v<T>, "polymath CUDA losses take float, double, bfloat16 or half");
    a_in.check_defined("mse_loss");
    b_in.check_defined("mse_loss");
    const Shape shape = broadcast_shapes(a_in.shape(), b_in.shape(), "mse_loss");
    cuda::check_same_device("mse_loss", a_in, b_in);
    const Tensor<T, Cuda> a = a_in.contiguous().expand(shape), b = b_in.contiguous().expand(shape);
    const cuda::StridedIndexer ia(shape, a.strides()), ib(shape, b.strides());
    const std::int64_t n = numel_of(shape);
    const cudaStream_t s = cuda::current_stream();
    namespace k = cuda_kernels;
    if (reduction == Reduction::None) {
        Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(shape);
        if (n > 0) {
            k::mse_none<T><<<cuda::grid_for(n), cuda::kThreads, 0, s>>>(a.data(), ia, b.data(), ib, out.data(), n);
            POLYMATH_CUDA_CHECK_LAUNCH("mse_loss");
        }
        return out;
    }
    if (n == 0)
        return Tensor<T, Cuda>::full(Shape{}, reduction == Reduction::Sum
                                                  ? dtype_cast<T>(0)
                                                  : dtype_cast<T>(std::numeric_limits<float>::quiet_NaN()));
    const unsigned nb = k::mse_partial_blocks(n);
    Tensor<double, Cuda> partial = Tensor<double, Cuda>::empty({std::int64_t(nb)});
    k::mse_partial<T><<<nb, k::kMseThreads, 0, s>>>(a.data(), ia, b.data(), ib, partial.data(), n);
    POLYMATH_CUDA_CHECK_LAUNCH("mse_loss (partials)");
    Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(Shape{});
    k::loss_sum_single_block<T><<<1, 1024, 0, s>>>(partial.data(), std::int64_t(nb),
                                                   reduction == Reduction::Mean ? double(n) : 1.0, out.data());
    POLYMATH_CUDA_CHECK_LAUNCH("mse_loss (sum)");
    return out;
}

template <class T>
struct MseGradsCuda {
    Tensor<T, Cuda> da, db;
};

// Gradients of mse_loss w.r.t. a and b (each in its own shape).
template <class T>
MseGradsCuda<T> mse_loss_backward(const Tensor<T, Cuda>& g, const Tensor<T, Cuda>& a_in, const Tensor<T, Cuda>& b_in,
                                  Reduction reduction = Reduction::Mean, bool need_a = true, bool need_b = true) {
    using Cm = cuda::compute_t<T>;
    static_assert(cuda_kernels::is_cuda_float_v<T>, "polymath CUDA losses take float, double, bfloat16 or half");
    g.check_defined("mse_loss_backward");
    a_in.check_defined("mse_loss_backward");
    b_in.check_defined("mse_loss_backward");
    const Shape shape = broadcast_shapes(a_in.shape(), b_in.shape(), "mse_loss_backward");
    Cm scale = Cm(2);
    if (reduction == Reduction::Mean) scale = Cm(2) / Cm(std::max<std::int64_t>(numel_of(shape), 1));
    if (reduction != Reduction::None)
        POLYMATH_CHECK(g.numel() == 1, "mse_loss_backward",
                       "gradient of a reduced loss must have one element, got shape ", g.shape());
    else
        POLYMATH_CHECK(g.shape() == shape, "mse_loss_backward", "gradient of shape ", g.shape(),
                       " does not match the loss shape ", shape);
    cuda::check_same_device("mse_loss_backward", a_in, b_in, g);
    const Tensor<T, Cuda> ac = a_in.contiguous(), bc = b_in.contiguous(), gc = g.contiguous();
    const Tensor<T, Cuda> ae = ac.expand(shape), be = bc.expand(shape);
    const Tensor<T, Cuda> ge = reduction == Reduction::None ? gc : gc.reshape(Shape{}).expand(shape);
    const int nd = shape.size();
    MseGradsCuda<T> r;
    auto one = [&](const Shape& xs, Cm sign) {
        Tensor<T, Cuda> out = Tensor<T, Cuda>::empty(xs);
        const std::int64_t n_keep = numel_of(xs);
        if (n_keep == 0) return out;
        Shape keep = Shape::filled(nd, 1), red = Shape::filled(nd, 1);
        const int off = nd - xs.size();
        for (int d = 0; d < nd; ++d) {
            const std::int64_t e = d < off ? 1 : xs[d - off];
            keep[d] = e;
            red[d] = (e == 1 && shape[d] != 1) ? shape[d] : 1;
        }
        const std::int64_t n_red = numel_of(red);
        cuda_kernels::MseSumToIndexers ix;
        ix.a_keep = cuda::StridedIndexer(keep, ae.strides());
        ix.a_red = cuda::StridedIndexer(red, ae.strides());
        ix.b_keep = cuda::StridedIndexer(keep, be.strides());
        ix.b_red = cuda::StridedIndexer(red, be.strides());
        ix.g_keep = cuda::StridedIndexer(keep, ge.strides());
        ix.g_red = cuda::StridedIndexer(red, ge.strides());
        if (n_red == 0) {
            out.fill_(dtype_cast<T>(0));
            return out;
        }
        cuda_kernels::mse_bwd_sum_to<T><<<cuda::grid_for(n_keep), cuda::kThreads, 0, cuda::current_stream()>>>(
            ae.data(), be.data(), ge.data(), ix, out.data(), n_keep, n_red, scale, sign);
        POLYMATH_CUDA_CHECK_LAUNCH("mse_loss_backward");
        return out;
    };
    if (need_a) r.da = one(ac.shape(), Cm(1));
    if (need_b) r.db = one(bc.shape(), Cm(-1));
    return r;
}

}  // namespace polymath::ops
