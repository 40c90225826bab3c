// Tensor<T, Cuda>: allocation, transfers, fill, strided copies and dtype
// conversion, compared with the same operations on the host.
#include <polymath/cuda.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"

using namespace polymath;
using polymath::half;  // not CUDA's ::half

TEST_CASE("a CUDA allocation without a device, or beyond the device, throws an Error naming the bytes") {
    if (!polymath::cuda::is_available()) {
        // CI's case: the message must say what was asked and why it failed.
        try {
            (void)Tensor<float, Cuda>::empty({1000, 3});
            FAIL("allocating a CUDA tensor without a device did not throw");
        } catch (const Error& e) {
            const std::string m = e.what();
            INFO(m);
            CHECK(m.find("12000 bytes") != std::string::npos);
            CHECK(m.find("no usable CUDA device") != std::string::npos);
        }
        CHECK(!polymath::cuda::unavailable_reason().empty());
    } else {
        // 2^50 bytes (1 PiB) is more than any GPU has: out of memory, with the free bytes named.
        try {
            (void)Tensor<float, Cuda>::empty({std::int64_t(1) << 48});
            FAIL("allocating 1 PiB did not throw");
        } catch (const Error& e) {
            const std::string m = e.what();
            INFO(m);
            CHECK(m.find("out of memory") != std::string::npos);
            CHECK(m.find("1125899906842624 bytes") != std::string::npos);
            CHECK(m.find("free") != std::string::npos);
        }
        CHECK(polymath::cuda::unavailable_reason().empty());
    }
}

TEST_CASE("an empty CUDA tensor needs no device memory and round-trips") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> d = Tensor<float, Cuda>::empty({0, 5});
    CHECK(d.numel() == 0);
    CHECK(d.to<Cpu>().shape() == Shape{0, 5});
}

TEST_CASE_TEMPLATE("host -> device -> host round trip is exact for every dtype", T, float, double, std::int32_t,
                   std::int64_t, std::uint8_t, bool, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    Tensor<T, Cpu> h = Tensor<T, Cpu>::empty({3, 7, 5});
    for (std::int64_t i = 0; i < h.numel(); ++i) h.data()[i] = dtype_cast<T>(double(i % 17) - 6.5);
    const Tensor<T, Cuda> d = h.template to<Cuda>();
    CHECK(d.device_string() == "cuda:0");
    const Tensor<T, Cpu> back = d.template to<Cpu>();
    REQUIRE(back.shape() == h.shape());
    CHECK(std::memcmp(back.data(), h.data(), std::size_t(h.numel()) * sizeof(T)) == 0);
}

TEST_CASE("a transfer larger than the pinned staging chunks is exact, and the host copy may die at once") {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t n = 3 * (std::int64_t(4) << 20) / 4 + 12345;  // 3 chunks and a bit, in floats
    Tensor<float, Cuda> d;
    {
        Tensor<float, Cpu> h = Tensor<float, Cpu>::empty({n});
        for (std::int64_t i = 0; i < n; ++i) h.data()[i] = float(i % 100003) * 0.25f;
        d = h.to<Cuda>();
    }  // the host tensor is freed while the DMA may still run from the staging buffers
    const auto v = d.to_vector();
    REQUIRE(std::int64_t(v.size()) == n);
    std::int64_t bad = 0;
    for (std::int64_t i = 0; i < n; ++i) bad += v[std::size_t(i)] != float(i % 100003) * 0.25f;
    CHECK(bad == 0);
}

TEST_CASE("fill_ on a contiguous tensor and on a strided view matches the host") {
    POLYMATH_REQUIRE_GPU();
    Tensor<float, Cuda> d = Tensor<float, Cuda>::zeros({6, 8});
    d.slice(1, 1, 8, 3).fill_(2.5f);  // columns 1, 4, 7
    Tensor<float, Cpu> h = Tensor<float, Cpu>::zeros({6, 8});
    h.slice(1, 1, 8, 3).fill_(2.5f);
    POLYMATH_CHECK_CLOSE(d.to<Cpu>(), h, 0.0, 0.0);
    CHECK(Tensor<double, Cuda>::full({4}, 3.0).to_vector() == std::vector<double>{3, 3, 3, 3});
}

TEST_CASE("contiguous() of permuted, sliced and expanded device views equals the host's") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cpu> h = Tensor<float, Cpu>::arange(0, 2 * 3 * 4 * 5).reshape({2, 3, 4, 5});
    const Tensor<float, Cuda> d = h.to<Cuda>();
    POLYMATH_CHECK_CLOSE(d.permute({3, 1, 0, 2}).contiguous().to<Cpu>(), h.permute({3, 1, 0, 2}).contiguous(), 0.0, 0.0);
    POLYMATH_CHECK_CLOSE(d.slice(3, 1, 5, 2).transpose(0, 2).contiguous().to<Cpu>(),
                         h.slice(3, 1, 5, 2).transpose(0, 2).contiguous(), 0.0, 0.0);
    const Tensor<float, Cpu> row = Tensor<float, Cpu>{1, 2, 3};
    POLYMATH_CHECK_CLOSE(row.to<Cuda>().expand({4, 3}).contiguous().to<Cpu>(), row.expand({4, 3}).contiguous(), 0.0, 0.0);
}

TEST_CASE("dtype conversion on the device rounds exactly as dtype_cast on the host") {
    POLYMATH_REQUIRE_GPU();
    Tensor<float, Cpu> h = Tensor<float, Cpu>::empty({4096});
    for (std::int64_t i = 0; i < h.numel(); ++i) h.data()[i] = std::ldexp(float(i) * 1.0009765625f - 2000.3f, int(i % 40) - 20);
    const Tensor<float, Cuda> d = h.to<Cuda>();
    auto same_bits = [](const auto& a, const auto& b) {
        return a.numel() == b.numel() &&
               std::memcmp(a.data(), b.data(), std::size_t(a.numel()) * sizeof(*a.data())) == 0;
    };
    CHECK(same_bits(d.to<bfloat16>().to<Cpu>(), h.to<bfloat16>()));
    CHECK(same_bits(d.to<polymath::half>().to<Cpu>(), h.to<polymath::half>()));
    CHECK(same_bits(d.to<std::int32_t>().to<Cpu>(), h.to<std::int32_t>()));
    CHECK(same_bits(d.to<double>().to<Cpu>(), h.to<double>()));
    CHECK(same_bits(d.to<bfloat16>().to<float>().to<Cpu>(), h.to<bfloat16>().to<float>()));
    // Strided source with conversion.
    CHECK(same_bits(d.reshape({64, 64}).t().to<polymath::half>().to<Cpu>(), h.reshape({64, 64}).t().to<polymath::half>()));
}

TEST_CASE("factories on the device draw the host's numbers") {
    POLYMATH_REQUIRE_GPU();
    Generator g1(42), g2(42);
    CHECK(Tensor<float, Cuda>::randn({1000}, g1).to_vector() == Tensor<float, Cpu>::randn({1000}, g2).to_vector());
    CHECK(Tensor<double, Cuda>::arange(0, 10, 0.5).to_vector() == Tensor<double, Cpu>::arange(0, 10, 0.5).to_vector());
    const Tensor<float, Cuda> m{{1, 2}, {3, 4}};
    CHECK(m.to_vector() == std::vector<float>{1, 2, 3, 4});
    CHECK(Tensor<float, Cuda>{5}.item() == 5.0f);
}

TEST_CASE("the device allocator counts live bytes and keeps freed blocks in the pool") {
    POLYMATH_REQUIRE_GPU();
    auto& a = polymath::cuda::CudaAllocator::instance();
    const auto before = a.stats();
    {
        const Tensor<float, Cuda> t = Tensor<float, Cuda>::empty({1 << 20});
        const auto during = a.stats();
        CHECK(during.bytes_in_use == before.bytes_in_use + (std::size_t(4) << 20));
        CHECK(during.allocations == before.allocations + 1);
        CHECK(during.bytes_reserved >= during.bytes_in_use);
    }
    polymath::cuda::synchronize();
    const auto after = a.stats();
    CHECK(after.bytes_in_use == before.bytes_in_use);
    CHECK(after.bytes_reserved >= (std::size_t(4) << 20));  // cached, not released
    a.empty_cache();
    CHECK(a.stats().bytes_in_use == before.bytes_in_use);
}

TEST_CASE("a failing CUDA call throws an Error naming the call, file:line and the CUDA message") {
    try {
        POLYMATH_CUDA_CHECK(cudaSetDevice(9999));
        FAIL("cudaSetDevice(9999) did not fail");
    } catch (const Error& e) {
        const std::string m = e.what();
        INFO(m);
        CHECK(m.find("cudaSetDevice(9999)") != std::string::npos);
        CHECK(m.find("test_tensor_cuda.cu:") != std::string::npos);
        CHECK(m.find("cudaError") != std::string::npos);
    }
}
