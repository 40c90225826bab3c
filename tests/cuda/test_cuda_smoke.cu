// CUDA smoke test (no doctest): proves that polymath headers compile under
// nvcc and, when a device is present, that a kernel runs and gives the host's
// answer. Without a device it prints "SKIPPED: no CUDA device" and exits 0.
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#include <polymath/core/error.hpp>
#include <polymath/core/macros.hpp>

namespace {

POLYMATH_HOST_DEVICE inline float fma_ref(float a, float b) { return 2.0f * a + b; }

__global__ void axpb_kernel(const float* a, const float* b, float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = fma_ref(a[i], b[i]);
}

#define CUDA_OK(expr)                                                                       \
    do {                                                                                    \
        const cudaError_t e_ = (expr);                                                      \
        POLYMATH_CHECK(e_ == cudaSuccess, "test_cuda_smoke", #expr, ": ", cudaGetErrorString(e_)); \
    } while (0)

}  // namespace

int main() {
    int count = 0;
    const cudaError_t st = cudaGetDeviceCount(&count);
    if (st != cudaSuccess || count == 0) {
        std::printf("SKIPPED: no CUDA device (%s)\n", st == cudaSuccess ? "0 devices" : cudaGetErrorString(st));
        return 0;
    }
    try {
        cudaDeviceProp prop{};
        CUDA_OK(cudaGetDeviceProperties(&prop, 0));
        std::printf("device 0: %s (sm_%d%d), %d device(s)\n", prop.name, prop.major, prop.minor, count);

        constexpr int n = 1000;
        std::vector<float> a(n), b(n), out(n, -1.0f);
        for (int i = 0; i < n; ++i) {
            a[i] = 0.5f * float(i);
            b[i] = float(n - i);
        }
        float *da = nullptr, *db = nullptr, *dout = nullptr;
        CUDA_OK(cudaMalloc(&da, n * sizeof(float)));
        CUDA_OK(cudaMalloc(&db, n * sizeof(float)));
        CUDA_OK(cudaMalloc(&dout, n * sizeof(float)));
        CUDA_OK(cudaMemcpy(da, a.data(), n * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(db, b.data(), n * sizeof(float), cudaMemcpyHostToDevice));
        axpb_kernel<<<(n + 255) / 256, 256>>>(da, db, dout, n);
        CUDA_OK(cudaGetLastError());
        CUDA_OK(cudaMemcpy(out.data(), dout, n * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_OK(cudaFree(da));
        CUDA_OK(cudaFree(db));
        CUDA_OK(cudaFree(dout));

        int bad = 0;
        for (int i = 0; i < n; ++i) {
            if (out[i] != fma_ref(a[i], b[i])) {
                if (bad < 5) std::printf("mismatch at %d: device %g, host %g\n", i, out[i], fma_ref(a[i], b[i]));
                ++bad;
            }
        }
        if (bad) {
            std::printf("FAIL: %d of %d elements differ\n", bad, n);
            return 1;
        }
        std::printf("PASS: kernel result equals host computation (%d elements)\n", n);
        return 0;
    } catch (const polymath::Error& e) {
        std::printf("FAIL: %s\n", e.what());
        return 1;
    }
}
