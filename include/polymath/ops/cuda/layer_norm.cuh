// polymath/ops/cuda/layer_norm.cuh — layer normalisation and its backward on
// Tensor<T, Cuda> (no autograd), mirroring polymath/ops/layer_norm.hpp:
//
//   layer_norm(x, normalized_shape, weight = {}, bias = {}, eps = 1e-5)
//     each row of D = prod(normalized_shape) elements: y = (x - mean) * rstd
//     * weight + bias, rstd = 1 / sqrt(biased var + eps); weight / bias
//     optional (undefined tensor = omitted).
//   layer_norm_forward(...) -> LayerNormForwardCuda<T>{y, mean, rstd}; mean /
//     rstd are shaped like x with the normalised dims set to 1 (as the CPU).
//     They are kept in compute_t<T> (float for bfloat16 / half, T otherwise),
//     so for float and double they are exactly the CPU's Tensor<T>.
//   layer_norm_backward(g, x, mean, rstd, normalized_shape, weight,
//                       need_dx, need_dweight, need_dbias)
//     dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * weight
//     (or g); dweight = sum over rows g * xhat, dbias = sum over rows g.
//
// Kernels:
//   * layer_norm_warp_fwd / _bwd_dx (D <= 1024): one warp per row, 4 rows per
//     block, the row's values in registers (lane j holds j, j+32, ...:
//     coalesced); the mean and then the variance around it (no cancellation,
//     as the CPU) by warp butterflies; one read and one write of the row.
//   * layer_norm_block_fwd / _bwd_dx (D > 1024): one 512-thread block per row,
//     sweeps over the row (which stays in L1/L2 between sweeps).
//   * layer_norm_param_partial: dweight / dbias without float atomics. Grid
//     (ceil(D/32) column tiles) x (row chunks); a 32x8 block walks its chunk of
//     rows 8 at a time (each warp reads 32 consecutive columns of one row),
//     sums per column in registers, folds the 8 partial rows in shared memory
//     in a fixed order and writes one [chunk, D] partial. The chunking depends
//     only on (rows, D), never on the device.
//   * layer_norm_param_final: one thread per column sums the chunk partials
//     in chunk order. Results are bit-identical from run to run.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "polymath/ops/cuda/softmax.cuh"  // shared device helpers (warp/block reductions, ld/st)

namespace polymath::ops {

namespace cuda_kernels {

inline constexpr int kLnParamTileCols = 32;
inline constexpr int kLnParamTileRows = 8;
inline constexpr std::int64_t kLnMaxChunks = 256;

// Forward, one warp per row. mean / rstd: one compute-type value per row.
template <class T, int VPT, bool HasW, bool HasB>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    layer_norm_warp_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
                        cuda::compute_t<T>* __restrict__ mean, cuda::compute_t<T>* __restrict__ rstd,
                        std::int64_t rows, int D, cuda::compute_t<T> inv_d, cuda::compute_t<T> eps) {
    using C = cuda::compute_t<T>;
    const int lane = int(threadIdx.x) & 31;
    const std::int64_t stride = std::int64_t(gridDim.x) * kWarpRowsPerBlock;
    for (std::int64_t row = std::int64_t(blockIdx.x) * kWarpRowsPerBlock + (threadIdx.x >> 5); row < rows;
         row += stride) {
        const T* xr = x + row * D;
        T* yr = y + row * D;
        C v[VPT];
        C s = C(0);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            v[k] = j < D ? ld(xr + j) : C(0);
            s += v[k];
        }
        const C mu = warp_reduce(s, SumOp{}) * inv_d;
        C q = C(0);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            if (j < D) q += (v[k] - mu) * (v[k] - mu);
        }
        const C var = warp_reduce(q, SumOp{}) * inv_d;
        const C rs = C(1) / dev_sqrt(var + eps);
        if (lane == 0) {
            mean[row] = mu;
            rstd[row] = rs;
        }
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            if (j < D) {
                C o = (v[k] - mu) * rs;
                if constexpr (HasW) o *= ld(w + j);
                if constexpr (HasB) o += ld(b + j);
                st(yr + j, o);
            }
        }
    }
}

// Forward, one block per row (D > 1024).
template <class T, bool HasW, bool HasB>
__global__ void __launch_bounds__(kRowBlockThreads)
    layer_norm_block_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
                         cuda::compute_t<T>* __restrict__ mean, cuda::compute_t<T>* __restrict__ rstd,
                         std::int64_t rows, std::int64_t D, cuda::compute_t<T> inv_d, cuda::compute_t<T> eps) {
    using C = cuda::compute_t<T>;
    __shared__ C sh[33];
    for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * D;
        T* yr = y + row * D;
        C s = C(0);
        for (std::int64_t j = threadIdx.x; j < D; j += blockDim.x) s += ld(xr + j);
        const C mu = block_reduce(s, SumOp{}, C(0), sh) * inv_d;
        C q = C(0);
        for (std::int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            const C d = ld(xr + j) - mu;
            q += d * d;
        }
        const C var = block_reduce(q, SumOp{}, C(0), sh) * inv_d;
        const C rs = C(1) / dev_sqrt(var + eps);
        if (threadIdx.x == 0) {
            mean[row] = mu;
            rstd[row] = rs;
        }
        for (std::int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            C o = (ld(xr + j) - mu) * rs;
            if constexpr (HasW) o *= ld(w + j);
            if constexpr (HasB) o += ld(b + j);
            st(yr + j, o);
        }
    }
}

// dx, one warp per row: a = mean(gw), b = mean(gw * xhat), dx = ((gw - a) - xhat * b) * rs.
template <class T, int VPT, bool HasW>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    layer_norm_warp_bwd_dx(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                           const cuda::compute_t<T>* __restrict__ mean, const cuda::compute_t<T>* __restrict__ rstd,
                           T* __restrict__ dx, std::int64_t rows, int D, cuda::compute_t<T> inv_d) {
    using C = cuda::compute_t<T>;
    const int lane = int(threadIdx.x) & 31;
    const std::int64_t stride = std::int64_t(gridDim.x) * kWarpRowsPerBlock;
    for (std::int64_t row = std::int64_t(blockIdx.x) * kWarpRowsPerBlock + (threadIdx.x >> 5); row < rows;
         row += stride) {
        const std::int64_t base = row * D;
        const C mu = mean[row], rs = rstd[row];
        C gw[VPT], xh[VPT];
        C sa = C(0), sb = C(0);
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            if (j < D) {
                C gv = ld(g + base + j);
                if constexpr (HasW) gv *= ld(w + j);
                gw[k] = gv;
                xh[k] = (ld(x + base + j) - mu) * rs;
                sa += gw[k];
                sb += gw[k] * xh[k];
            } else {
                gw[k] = C(0);
                xh[k] = C(0);
            }
        }
        const C a = warp_reduce(sa, SumOp{}) * inv_d;
        const C bb = warp_reduce(sb, SumOp{}) * inv_d;
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const int j = lane + 32 * k;
            if (j < D) st(dx + base + j, ((gw[k] - a) - xh[k] * bb) * rs);
        }
    }
}

template <class T, bool HasW>
__global__ void __launch_bounds__(kRowBlockThreads)
    layer_norm_block_bwd_dx(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                            const cuda::compute_t<T>* __restrict__ mean, const cuda::compute_t<T>* __restrict__ rstd,
                            T* __restrict__ dx, std::int64_t rows, std::int64_t D, cuda::compute_t<T> inv_d) {
    using C = cuda::compute_t<T>;
    __shared__ C sh[33];
    for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const std::int64_t base = row * D;
        const C mu = mean[row], rs = rstd[row];
        C sa = C(0), sb = C(0);
        for (std::int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            C gv = ld(g + base + j);
            if constexpr (HasW) gv *= ld(w + j);
            sa += gv;
            sb += gv * ((ld(x + base + j) - mu) * rs);
        }
        const C a = block_reduce(sa, SumOp{}, C(0), sh) * inv_d;
        const C bb = block_reduce(sb, SumOp{}, C(0), sh) * inv_d;
        for (std::int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            C gv = ld(g + base + j);
            if constexpr (HasW) gv *= ld(w + j);
            const C xh = (ld(x + base + j) - mu) * rs;
            st(dx + base + j, ((gv - a) - xh * bb) * rs);
        }
    }
}

// Partial column sums of g * xhat (pw) and g (pb) over one chunk of rows.
// Block (32, 8); grid (ceil(D / 32), nchunks). pw / pb: [nchunks, D].
template <class T>
__global__ void __launch_bounds__(kLnParamTileCols * kLnParamTileRows)
    layer_norm_param_partial(const T* __restrict__ g, const T* __restrict__ x,
                             const cuda::compute_t<T>* __restrict__ mean, const cuda::compute_t<T>* __restrict__ rstd,
                             cuda::compute_t<T>* __restrict__ pw, cuda::compute_t<T>* __restrict__ pb,
                             std::int64_t rows, std::int64_t D, std::int64_t rows_per_chunk) {
    using C = cuda::compute_t<T>;
    __shared__ C shw[kLnParamTileRows][kLnParamTileCols + 1];
    __shared__ C shb[kLnParamTileRows][kLnParamTileCols + 1];
    const int tx = int(threadIdx.x), ty = int(threadIdx.y);
    const std::int64_t col = std::int64_t(blockIdx.x) * kLnParamTileCols + tx;
    const std::int64_t chunk = blockIdx.y;
    const std::int64_t r0 = chunk * rows_per_chunk, r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    C aw = C(0), ab = C(0);
    if (col < D) {
        for (std::int64_t r = r0 + ty; r < r1; r += kLnParamTileRows) {
            const C gv = ld(g + r * D + col);
            aw += gv * ((ld(x + r * D + col) - mean[r]) * rstd[r]);
            ab += gv;
        }
    }
    shw[ty][tx] = aw;
    shb[ty][tx] = ab;
    __syncthreads();
    if (ty == 0 && col < D) {
        C sw = C(0), sb = C(0);
#pragma unroll
        for (int k = 0; k < kLnParamTileRows; ++k) {
            sw += shw[k][tx];
            sb += shb[k][tx];
        }
        pw[chunk * D + col] = sw;
        pb[chunk * D + col] = sb;
    }
}

// dweight[c] = sum over chunks pw[k, c] (in chunk order), likewise dbias.
template <class T>
__global__ void layer_norm_param_final(const cuda::compute_t<T>* __restrict__ pw,
                                       const cuda::compute_t<T>* __restrict__ pb, T* __restrict__ dw,
                                       T* __restrict__ db, std::int64_t nchunks, std::int64_t D) {
    using C = cuda::compute_t<T>;
    for (std::int64_t c = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; c < D;
         c += std::int64_t(gridDim.x) * blockDim.x) {
        C sw = C(0), sb = C(0);
        for (std::int64_t k = 0; k < nchunks; ++k) {
            sw += pw[k * D + c];
            sb += pb[k * D + c];
        }
        if (dw) st(dw + c, sw);
        if (db) st(db + c, sb);
    }
}

}  // namespace cuda_kernels

namespace detail {

struct CudaLayerNormGeometry {
    std::int64_t rows = 0, D = 1;
    Shape stat_shape;  // x's shape with the normalised dims set to 1
};

template <class T>
CudaLayerNormGeometry cuda_layer_norm_geometry(const Tensor<T, Cuda>& x, const Shape& ns,
                                               const Tensor<T, Cuda>& weight, const Tensor<T, Cuda>& bias,
                                               const char* op) {
    static_assert(cuda_kernels::is_cuda_float_v<T>, "polymath CUDA layer_norm takes float, double, bfloat16 or half");
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
    if (weight.defined()) cuda::check_same_device(op, x, weight);
    if (bias.defined()) cuda::check_same_device(op, x, bias);
    CudaLayerNormGeometry g;
    g.D = numel_of(ns);
    g.rows = g.D > 0 ? x.numel() / g.D : 0;
    g.stat_shape = x.shape();
    for (int i = x.dim() - k; i < x.dim(); ++i) g.stat_shape[i] = 1;
    return g;
}

}  // namespace detail

template <class T>
struct LayerNormForwardCuda {
    Tensor<T, Cuda> y;                      // shape of x
    Tensor<cuda::compute_t<T>, Cuda> mean;  // per row, x's shape with the normalised dims set to 1
    Tensor<cuda::compute_t<T>, Cuda> rstd;  // per row, 1 / sqrt(var + eps)
};

template <class T>
LayerNormForwardCuda<T> layer_norm_forward(const Tensor<T, Cuda>& x_in, const Shape& normalized_shape,
                                           const Tensor<T, Cuda>& weight = {}, const Tensor<T, Cuda>& bias = {},
                                           double eps = 1e-5) {
    using C = cuda::compute_t<T>;
    const detail::CudaLayerNormGeometry geo =
        detail::cuda_layer_norm_geometry(x_in, normalized_shape, weight, bias, "layer_norm");
    const Tensor<T, Cuda> x = x_in.contiguous();
    LayerNormForwardCuda<T> out;
    out.y = Tensor<T, Cuda>::empty(x.shape());
    out.mean = Tensor<C, Cuda>::empty(geo.stat_shape);
    out.rstd = Tensor<C, Cuda>::empty(geo.stat_shape);
    const std::int64_t D = geo.D, rows = geo.rows;
    if (rows == 0 || D == 0) return out;
    const Tensor<T, Cuda> w = weight.defined() ? weight.contiguous() : weight;
    const Tensor<T, Cuda> b = bias.defined() ? bias.contiguous() : bias;
    const T* wp = w.defined() ? w.data() : nullptr;
    const T* bp = b.defined() ? b.data() : nullptr;
    const C inv_d = C(1) / C(D), ceps = C(eps);
    const cudaStream_t s = cuda::current_stream();
    namespace k = cuda_kernels;
    auto launch = [&](auto hw, auto hb) {
        constexpr bool HW = decltype(hw)::value, HB = decltype(hb)::value;
        if (D <= k::kRowWarpMax) {
            k::dispatch_vpt(D, [&](auto vpt) {
                k::layer_norm_warp_fwd<T, decltype(vpt)::value, HW, HB>
                    <<<k::warp_row_blocks(rows), 32 * k::kWarpRowsPerBlock, 0, s>>>(
                        x.data(), wp, bp, out.y.data(), out.mean.data(), out.rstd.data(), rows, int(D), inv_d, ceps);
            });
        } else {
            k::layer_norm_block_fwd<T, HW, HB><<<k::block_row_blocks(rows), k::kRowBlockThreads, 0, s>>>(
                x.data(), wp, bp, out.y.data(), out.mean.data(), out.rstd.data(), rows, D, inv_d, ceps);
        }
    };
    if (wp && bp) launch(std::true_type{}, std::true_type{});
    else if (wp) launch(std::true_type{}, std::false_type{});
    else if (bp) launch(std::false_type{}, std::true_type{});
    else launch(std::false_type{}, std::false_type{});
    POLYMATH_CUDA_CHECK_LAUNCH("layer_norm");
    return out;
}

template <class T>
Tensor<T, Cuda> layer_norm(const Tensor<T, Cuda>& x, const Shape& normalized_shape, const Tensor<T, Cuda>& weight = {},
                           const Tensor<T, Cuda>& bias = {}, double eps = 1e-5) {
    return layer_norm_forward(x, normalized_shape, weight, bias, eps).y;
}

template <class T>
struct LayerNormGradsCuda {
    Tensor<T, Cuda> dx;       // shape of x (undefined when not requested)
    Tensor<T, Cuda> dweight;  // normalized_shape (undefined when not requested)
    Tensor<T, Cuda> dbias;
};

// Gradients of layer_norm from g (shape of x) and the forward's mean / rstd.
// `weight` is the forward's weight (undefined if none).
template <class T>
LayerNormGradsCuda<T> layer_norm_backward(const Tensor<T, Cuda>& g_in, const Tensor<T, Cuda>& x_in,
                                          const Tensor<cuda::compute_t<T>, Cuda>& mean,
                                          const Tensor<cuda::compute_t<T>, Cuda>& rstd, const Shape& normalized_shape,
                                          const Tensor<T, Cuda>& weight, bool need_dx = true,
                                          bool need_dweight = true, bool need_dbias = true) {
    using C = cuda::compute_t<T>;
    const detail::CudaLayerNormGeometry geo =
        detail::cuda_layer_norm_geometry(x_in, normalized_shape, weight, Tensor<T, Cuda>(), "layer_norm_backward");
    g_in.check_defined("layer_norm_backward");
    mean.check_defined("layer_norm_backward");
    rstd.check_defined("layer_norm_backward");
    POLYMATH_CHECK(g_in.shape() == x_in.shape(), "layer_norm_backward", "gradient of shape ", g_in.shape(),
                   " does not match the input shape ", x_in.shape());
    POLYMATH_CHECK(mean.numel() == geo.rows && rstd.numel() == geo.rows, "layer_norm_backward",
                   "mean / rstd of shapes ", mean.shape(), " / ", rstd.shape(), " do not have one value per row (",
                   geo.rows, " rows)");
    cuda::check_same_device("layer_norm_backward", x_in, g_in, mean, rstd);
    const Tensor<T, Cuda> x = x_in.contiguous(), g = g_in.contiguous();
    const Tensor<C, Cuda> mc = mean.contiguous(), rc = rstd.contiguous();
    const Tensor<T, Cuda> w = weight.defined() ? weight.contiguous() : weight;
    const std::int64_t D = geo.D, rows = geo.rows;
    LayerNormGradsCuda<T> out;
    if (need_dx) out.dx = Tensor<T, Cuda>::empty(x.shape());
    if (need_dweight) out.dweight = Tensor<T, Cuda>::empty(normalized_shape);
    if (need_dbias) out.dbias = Tensor<T, Cuda>::empty(normalized_shape);
    if (D == 0) return out;
    if (rows == 0) {  // no rows: the parameter gradients are sums over nothing
        if (need_dweight) out.dweight.fill_(dtype_cast<T>(0));
        if (need_dbias) out.dbias.fill_(dtype_cast<T>(0));
        return out;
    }
    const cudaStream_t s = cuda::current_stream();
    namespace k = cuda_kernels;
    const T* wp = w.defined() ? w.data() : nullptr;
    const C inv_d = C(1) / C(D);
    if (need_dx) {
        auto launch = [&](auto hw) {
            constexpr bool HW = decltype(hw)::value;
            if (D <= k::kRowWarpMax) {
                k::dispatch_vpt(D, [&](auto vpt) {
                    k::layer_norm_warp_bwd_dx<T, decltype(vpt)::value, HW>
                        <<<k::warp_row_blocks(rows), 32 * k::kWarpRowsPerBlock, 0, s>>>(
                            g.data(), x.data(), wp, mc.data(), rc.data(), out.dx.data(), rows, int(D), inv_d);
                });
            } else {
                k::layer_norm_block_bwd_dx<T, HW><<<k::block_row_blocks(rows), k::kRowBlockThreads, 0, s>>>(
                    g.data(), x.data(), wp, mc.data(), rc.data(), out.dx.data(), rows, D, inv_d);
            }
        };
        if (wp) launch(std::true_type{});
        else launch(std::false_type{});
        POLYMATH_CUDA_CHECK_LAUNCH("layer_norm_backward (dx)");
    }
    if (need_dweight || need_dbias) {
        // Fixed chunking of the rows (a function of rows only): at most kLnMaxChunks chunks of >= 8 rows.
        const std::int64_t rpc = std::max<std::int64_t>(
            k::kLnParamTileRows, (rows + k::kLnMaxChunks - 1) / k::kLnMaxChunks);
        const std::int64_t nchunks = (rows + rpc - 1) / rpc;
        Tensor<C, Cuda> pw = Tensor<C, Cuda>::empty({nchunks, D});
        Tensor<C, Cuda> pb = Tensor<C, Cuda>::empty({nchunks, D});
        const std::int64_t col_tiles = (D + k::kLnParamTileCols - 1) / k::kLnParamTileCols;
        POLYMATH_CHECK(col_tiles < (std::int64_t(1) << 31), "layer_norm_backward", "normalized size ", D,
                       " is too large");
        const dim3 grid{unsigned(col_tiles), unsigned(nchunks)};
        const dim3 block{unsigned(k::kLnParamTileCols), unsigned(k::kLnParamTileRows)};
        k::layer_norm_param_partial<T><<<grid, block, 0, s>>>(g.data(), x.data(), mc.data(), rc.data(), pw.data(),
                                                              pb.data(), rows, D, rpc);
        POLYMATH_CUDA_CHECK_LAUNCH("layer_norm_backward (parameter partials)");
        k::layer_norm_param_final<T><<<cuda::grid_for(D), cuda::kThreads, 0, s>>>(
            pw.data(), pb.data(), need_dweight ? out.dweight.data() : nullptr,
            need_dbias ? out.dbias.data() : nullptr, nchunks, D);
        POLYMATH_CUDA_CHECK_LAUNCH("layer_norm_backward (parameter sums)");
    }
    return out;
}

}  // namespace polymath::ops
