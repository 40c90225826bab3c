// CUDA depthwise_conv1d (forward / backward), embedding (forward / backward)
// and dropout, compared with the CPU ops (tests/cuda/conv_ref.cpp).
//
// Tolerances: float / double depthwise conv: rtol 1e-5 / 1e-12 with atol
// scaled by max(1, max|ref|) (the GPU may fuse multiply-adds and sums dw in
// another order); bfloat16 / half: rtol 2e-2 (bf16) / 4e-3 (half) against the
// float CPU op on the same rounded inputs. Embedding forward and dropout are
// compared bit for bit; the embedding backward is bit-identical to the CPU for
// float / double / int32 (same summation order) and within 2e-2 for bf16.
#include <polymath/cuda.hpp>
#include <polymath/ops/cuda/conv.cuh>
#include <polymath/ops/cuda/dropout.cuh>
#include <polymath/ops/cuda/embedding.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "conv_ref.hpp"
#include "cuda_test_util.hpp"

using namespace polymath;
using polymath::half;  // not CUDA's ::half
using polymath::test::RefConvGrads;

namespace {

template <class T>
Tensor<T, Cpu> randn_host(const Shape& s, std::uint64_t seed) {
    Generator g(seed);
    if constexpr (std::is_same_v<T, double>) return Tensor<double, Cpu>::randn(s, g);
    else return Tensor<float, Cpu>::randn(s, g).template to<T>();
}

template <class T>
double max_abs(const Tensor<T, Cpu>& t) {
    double m = 0;
    for (const T& v : t.to_vector()) m = std::max(m, std::abs(double(float(v))));
    return m;
}

template <class T>
bool same_bits(const Tensor<T, Cpu>& a_in, const Tensor<T, Cpu>& b_in) {
    if (a_in.shape() != b_in.shape()) return false;
    const Tensor<T, Cpu> a = a_in.contiguous(), b = b_in.contiguous();
    return a.numel() == 0 || std::memcmp(a.data(), b.data(), std::size_t(a.numel()) * sizeof(T)) == 0;
}

// |gpu - cpu| <= atol_rel · max(1, max|cpu|) + rtol · |cpu|
#define CHECK_NEAR_SCALED(dev_host, ref, rtol, atol_rel)                                                          \
    POLYMATH_CHECK_CLOSE((dev_host), (ref), (rtol), (atol_rel) * std::max(1.0, max_abs(ref)))

ops::PaddingMode mode_of(int m) {
    return m == 0 ? ops::PaddingMode::Valid : (m == 1 ? ops::PaddingMode::Same : ops::PaddingMode::Causal);
}
const char* mode_str(int m) { return m == 0 ? "Valid" : (m == 1 ? "Same" : "Causal"); }

// One forward + backward comparison for T in {float, double}.
template <class T>
void depthwise_parity(std::int64_t N, std::int64_t L, std::int64_t C, std::int64_t K, std::int64_t d, int mode,
                      bool with_bias, double rtol, double atol_rel, std::uint64_t seed) {
    const std::int64_t span = d * (K - 1);
    if (mode == 0 && L < span + 1) return;  // Valid needs L >= span + 1
    const std::int64_t Lo = mode == 0 ? L - span : L;
    INFO("N=", N, " L=", L, " C=", C, " K=", K, " d=", d, " mode=", mode_str(mode), " bias=", with_bias);
    const Tensor<T, Cpu> x = randn_host<T>({N, L, C}, seed);
    const Tensor<T, Cpu> w = randn_host<T>({K, C}, seed + 1);
    const Tensor<T, Cpu> b = with_bias ? randn_host<T>({C}, seed + 2) : Tensor<T, Cpu>();
    const Tensor<T, Cpu> g = randn_host<T>({N, Lo, C}, seed + 3);
    const Tensor<T, Cpu> y_ref = test::ref_depthwise_conv1d(x, w, b, d, mode);
    const Tensor<T, Cuda> xd = x.template to<Cuda>(), wd = w.template to<Cuda>();
    const Tensor<T, Cuda> bd = with_bias ? b.template to<Cuda>() : Tensor<T, Cuda>();
    const Tensor<T, Cpu> y = ops::depthwise_conv1d(xd, wd, bd, d, mode_of(mode)).template to<Cpu>();
    CHECK_NEAR_SCALED(y, y_ref, rtol, atol_rel);
    const RefConvGrads<T> gr = test::ref_depthwise_conv1d_backward(g, x, w, d, mode, true, true, true);
    const ops::ConvGradsCuda<T> gd =
        ops::depthwise_conv1d_backward(g.template to<Cuda>(), xd, wd, d, mode_of(mode), true, true, true);
    CHECK_NEAR_SCALED(gd.dx.template to<Cpu>(), gr.dx, rtol, atol_rel);
    CHECK_NEAR_SCALED(gd.dw.template to<Cpu>(), gr.dw, rtol, atol_rel);
    CHECK_NEAR_SCALED(gd.db.template to<Cpu>(), gr.db, rtol, atol_rel);
}

template <class T>
void depthwise_sweep(double rtol, double atol_rel) {
    std::uint64_t seed = 100;
    for (std::int64_t C : {1, 3, 33, 512})
        for (std::int64_t L : {1, 17, 300})
            for (auto [K, d] : std::vector<std::pair<std::int64_t, std::int64_t>>{{3, 1}, {3, 2}, {3, 8}, {15, 1}, {15, 2}, {15, 8}})
                for (int mode = 0; mode < 3; ++mode) {
                    depthwise_parity<T>(2, L, C, K, d, mode, (seed & 1) == 0, rtol, atol_rel, seed);
                    seed += 7;
                }
}

}  // namespace

// ---------------------------------------------------------------------------
// depthwise_conv1d
// ---------------------------------------------------------------------------

TEST_CASE("depthwise_conv1d forward and gradients match the CPU in double (C 1/3/33/512, L 1/17/300, K 3/15, dilation 1/2/8, Valid/Same/Causal)") {
    POLYMATH_REQUIRE_GPU();
    depthwise_sweep<double>(1e-12, 1e-12);
}

TEST_CASE("depthwise_conv1d forward and gradients match the CPU in float over the same sweep") {
    POLYMATH_REQUIRE_GPU();
    depthwise_sweep<float>(1e-5, 2e-5);
}

TEST_CASE("depthwise_conv1d with a halo too large for shared memory (direct kernel) matches the CPU") {
    POLYMATH_REQUIRE_GPU();
    // span = 30 · 14 = 420 rows of 128 bytes: more than the 48 KiB budget, so both the
    // scalar (C = 33) and the float4 (C = 64) fallbacks run, for y and for dx.
    for (std::int64_t C : {33, 64})
        for (int mode = 0; mode < 3; ++mode) {
            depthwise_parity<double>(2, 500, C, 15, 30, mode, true, 1e-12, 1e-12, 7 + C);
            depthwise_parity<float>(2, 500, C, 15, 30, mode, true, 1e-5, 2e-5, 9 + C);
        }
}

TEST_CASE("depthwise_conv1d on long sequences (several dw items per block) matches the CPU and is bit-reproducible") {
    POLYMATH_REQUIRE_GPU();
    // C = 33 floats: 8 thread rows, 128-step tiles -> 16 · ceil(9000 / 128) = 1136 items > 1024 partials.
    const std::int64_t N = 16, L = 9000, C = 33, K = 3, d = 2;
    const Tensor<float, Cpu> x = randn_host<float>({N, L, C}, 1), w = randn_host<float>({K, C}, 2);
    const Tensor<float, Cpu> g = randn_host<float>({N, L, C}, 3);
    const RefConvGrads<float> gr = test::ref_depthwise_conv1d_backward(g, x, w, d, 1, true, true, true);
    const Tensor<float, Cuda> xd = x.to<Cuda>(), wd = w.to<Cuda>(), gd = g.to<Cuda>();
    const ops::ConvGradsCuda<float> a = ops::depthwise_conv1d_backward(gd, xd, wd, d, ops::PaddingMode::Same);
    const ops::ConvGradsCuda<float> b = ops::depthwise_conv1d_backward(gd, xd, wd, d, ops::PaddingMode::Same);
    CHECK_NEAR_SCALED(a.dw.to<Cpu>(), gr.dw, 1e-4, 1e-5);
    CHECK_NEAR_SCALED(a.db.to<Cpu>(), gr.db, 1e-4, 1e-5);
    CHECK_NEAR_SCALED(a.dx.to<Cpu>(), gr.dx, 1e-5, 2e-5);
    CHECK(same_bits(a.dw.to<Cpu>(), b.dw.to<Cpu>()));
    CHECK(same_bits(a.db.to<Cpu>(), b.db.to<Cpu>()));
    CHECK(same_bits(a.dx.to<Cpu>(), b.dx.to<Cpu>()));
}

TEST_CASE("depthwise_conv1d_backward computes only the requested gradients, and each alone matches the CPU") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<double, Cpu> x = randn_host<double>({3, 40, 12}, 4), w = randn_host<double>({5, 12}, 5);
    const Tensor<double, Cpu> g = randn_host<double>({3, 40, 12}, 6);
    const RefConvGrads<double> gr = test::ref_depthwise_conv1d_backward(g, x, w, 3, 2, true, true, true);
    const Tensor<double, Cuda> xd = x.to<Cuda>(), wd = w.to<Cuda>(), gd = g.to<Cuda>();
    const auto only_dw = ops::depthwise_conv1d_backward(gd, xd, wd, 3, ops::PaddingMode::Causal, false, true, false);
    CHECK(!only_dw.dx.defined());
    CHECK(!only_dw.db.defined());
    POLYMATH_CHECK_CLOSE(only_dw.dw.to<Cpu>(), gr.dw, 1e-12, 1e-12);
    const auto only_db = ops::depthwise_conv1d_backward(gd, xd, wd, 3, ops::PaddingMode::Causal, false, false, true);
    CHECK(!only_db.dw.defined());
    POLYMATH_CHECK_CLOSE(only_db.db.to<Cpu>(), gr.db, 1e-12, 1e-12);
    const auto only_dx = ops::depthwise_conv1d_backward(gd, xd, wd, 3, ops::PaddingMode::Causal, true, false, false);
    CHECK(!only_dx.dw.defined());
    POLYMATH_CHECK_CLOSE(only_dx.dx.to<Cpu>(), gr.dx, 1e-12, 1e-12);
}

TEST_CASE("depthwise_conv1d takes non-contiguous and misaligned inputs") {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t N = 2, L = 37, C = 512, K = 15, d = 2;
    // A permuted view [N, C, L] -> [N, L, C].
    const Tensor<float, Cpu> xt = randn_host<float>({N, C, L}, 11);
    const Tensor<float, Cpu> x = xt.permute({0, 2, 1});
    const Tensor<float, Cpu> w = randn_host<float>({K, C}, 12), b = randn_host<float>({C}, 13);
    const Tensor<float, Cpu> y_ref = test::ref_depthwise_conv1d(x.contiguous(), w, b, d, 1);
    const Tensor<float, Cuda> xd = xt.to<Cuda>().permute({0, 2, 1});
    CHECK(!xd.is_contiguous());
    CHECK_NEAR_SCALED(ops::depthwise_conv1d(xd, w.to<Cuda>(), b.to<Cuda>(), d, ops::PaddingMode::Same).to<Cpu>(), y_ref,
                      1e-5, 2e-5);
    // A contiguous view one float past a 16-byte boundary: the scalar path.
    const Tensor<float, Cpu> flat = randn_host<float>({N * L * C + 1}, 14);
    const Tensor<float, Cpu> xm = flat.slice(0, 1, N * L * C + 1).reshape({N, L, C});
    const Tensor<float, Cuda> xmd = flat.to<Cuda>().slice(0, 1, N * L * C + 1).reshape({N, L, C});
    CHECK(xmd.is_contiguous());
    CHECK_NEAR_SCALED(ops::depthwise_conv1d(xmd, w.to<Cuda>(), b.to<Cuda>(), d, ops::PaddingMode::Causal).to<Cpu>(),
                      test::ref_depthwise_conv1d(xm.contiguous(), w, b, d, 2), 1e-5, 2e-5);
    const Tensor<float, Cpu> g = randn_host<float>({N, L, C}, 15);
    const RefConvGrads<float> gr = test::ref_depthwise_conv1d_backward(g, xm.contiguous(), w, d, 2, true, true, true);
    const auto gd = ops::depthwise_conv1d_backward(g.to<Cuda>(), xmd, w.to<Cuda>(), d, ops::PaddingMode::Causal);
    CHECK_NEAR_SCALED(gd.dx.to<Cpu>(), gr.dx, 1e-5, 2e-5);
    CHECK_NEAR_SCALED(gd.dw.to<Cpu>(), gr.dw, 1e-5, 2e-5);
    CHECK_NEAR_SCALED(gd.db.to<Cpu>(), gr.db, 1e-5, 2e-5);
}

TEST_CASE_TEMPLATE("depthwise_conv1d in 16-bit storage matches the float CPU op on the rounded inputs", T, bfloat16,
                   polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const double rtol = std::is_same_v<T, bfloat16> ? 2e-2 : 4e-3;
    for (std::int64_t C : {3, 33, 512})
        for (std::int64_t L : {17, 300})
            for (int mode = 1; mode < 3; ++mode) {
                INFO("C=", C, " L=", L, " mode=", mode_str(mode));
                const std::int64_t K = 15, d = 2, N = 2;
                const Tensor<T, Cpu> x = randn_host<T>({N, L, C}, 21), w = randn_host<T>({K, C}, 22);
                const Tensor<T, Cpu> b = randn_host<T>({C}, 23), g = randn_host<T>({N, L, C}, 24);
                const Tensor<float, Cpu> xf = x.template to<float>(), wf = w.template to<float>();
                const Tensor<float, Cpu> bf = b.template to<float>(), gf = g.template to<float>();
                const Tensor<T, Cuda> xd = x.template to<Cuda>(), wd = w.template to<Cuda>();
                const Tensor<float, Cpu> y =
                    ops::depthwise_conv1d(xd, wd, b.template to<Cuda>(), d, mode_of(mode)).template to<Cpu>().template to<float>();
                CHECK_NEAR_SCALED(y, test::ref_depthwise_conv1d(xf, wf, bf, d, mode), rtol, rtol);
                const RefConvGrads<float> gr = test::ref_depthwise_conv1d_backward(gf, xf, wf, d, mode, true, true, true);
                const ops::ConvGradsCuda<T> gd =
                    ops::depthwise_conv1d_backward(g.template to<Cuda>(), xd, wd, d, mode_of(mode));
                CHECK_NEAR_SCALED(gd.dx.template to<Cpu>().template to<float>(), gr.dx, rtol, rtol);
                CHECK_NEAR_SCALED(gd.dw.template to<Cpu>().template to<float>(), gr.dw, rtol, rtol);
                CHECK_NEAR_SCALED(gd.db.template to<Cpu>().template to<float>(), gr.db, rtol, rtol);
            }
}

TEST_CASE("depthwise_conv1d with empty batch, sequence or channels gives empty outputs and zero gradients") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> w = Tensor<float, Cuda>::full({3, 4}, 1.0f);
    const Tensor<float, Cuda> x0 = Tensor<float, Cuda>::empty({0, 5, 4});
    CHECK(ops::depthwise_conv1d(x0, w).shape() == Shape{0, 5, 4});
    const auto g0 = ops::depthwise_conv1d_backward(Tensor<float, Cuda>::empty({0, 5, 4}), x0, w);
    CHECK(g0.dx.shape() == Shape{0, 5, 4});
    CHECK(g0.dw.to_vector() == std::vector<float>(12, 0.0f));
    CHECK(g0.db.to_vector() == std::vector<float>(4, 0.0f));
    const Tensor<float, Cuda> xl = Tensor<float, Cuda>::empty({2, 0, 4});
    CHECK(ops::depthwise_conv1d(xl, w, {}, 2, ops::PaddingMode::Causal).shape() == Shape{2, 0, 4});
    const auto gl = ops::depthwise_conv1d_backward(Tensor<float, Cuda>::empty({2, 0, 4}), xl, w, 2, ops::PaddingMode::Causal);
    CHECK(gl.dw.to_vector() == std::vector<float>(12, 0.0f));
    const Tensor<float, Cuda> xc = Tensor<float, Cuda>::empty({2, 5, 0});
    const Tensor<float, Cuda> wc = Tensor<float, Cuda>::empty({3, 0});
    CHECK(ops::depthwise_conv1d(xc, wc).shape() == Shape{2, 5, 0});
    CHECK(ops::depthwise_conv1d_backward(Tensor<float, Cuda>::empty({2, 5, 0}), xc, wc).dw.shape() == Shape{3, 0});
}

TEST_CASE("depthwise_conv1d rejects bad shapes with the CPU's op names") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> x = Tensor<float, Cuda>::zeros({2, 10, 4});
    auto msg = [](auto&& f) {
        try {
            f();
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const std::string m1 = msg([&] { (void)ops::depthwise_conv1d(x, Tensor<float, Cuda>::zeros({3, 5})); });
    CHECK(m1.find("depthwise_conv1d") != std::string::npos);
    CHECK(m1.find("does not match") != std::string::npos);
    const std::string m2 = msg([&] {
        (void)ops::depthwise_conv1d(x, Tensor<float, Cuda>::zeros({5, 4}), {}, 4, ops::PaddingMode::Valid);
    });
    CHECK(m2.find("shorter than the dilated kernel") != std::string::npos);
    const std::string m3 = msg([&] { (void)ops::depthwise_conv1d(x, Tensor<float, Cuda>::zeros({3, 4}), {}, 0); });
    CHECK(m3.find("dilation must be >= 1") != std::string::npos);
    const std::string m4 = msg([&] {
        (void)ops::depthwise_conv1d_backward(Tensor<float, Cuda>::zeros({2, 9, 4}), x, Tensor<float, Cuda>::zeros({3, 4}));
    });
    CHECK(m4.find("depthwise_conv1d_backward") != std::string::npos);
    CHECK(m4.find("does not match the output shape") != std::string::npos);
}

// ---------------------------------------------------------------------------
// embedding
// ---------------------------------------------------------------------------

namespace {

Tensor<std::int64_t, Cpu> random_ids(const Shape& s, std::int64_t V, std::uint64_t seed) {
    Tensor<std::int64_t, Cpu> t = Tensor<std::int64_t, Cpu>::empty(s);
    for (std::int64_t i = 0; i < t.numel(); ++i)
        t.data()[i] = std::int64_t(philox_u32(seed, std::uint64_t(i)) % std::uint32_t(V));
    return t;
}

}  // namespace

TEST_CASE_TEMPLATE("embedding gathers the CPU's rows bit for bit, from device or host indices", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    for (std::int64_t D : {1, 3, 64, 130, 5000}) {
        INFO("D=", D);
        const std::int64_t V = 50;
        const Tensor<T, Cpu> w = randn_host<T>({V, D}, 31);
        const Tensor<std::int64_t, Cpu> ids = random_ids({3, 7}, V, 32);
        const Tensor<T, Cpu> ref = test::ref_embedding(w, ids, 4);
        const Tensor<T, Cuda> wd = w.template to<Cuda>();
        CHECK(same_bits(ops::embedding(wd, ids.to<Cuda>(), 4).template to<Cpu>(), ref));
        CHECK(same_bits(ops::embedding(wd, ids, 4).template to<Cpu>(), ref));
        // Transposed (non-contiguous) indices.
        const Tensor<std::int64_t, Cpu> idt = ids.transpose(0, 1);
        CHECK(same_bits(ops::embedding(wd, ids.to<Cuda>().transpose(0, 1)).template to<Cpu>(), test::ref_embedding(w, idt, -1)));
        CHECK(same_bits(ops::embedding(wd, idt).template to<Cpu>(), test::ref_embedding(w, idt, -1)));
    }
}

TEST_CASE("embedding of a bfloat16 table copies the rows exactly; empty indices give an empty result") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cpu> wf = randn_host<float>({20, 24}, 33).to<bfloat16>().to<float>();
    const Tensor<std::int64_t, Cpu> ids = random_ids({11}, 20, 34);
    const Tensor<float, Cpu> got = ops::embedding(wf.to<bfloat16>().to<Cuda>(), ids.to<Cuda>()).to<Cpu>().to<float>();
    CHECK(same_bits(got, test::ref_embedding(wf, ids, -1)));
    CHECK(ops::embedding(wf.to<Cuda>(), Tensor<std::int64_t, Cuda>::empty({0, 3})).shape() == Shape{0, 3, 24});
    CHECK(ops::embedding(wf.to<Cuda>(), Tensor<std::int64_t, Cpu>::empty({0})).shape() == Shape{0, 24});
}

TEST_CASE("embedding with an out-of-range index throws the CPU's Error, for device and host indices") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cpu> w = randn_host<float>({10, 8}, 35);
    for (std::int64_t bad : {10, 99, -1}) {
        const Tensor<std::int64_t, Cpu> ids = Tensor<std::int64_t, Cpu>{1, 2, bad, 3, -7, 12};
        std::string cpu_msg, dev_msg, host_msg, bwd_msg, bwd_cpu_msg;
        try {
            (void)test::ref_embedding(w, ids, -1);
        } catch (const Error& e) {
            cpu_msg = e.what();
        }
        try {
            (void)ops::embedding(w.to<Cuda>(), ids.to<Cuda>());
        } catch (const Error& e) {
            dev_msg = e.what();
        }
        try {
            (void)ops::embedding(w.to<Cuda>(), ids);
        } catch (const Error& e) {
            host_msg = e.what();
        }
        const Tensor<float, Cpu> g = randn_host<float>({6, 8}, 36);
        try {
            (void)test::ref_embedding_backward(g, ids, 10, -1);
        } catch (const Error& e) {
            bwd_cpu_msg = e.what();
        }
        try {
            (void)ops::embedding_backward(g.to<Cuda>(), ids.to<Cuda>(), 10);
        } catch (const Error& e) {
            bwd_msg = e.what();
        }
        INFO("bad=", bad, " cpu: ", cpu_msg);
        CHECK(!cpu_msg.empty());
        CHECK(dev_msg == cpu_msg);
        CHECK(host_msg == cpu_msg);
        CHECK(!bwd_cpu_msg.empty());
        CHECK(bwd_msg == bwd_cpu_msg);
    }
    // The device stays usable after the error.
    CHECK(ops::embedding(w.to<Cuda>(), Tensor<std::int64_t, Cpu>{0, 9}.to<Cuda>()).to<Cpu>().shape() == Shape{2, 8});
}

TEST_CASE_TEMPLATE("embedding_backward equals the CPU's ordered sums bit for bit, with repeated ids and padding_idx", T,
                   float, double, std::int32_t) {
    POLYMATH_REQUIRE_GPU();
    for (std::int64_t D : {1, 5, 64, 1000})
        for (std::int64_t pad : {-1, 2}) {
            INFO("D=", D, " padding_idx=", pad);
            const std::int64_t V = 10;
            const Tensor<std::int64_t, Cpu> ids = random_ids({4, 75}, V, 40 + D);  // 300 ids in 10 rows: long runs
            Tensor<T, Cpu> g;
            if constexpr (std::is_same_v<T, std::int32_t>) {
                g = Tensor<T, Cpu>::empty({4, 75, D});
                for (std::int64_t i = 0; i < g.numel(); ++i) g.data()[i] = std::int32_t(philox_u32(7, std::uint64_t(i)) % 2001) - 1000;
            } else {
                g = randn_host<T>({4, 75, D}, 41);
            }
            const Tensor<T, Cpu> ref = test::ref_embedding_backward(g, ids, V, pad);
            const Tensor<T, Cuda> gd = g.template to<Cuda>();
            const Tensor<T, Cpu> a = ops::embedding_backward(gd, ids.to<Cuda>(), V, pad).template to<Cpu>();
            const Tensor<T, Cpu> b = ops::embedding_backward(gd, ids.to<Cuda>(), V, pad).template to<Cpu>();
            const Tensor<T, Cpu> h = ops::embedding_backward(gd, ids, V, pad).template to<Cpu>();
            CHECK(same_bits(a, ref));
            CHECK(same_bits(b, a));
            CHECK(same_bits(h, ref));
        }
}

TEST_CASE("embedding_backward: one id repeated 5000 times, unused rows, transposed indices, empty indices") {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t V = 7, D = 33;
    Tensor<std::int64_t, Cpu> ids = Tensor<std::int64_t, Cpu>::full({5000}, 3);
    ids.data()[17] = 6;
    ids.data()[4999] = 0;
    const Tensor<float, Cpu> g = randn_host<float>({5000, D}, 50);
    const Tensor<float, Cpu> ref = test::ref_embedding_backward(g, ids, V, -1);
    CHECK(same_bits(ops::embedding_backward(g.to<Cuda>(), ids.to<Cuda>(), V).to<Cpu>(), ref));
    CHECK(same_bits(ops::embedding_backward(g.to<Cuda>(), ids, V).to<Cpu>(), ref));
    // Transposed [9, 4] ids and matching gradient.
    const Tensor<std::int64_t, Cpu> it = random_ids({4, 9}, V, 51).transpose(0, 1);
    const Tensor<float, Cpu> gt = randn_host<float>({9, 4, D}, 52);
    CHECK(same_bits(ops::embedding_backward(gt.to<Cuda>(), random_ids({4, 9}, V, 51).to<Cuda>().transpose(0, 1), V, 1).to<Cpu>(),
                    test::ref_embedding_backward(gt, it, V, 1)));
    // Every id is padding_idx: all zeros.
    const Tensor<std::int64_t, Cpu> allpad = Tensor<std::int64_t, Cpu>::full({6}, 2);
    const Tensor<float, Cpu> g6 = randn_host<float>({6, D}, 53);
    CHECK(ops::embedding_backward(g6.to<Cuda>(), allpad, V, 2).to_vector() == std::vector<float>(std::size_t(V * D), 0.0f));
    CHECK(ops::embedding_backward(g6.to<Cuda>(), allpad.to<Cuda>(), V, 2).to_vector() ==
          std::vector<float>(std::size_t(V * D), 0.0f));
    // No indices.
    CHECK(ops::embedding_backward(Tensor<float, Cuda>::empty({0, D}), Tensor<std::int64_t, Cuda>::empty({0}), V).to_vector() ==
          std::vector<float>(std::size_t(V * D), 0.0f));
}

TEST_CASE_TEMPLATE("embedding_backward in 16-bit storage matches the float CPU sums", T, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t V = 12, D = 40;
    const Tensor<std::int64_t, Cpu> ids = random_ids({200}, V, 60);
    const Tensor<T, Cpu> g = randn_host<T>({200, D}, 61);
    const Tensor<float, Cpu> ref = test::ref_embedding_backward(g.template to<float>(), ids, V, 5);
    const Tensor<float, Cpu> got = ops::embedding_backward(g.template to<Cuda>(), ids.to<Cuda>(), V, 5).template to<Cpu>().template to<float>();
    const double rtol = std::is_same_v<T, bfloat16> ? 2e-2 : 4e-3;
    CHECK_NEAR_SCALED(got, ref, rtol, rtol);
}

// ---------------------------------------------------------------------------
// dropout
// ---------------------------------------------------------------------------

TEST_CASE_TEMPLATE("dropout draws the CPU's mask and values bit for bit and advances the generator alike", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    for (std::int64_t n : {1, 3, 4, 5, 1001, 15000})
        for (double p : {0.1, 0.5, 0.9, 0.999999}) {
            INFO("n=", n, " p=", p);
            const Tensor<T, Cpu> x = randn_host<T>({n}, 70 + std::uint64_t(n));
            Generator gc(1234), gg(1234);
            (void)gc.reserve(5);  // an offset that is not 0 (still a multiple of 4 after rounding)
            (void)gg.reserve(5);
            for (int draw = 0; draw < 2; ++draw) {
                const test::RefDropout<T> ref = test::ref_dropout_forward(x, p, gc);
                const ops::DropoutForwardCuda<T> got = ops::dropout_forward(x.template to<Cuda>(), p, gg);
                CHECK(got.seed == ref.seed);
                CHECK(got.offset == ref.offset);
                CHECK(gg.offset() == gc.offset());
                CHECK(same_bits(got.mask.template to<Cpu>(), ref.mask));
                CHECK(same_bits(got.y.template to<Cpu>(), ref.y));
                const Tensor<T, Cpu> g = randn_host<T>({n}, 80);
                CHECK(same_bits(ops::dropout_backward(g.template to<Cuda>(), got.mask, p).template to<Cpu>(),
                                test::ref_dropout_backward(g, ref.mask, p)));
            }
        }
}

TEST_CASE("dropout with p = 0, p = 1, float(p) = 1 and training = false matches the CPU, generator included") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cpu> x = randn_host<float>({7, 9}, 90);
    const Tensor<float, Cuda> xd = x.to<Cuda>();
    const double almost_one = std::nextafter(1.0, 0.0);  // float(p) == 1: draws, keeps nothing
    for (double p : {0.0, 1.0, almost_one}) {
        INFO("p=", p);
        Generator gc(5), gg(5);
        const test::RefDropout<float> ref = test::ref_dropout_forward(x, p, gc);
        const ops::DropoutForwardCuda<float> got = ops::dropout_forward(xd, p, gg);
        CHECK(gg.offset() == gc.offset());
        CHECK(same_bits(got.mask.to<Cpu>(), ref.mask));
        CHECK(same_bits(got.y.to<Cpu>(), ref.y));
        const Tensor<float, Cpu> g = randn_host<float>({7, 9}, 91);
        CHECK(same_bits(ops::dropout_backward(g.to<Cuda>(), got.mask, p).to<Cpu>(), test::ref_dropout_backward(g, ref.mask, p)));
    }
    Generator g0(5);
    const Tensor<float, Cuda> same = ops::dropout(xd, 0.5, /*training=*/false, g0);
    CHECK(same.data() == xd.data());
    CHECK(g0.offset() == 0);
    CHECK(ops::dropout(xd, 0.0, true, g0).data() == xd.data());
    // p close to 1: few kept, the same few.
    Generator gc(6), gg(6);
    const Tensor<float, Cpu> big = randn_host<float>({20000}, 92);
    const auto r = test::ref_dropout_forward(big, 0.9995, gc);
    const auto d = ops::dropout_forward(big.to<Cuda>(), 0.9995, gg);
    CHECK(same_bits(d.mask.to<Cpu>(), r.mask));
    CHECK(same_bits(d.y.to<Cpu>(), r.y));
}

TEST_CASE("dropout_mask<Cuda> equals the CPU's dropout_mask at unaligned offsets; strided and misaligned inputs") {
    POLYMATH_REQUIRE_GPU();
    for (std::uint64_t off : {0ull, 1ull, 2ull, 3ull, 5ull, 1000003ull, (1ull << 34) + 7})
        for (std::int64_t n : {1, 2, 6, 1027}) {
            INFO("offset=", off, " n=", n);
            CHECK(same_bits(ops::dropout_mask<Cuda>({n}, 0.3, 99, off).to<Cpu>(), test::ref_dropout_mask({n}, 0.3, 99, off)));
        }
    CHECK(same_bits(ops::dropout_mask<Cuda>({3, 5}, 1.0, 99, 0).to<Cpu>(), test::ref_dropout_mask({3, 5}, 1.0, 99, 0)));
    CHECK(same_bits(ops::dropout_mask<Cuda>({3, 5}, 0.0, 99, 0).to<Cpu>(), test::ref_dropout_mask({3, 5}, 0.0, 99, 0)));
    // Transposed input: element j is the j-th of the row-major (logical) order, as on the CPU.
    const Tensor<float, Cpu> x = randn_host<float>({33, 17}, 93);
    Generator gc(8), gg(8);
    const auto r = test::ref_dropout_forward(x.transpose(0, 1), 0.4, gc);
    const auto d = ops::dropout_forward(x.to<Cuda>().transpose(0, 1), 0.4, gg);
    CHECK(same_bits(d.mask.to<Cpu>(), r.mask));
    CHECK(same_bits(d.y.to<Cpu>(), r.y));
    // A contiguous view one element past an aligned address: the scalar path.
    const Tensor<float, Cpu> flat = randn_host<float>({1001}, 94);
    const auto r2 = test::ref_dropout_forward(flat.slice(0, 1, 1001), 0.25, gc);
    const auto d2 = ops::dropout_forward(flat.to<Cuda>().slice(0, 1, 1001), 0.25, gg);
    CHECK(same_bits(d2.mask.to<Cpu>(), r2.mask));
    CHECK(same_bits(d2.y.to<Cpu>(), r2.y));
}

TEST_CASE_TEMPLATE("dropout in 16-bit storage keeps the CPU's mask and rounds x * scale once", T, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const Tensor<T, Cpu> x = randn_host<T>({4099}, 95);
    Generator gc(10), gg(10);
    const auto r = test::ref_dropout_forward(x.template to<float>(), 0.3, gc);
    const auto d = ops::dropout_forward(x.template to<Cuda>(), 0.3, gg);
    CHECK(gg.offset() == gc.offset());
    CHECK(same_bits(d.mask.template to<Cpu>(), r.mask));
    CHECK(same_bits(d.y.template to<Cpu>(), r.y.template to<T>()));
    const Tensor<T, Cpu> g = randn_host<T>({4099}, 96);
    CHECK(same_bits(ops::dropout_backward(g.template to<Cuda>(), d.mask, 0.3).template to<Cpu>(),
                    test::ref_dropout_backward(g.template to<float>(), r.mask, 0.3).template to<T>()));
}

TEST_CASE("dropout rejects p outside [0, 1] and mismatched mask shapes") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> x = Tensor<float, Cuda>::zeros({4});
    CHECK_THROWS_AS((void)ops::dropout_forward(x, 1.5), Error);
    CHECK_THROWS_AS((void)ops::dropout(x, -0.1, true), Error);
    CHECK_THROWS_AS((void)ops::dropout_backward(x, Tensor<std::uint8_t, Cuda>::zeros({5}), 0.5), Error);
}
