// CUDA matmul / gemm / matmul_backward / grouped GEMM (cuBLAS) against the CPU
// ops (tests/cuda/matmul_ref.cpp), for float, double, bfloat16 and half.
//
// References are computed by the CPU ops in double from the SAME inputs the
// GPU sees (16-bit inputs are rounded to bf16/half first, then widened), so
// the only differences are the GPU's accumulation order and output rounding.
// Tolerances (|gpu - ref| <= atol + rtol |ref|, K = inner dim):
//   float (TF32 off)  rtol 1e-5,  atol 1e-5 · sqrt(K)    (fp32 accumulation)
//   float (TF32 on)   rtol 5e-3,  atol 3e-3 · sqrt(K)    (10-bit mantissa inputs)
//   double            rtol 1e-12, atol 1e-12 · sqrt(K)
//   bfloat16          rtol 8e-3,  atol 1e-3              (output rounding 2^-9, fp32 accumulation)
//   half              rtol 2e-3,  atol 1e-3              (output rounding 2^-11)
#include <polymath/cuda.hpp>
#include <polymath/ops/cuda/grouped_gemm.cuh>
#include <polymath/ops/cuda/matmul.cuh>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "cuda_test_util.hpp"
#include "matmul_ref.hpp"

using namespace polymath;
using polymath::half;  // not CUDA's ::half

namespace {

template <class T>
struct Tol;
template <>
struct Tol<float> {
    static double rtol() { return 1e-5; }
    static double atol(std::int64_t K) { return 1e-5 * std::sqrt(double(std::max<std::int64_t>(K, 1))); }
};
template <>
struct Tol<double> {
    static double rtol() { return 1e-12; }
    static double atol(std::int64_t K) { return 1e-12 * std::sqrt(double(std::max<std::int64_t>(K, 1))); }
};
template <>
struct Tol<bfloat16> {
    static double rtol() { return 8e-3; }
    static double atol(std::int64_t) { return 1e-3; }
};
template <>
struct Tol<polymath::half> {
    static double rtol() { return 2e-3; }
    static double atol(std::int64_t) { return 1e-3; }
};

// A test input: the device tensor (dtype T) and the identical values, widened to double, on the host.
template <class T>
struct Input {
    Tensor<T, Cuda> dev;
    Tensor<double> ref;
};
template <class T>
Input<T> make_input(const Shape& s, std::uint64_t seed) {
    Generator gen(seed);
    const Tensor<T> h = Tensor<float>::randn(s, gen).template to<T>();  // rounded once, used by both sides
    return {h.template to<Cuda>(), h.template to<double>()};
}

// Largest |got - ref| / (atol + rtol |ref|), in double; NaN anywhere is +inf.
template <class T>
double worst_ratio(const Tensor<T, Cuda>& got, const Tensor<double>& ref, double rtol, double atol) {
    const Tensor<double> g = got.template to<Cpu>().template to<double>();
    REQUIRE(g.shape() == ref.shape());
    const std::vector<double> vg = g.to_vector(), vr = ref.to_vector();
    double worst = 0;
    for (std::size_t i = 0; i < vg.size(); ++i) {
        if (std::isnan(vg[i]) || std::isnan(vr[i])) return std::numeric_limits<double>::infinity();
        worst = std::max(worst, std::abs(vg[i] - vr[i]) / (atol + rtol * std::abs(vr[i])));
    }
    return worst;
}

#define CHECK_NEAR_REF(got, ref, rtol, atol)                                                              \
    do {                                                                                                  \
        const double pm_r_ = worst_ratio((got), (ref), (rtol), (atol));                                   \
        INFO("worst |gpu - ref| / (atol + rtol |ref|) = ", pm_r_, " (rtol ", (rtol), ", atol ", (atol), ")"); \
        CHECK(pm_r_ <= 1.0);                                                                              \
    } while (0)

template <class T>
std::uint64_t seed_of(int i) {
    return 1000 * std::uint64_t(sizeof(T)) + std::uint64_t(i);
}

struct Tf32Guard {
    explicit Tf32Guard(bool on) : prev(polymath::cuda::allow_tf32()) { polymath::cuda::set_allow_tf32(on); }
    ~Tf32Guard() { polymath::cuda::set_allow_tf32(prev); }
    bool prev;
};

std::size_t allocations() { return polymath::cuda::CudaAllocator::instance().stats().allocations; }

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE_TEMPLATE("2-D matmul matches the CPU for odd sizes, size-1 and empty dims", T, float, double, bfloat16,
                   polymath::half) {
    POLYMATH_REQUIRE_GPU();
    CHECK(!polymath::cuda::allow_tf32());  // the default: float GEMMs in full fp32
    const std::int64_t sizes[][3] = {{1, 1, 1},   {1, 7, 33},  {7, 33, 129}, {129, 7, 33}, {33, 129, 1},
                                     {33, 1, 7},  {64, 64, 64}, {130, 257, 66}, {3, 5000, 7}, {5, 0, 3},
                                     {0, 5, 3},   {3, 5, 0}};
    int i = 0;
    for (const auto& s : sizes) {
        const std::int64_t M = s[0], K = s[1], N = s[2];
        CAPTURE(M);
        CAPTURE(K);
        CAPTURE(N);
        const auto a = make_input<T>({M, K}, seed_of<T>(++i)), b = make_input<T>({K, N}, seed_of<T>(++i));
        const Tensor<T, Cuda> c = ops::matmul(a.dev, b.dev);
        CHECK(c.shape() == Shape{M, N});
        CHECK(c.is_contiguous());
        CHECK_NEAR_REF(c, test_ref::matmul(a.ref, b.ref), Tol<T>::rtol(), Tol<T>::atol(K));
    }
}

TEST_CASE("K == 0 gives zeros; empty results are empty tensors") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> a = Tensor<float, Cuda>::empty({4, 0}), b = Tensor<float, Cuda>::empty({0, 6});
    const Tensor<float, Cuda> c = ops::matmul(a, b);
    REQUIRE(c.shape() == Shape{4, 6});
    for (float v : c.to_vector()) CHECK(v == 0.0f);
    CHECK(ops::matmul(Tensor<float, Cuda>::empty({0, 3, 4}), Tensor<float, Cuda>::ones({4, 5})).shape() ==
          Shape{0, 3, 5});
}

TEST_CASE_TEMPLATE("transposed views, row slices and column slices match the CPU", T, float, double, bfloat16,
                   polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t M = 33, K = 129, N = 7;
    const auto X = make_input<T>({K, M}, seed_of<T>(1));      // X.t() is [M, K] column-major
    const auto Y = make_input<T>({N, K}, seed_of<T>(2));      // Y.t() is [K, N] column-major
    const auto A = make_input<T>({M, K}, seed_of<T>(3));
    const auto B = make_input<T>({K, N}, seed_of<T>(4));
    const auto W = make_input<T>({M + 3, K + 10}, seed_of<T>(5));  // slices with a leading dim > cols
    const double rt = Tol<T>::rtol(), at = Tol<T>::atol(K);
    CHECK_NEAR_REF(ops::matmul(X.dev.t(), B.dev), test_ref::matmul(X.ref.t(), B.ref), rt, at);
    CHECK_NEAR_REF(ops::matmul(A.dev, Y.dev.t()), test_ref::matmul(A.ref, Y.ref.t()), rt, at);
    CHECK_NEAR_REF(ops::matmul(X.dev.t(), Y.dev.t()), test_ref::matmul(X.ref.t(), Y.ref.t()), rt, at);
    CHECK_NEAR_REF(ops::matmul_nt(A.dev, Y.dev), test_ref::matmul_nt(A.ref, Y.ref), rt, at);
    CHECK_NEAR_REF(ops::matmul_tn(X.dev, B.dev), test_ref::matmul_tn(X.ref, B.ref), rt, at);
    // Column slice (ld = K + 10 > K) and row slice of a bigger matrix.
    const Tensor<T, Cuda> ws = W.dev.slice(0, 2, 2 + M).slice(1, 5, 5 + K);
    const Tensor<double> wr = W.ref.slice(0, 2, 2 + M).slice(1, 5, 5 + K);
    CHECK_NEAR_REF(ops::matmul(ws, B.dev), test_ref::matmul(wr, B.ref), rt, at);
    // A transposed slice (column-major with ld > rows).
    CHECK_NEAR_REF(ops::matmul(B.dev.t(), ws.t()), test_ref::matmul(B.ref.t(), wr.t()), rt, at);
    // Step-2 slice of the last dim: neither layout, made contiguous.
    const Tensor<T, Cuda> s2 = W.dev.slice(1, 0, 2 * 5, 2);  // [M + 3, 5]
    const Tensor<double> s2r = W.ref.slice(1, 0, 2 * 5, 2);
    const auto C = make_input<T>({5, N}, seed_of<T>(6));
    CHECK_NEAR_REF(ops::matmul(s2, C.dev), test_ref::matmul(s2r, C.ref), rt, Tol<T>::atol(5));
}

TEST_CASE("a transposed view goes to cuBLAS without a copy; a step-2 slice costs one copy") {
    POLYMATH_REQUIRE_GPU();
    const auto A = make_input<float>({65, 33}, 11), B = make_input<float>({33, 17}, 12);
    const Tensor<float, Cuda> At = A.dev.t().contiguous().t();  // same values, column-major storage
    (void)ops::matmul(A.dev, B.dev);                            // warm up (handle, workspace size cache)
    std::size_t n0 = allocations();
    (void)ops::matmul(A.dev, B.dev);
    const std::size_t plain = allocations() - n0;
    const Tensor<float, Cuda> Bt = B.dev.t().contiguous().t();
    n0 = allocations();
    const Tensor<float, Cuda> c = ops::matmul(At, Bt);
    CHECK(allocations() - n0 == plain);  // output + workspace only: no operand copy
    n0 = allocations();
    const Tensor<float, Cuda> ct = ops::matmul(At, B.dev);
    CHECK(allocations() - n0 == plain);
    CHECK_NEAR_REF(ct, test_ref::matmul(A.ref, B.ref), 1e-5, 1e-4);
    CHECK_NEAR_REF(c, test_ref::matmul(A.ref, B.ref), 1e-5, 1e-4);
    n0 = allocations();
    (void)ops::matmul(A.dev.slice(1, 0, 33, 2), B.dev.slice(0, 0, 17));
    CHECK(allocations() - n0 == plain + 1);
}

TEST_CASE_TEMPLATE("batched matmul with broadcast batch dims and 1-D operands matches the CPU", T, float, double,
                   bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<std::pair<Shape, Shape>> cases = {
        {{3, 7, 33}, {3, 33, 5}},      // equal batches: one strided-batched call
        {{2, 1, 7, 9}, {4, 9, 5}},     // mixed broadcast: both operands expanded
        {{4, 7, 9}, {9, 5}},           // Linear: folded into one GEMM
        {{2, 3, 1, 9}, {3, 9, 129}},   // b broadcast over the outer batch dim
        {{9, 5}, {4, 5, 7}},           // a without a batch: stride 0
        {{1, 7, 9}, {3, 9, 5}},        // size-1 batch dim
        {{9}, {4, 9, 5}},              // 1-D left
        {{4, 7, 9}, {9}},              // 1-D right
        {{129}, {129}},                // dot -> 0-d
        {{7, 9}, {9}},                 // matrix-vector
        {{9}, {9, 7}},                 // vector-matrix
        {{0, 7, 9}, {9, 5}},           // empty batch
        {{2, 2, 1, 33}, {2, 2, 33, 1}},
    };
    int i = 0;
    for (const auto& [sa, sb] : cases) {
        CAPTURE(sa);
        CAPTURE(sb);
        const auto a = make_input<T>(sa, seed_of<T>(++i)), b = make_input<T>(sb, seed_of<T>(++i));
        const Tensor<double> ref = test_ref::matmul(a.ref, b.ref);
        const Tensor<T, Cuda> c = ops::matmul(a.dev, b.dev);
        CHECK(c.shape() == ref.shape());
        CHECK_NEAR_REF(c, ref, Tol<T>::rtol(), Tol<T>::atol(sa[sa.size() - 1]));
    }
}

TEST_CASE_TEMPLATE("batched matmul of transposed and permuted batch views matches the CPU", T, float, double, bfloat16,
                   polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const auto X = make_input<T>({3, 9, 7}, seed_of<T>(1));   // transpose(-1, -2): [3, 7, 9] column-major matrices
    const auto Y = make_input<T>({3, 5, 9}, seed_of<T>(2));   // transpose(-1, -2): [3, 9, 5]
    const auto P = make_input<T>({7, 3, 9}, seed_of<T>(3));   // permute(1, 0, 2): [3, 7, 9], batch stride 9, ld 27
    const auto W = make_input<T>({9, 5}, seed_of<T>(4));
    const auto Z = make_input<T>({4, 9, 33}, seed_of<T>(5));  // transpose(1, 2): [4, 33, 9], not foldable
    const double rt = Tol<T>::rtol(), at = Tol<T>::atol(9);
    CHECK_NEAR_REF(ops::matmul(X.dev.transpose(-1, -2), Y.dev.transpose(-1, -2)),
                   test_ref::matmul(X.ref.transpose(-1, -2), Y.ref.transpose(-1, -2)), rt, at);
    CHECK_NEAR_REF(ops::matmul(P.dev.permute({1, 0, 2}), Y.dev.transpose(-1, -2)),
                   test_ref::matmul(P.ref.permute({1, 0, 2}), Y.ref.transpose(-1, -2)), rt, at);
    CHECK_NEAR_REF(ops::matmul(P.dev.permute({1, 0, 2}), W.dev), test_ref::matmul(P.ref.permute({1, 0, 2}), W.ref), rt,
                   at);
    CHECK_NEAR_REF(ops::matmul(Z.dev.transpose(1, 2), W.dev), test_ref::matmul(Z.ref.transpose(1, 2), W.ref), rt, at);
    CHECK_NEAR_REF(ops::matmul_nt(X.dev.transpose(-1, -2), Y.dev), test_ref::matmul_nt(X.ref.transpose(-1, -2), Y.ref),
                   rt, at);
}

TEST_CASE("matmul errors carry the CPU's messages") {
    POLYMATH_REQUIRE_GPU();
    const std::vector<std::pair<Shape, Shape>> bad = {
        {{3, 4}, {5, 6}}, {{2, 3, 4}, {3, 4, 5}}, {{4}, {5}}, {{2, 7, 4}, {4}}, {{}, {3}}};
    for (const auto& [sa, sb] : bad) {
        CAPTURE(sa);
        CAPTURE(sb);
        const std::string want = test_ref::matmul_error(sa, sb);
        REQUIRE(!want.empty());
        const std::string got = error_of(
            [&] { (void)ops::matmul(Tensor<float, Cuda>::zeros(sa), Tensor<float, Cuda>::zeros(sb)); });
        CHECK(got == want);
    }
    const std::string inner = test_ref::matmul_error({3, 4}, {5, 6});
    CHECK(inner.find("matmul: inner dimensions differ: shapes") != std::string::npos);
    const Tensor<float, Cuda> a = Tensor<float, Cuda>::zeros({3, 4});
    CHECK(error_of([&] { (void)ops::gemm(a, a); }).find("gemm: inner dimensions differ") != std::string::npos);
    CHECK(error_of([&] { ops::gemm(a, a, true, false, 1.0f, 0.0f, Tensor<float, Cuda>::zeros({3, 3})); })
              .find("does not match the product shape") != std::string::npos);
}

TEST_CASE_TEMPLATE("gemm with alpha, beta and row-major, column-major or strided outputs matches the CPU", T, float,
                   double, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t M = 7, K = 33, N = 129;
    const auto A = make_input<T>({K, M}, seed_of<T>(1));  // used transposed
    const auto B = make_input<T>({N, K}, seed_of<T>(2));  // used transposed
    const T alpha = dtype_cast<T>(0.5f), beta = dtype_cast<T>(2.0f);
    const double rt = Tol<T>::rtol(), at = Tol<T>::atol(K) * 4;
    {  // row-major out
        const auto C = make_input<T>({M, N}, seed_of<T>(3));
        Tensor<double> ref = C.ref.clone();
        test_ref::gemm_into(A.ref, B.ref, true, true, 0.5, 2.0, ref);
        ops::gemm(A.dev, B.dev, true, true, alpha, beta, C.dev);
        CHECK_NEAR_REF(C.dev, ref, rt, at);
    }
    {  // column-major out: a transposed view of [N, M]
        const auto C = make_input<T>({N, M}, seed_of<T>(4));
        Tensor<double> ref = C.ref.t().clone();
        test_ref::gemm_into(A.ref, B.ref, true, true, 0.5, 2.0, ref);
        ops::gemm(A.dev, B.dev, true, true, alpha, beta, C.dev.t());
        CHECK_NEAR_REF(C.dev.t(), ref, rt, at);
    }
    {  // neither: every other column of [M, 2N]
        const auto C = make_input<T>({M, 2 * N}, seed_of<T>(5));
        Tensor<double> ref = C.ref.clone();
        test_ref::gemm_into(A.ref, B.ref, true, true, 0.5, 2.0, ref.slice(1, 0, 2 * N, 2));
        ops::gemm(A.dev, B.dev, true, true, alpha, beta, C.dev.slice(1, 0, 2 * N, 2));
        CHECK_NEAR_REF(C.dev, ref, rt, at);  // the odd columns are untouched
    }
    {  // beta = 0 ignores NaN in out
        Tensor<T, Cuda> out = Tensor<T, Cuda>::full({M, N}, dtype_cast<T>(std::numeric_limits<float>::quiet_NaN()));
        ops::gemm(A.dev, B.dev, true, true, alpha, dtype_cast<T>(0.0f), out);
        CHECK_NEAR_REF(out, test_ref::gemm(A.ref, B.ref, true, true, 0.5), rt, at);
    }
    CHECK_NEAR_REF(ops::gemm(A.dev, B.dev, true, true), test_ref::gemm(A.ref, B.ref, true, true, 1.0), rt, at);
    CHECK_NEAR_REF(ops::gemm(B.dev, A.dev), test_ref::gemm(B.ref, A.ref, false, false, 1.0), rt, at);
}

TEST_CASE_TEMPLATE("matmul_backward matches the CPU, summing over broadcast batch dims", T, float, double, bfloat16) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<std::pair<Shape, Shape>> cases = {
        {{4, 7, 9}, {9, 5}},         // Linear: dB as one folded GEMM
        {{2, 1, 7, 9}, {4, 9, 5}},   // both gradients summed over a broadcast dim
        {{2, 7, 9}, {2, 9, 5}},      // no broadcast
        {{9}, {4, 9, 5}},            // 1-D left, broadcast
        {{3, 7, 9}, {9}},            // 1-D right
        {{7, 33}, {33, 129}},        // 2-D
        {{5, 3, 4, 9}, {1, 9, 6}},   // b batch of 1: summed over 15 matrices
    };
    int i = 0;
    for (const auto& [sa, sb] : cases) {
        CAPTURE(sa);
        CAPTURE(sb);
        const auto a = make_input<T>(sa, seed_of<T>(++i)), b = make_input<T>(sb, seed_of<T>(++i));
        const Tensor<double> c_ref = test_ref::matmul(a.ref, b.ref);
        const auto g = make_input<T>(c_ref.shape(), seed_of<T>(++i));
        Tensor<double> da, db;
        test_ref::matmul_backward(g.ref, a.ref, b.ref, da, db);
        const ops::MatmulGradsCuda<T> r = ops::matmul_backward(g.dev, a.dev, b.dev);
        CHECK(r.da.shape() == a.dev.shape());
        CHECK(r.db.shape() == b.dev.shape());
        // Gradients sum over up to (batch · rows) terms. bf16: a gradient summed over
        // broadcast batch dims adds up matrices already rounded to bf16 (as the CPU's
        // sum_to of the rounded product would), so each term carries its own 2^-9 error.
        const double rt = Tol<T>::rtol(), at = std::is_same_v<T, bfloat16> ? 3e-2 : Tol<T>::atol(64) * 4;
        CHECK_NEAR_REF(r.da, da, rt, at);
        CHECK_NEAR_REF(r.db, db, rt, at);
        const ops::MatmulGradsCuda<T> only_b = ops::matmul_backward(g.dev, a.dev, b.dev, false, true);
        CHECK(!only_b.da.defined());
        CHECK_NEAR_REF(only_b.db, db, rt, at);
    }
}

TEST_CASE("TF32 is opt-in: results stay close with it on, and the switch restores") {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t M = 129, K = 257, N = 65;
    const auto a = make_input<float>({M, K}, 21), b = make_input<float>({K, N}, 22);
    const Tensor<double> ref = test_ref::matmul(a.ref, b.ref);
    {
        Tf32Guard on(true);
        CHECK(polymath::cuda::allow_tf32());
        CHECK_NEAR_REF(ops::matmul(a.dev, b.dev), ref, 5e-3, 3e-3 * std::sqrt(double(K)));
        CHECK_NEAR_REF(ops::matmul(a.dev.reshape({3, 43, K}), b.dev), test_ref::matmul(a.ref.reshape({3, 43, K}), b.ref),
                       5e-3, 3e-3 * std::sqrt(double(K)));
    }
    CHECK(!polymath::cuda::allow_tf32());
    CHECK_NEAR_REF(ops::matmul(a.dev, b.dev), ref, 1e-5, 1e-5 * std::sqrt(double(K)));
}

TEST_CASE("matmul runs on the current stream and on several host threads") {
    POLYMATH_REQUIRE_GPU();
    const auto a = make_input<float>({5, 33, 17}, 31), b = make_input<float>({5, 17, 129}, 32);
    const Tensor<double> ref = test_ref::matmul(a.ref, b.ref);
    {
        polymath::cuda::Stream s;
        polymath::cuda::StreamGuard g(s.get());
        const Tensor<float, Cuda> c = ops::matmul(a.dev, b.dev);
        CHECK_NEAR_REF(c, ref, 1e-5, 1e-4);
    }
    polymath::cuda::synchronize();  // a.dev / b.dev were made on the default stream; keep them alive past the threads
    double worst[4] = {};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            polymath::cuda::Stream s;
            polymath::cuda::StreamGuard g(s.get());
            double w = 0;
            for (int rep = 0; rep < 5; ++rep) {
                const Tensor<float, Cuda> c = ops::matmul(a.dev, b.dev);
                const std::vector<float> v = c.to_vector();
                const std::vector<double> r = ref.to_vector();
                for (std::size_t i = 0; i < v.size(); ++i)
                    w = std::max(w, std::abs(double(v[i]) - r[i]) / (1e-4 + 1e-5 * std::abs(r[i])));
            }
            s.synchronize();
            worst[t] = w;
        });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < 4; ++t) CHECK(worst[t] <= 1.0);
}

TEST_CASE_TEMPLATE("grouped GEMM family matches the CPU, with empty experts first, in the middle and last", T, float,
                   double, bfloat16, polymath::half) {
    POLYMATH_REQUIRE_GPU();
    const std::int64_t K = 33, N = 129;
    const Tensor<std::int64_t> off{0, 0, 7, 40, 40, 41, 74, 74};  // experts 0, 3 and 6 are empty
    const std::int64_t E = off.numel() - 1, M = 74;
    const auto a = make_input<T>({M, K}, seed_of<T>(1));
    const auto b = make_input<T>({E, K, N}, seed_of<T>(2));
    const auto bt = make_input<T>({E, N, K}, seed_of<T>(3));
    const auto g = make_input<T>({M, N}, seed_of<T>(4));
    const auto bias = make_input<T>({E, N}, seed_of<T>(5));
    const double rt = Tol<T>::rtol();

    CHECK_NEAR_REF(ops::grouped_gemm(a.dev, b.dev, off), test_ref::grouped_gemm(a.ref, b.ref, off, false), rt,
                   Tol<T>::atol(K));
    CHECK_NEAR_REF(ops::grouped_gemm(a.dev, bt.dev, off, true), test_ref::grouped_gemm(a.ref, bt.ref, off, true), rt,
                   Tol<T>::atol(K));
    {  // alpha / beta into an existing output
        const auto o = make_input<T>({M, N}, seed_of<T>(6));
        Tensor<double> ref = o.ref.clone();
        test_ref::grouped_gemm_into(a.ref, b.ref, off, false, 0.5, 1.5, ref);
        ops::grouped_gemm(a.dev, b.dev, off, false, dtype_cast<T>(0.5f), dtype_cast<T>(1.5f), o.dev);
        CHECK_NEAR_REF(o.dev, ref, rt, Tol<T>::atol(K) * 2);
    }
    {  // a column slice of a wider matrix (leading dim > K) needs no copy, same result
        const auto w = make_input<T>({M, K + 6}, seed_of<T>(7));
        CHECK_NEAR_REF(ops::grouped_gemm(w.dev.slice(1, 3, 3 + K), b.dev, off),
                       test_ref::grouped_gemm(w.ref.slice(1, 3, 3 + K), b.ref, off, false), rt, Tol<T>::atol(K));
    }
    {  // weight gradient: empty experts give exact zeros
        const Tensor<T, Cuda> dw = ops::grouped_gemm_tn(a.dev, g.dev, off);
        CHECK(dw.shape() == Shape{E, K, N});
        CHECK_NEAR_REF(dw, test_ref::grouped_gemm_tn(a.ref, g.ref, off), rt, Tol<T>::atol(33));
    }
    {
        const auto o = make_input<T>({M, N}, seed_of<T>(8));
        Tensor<double> ref = o.ref.clone();
        test_ref::grouped_bias_add_(ref, bias.ref, off);
        ops::grouped_bias_add_(o.dev, bias.dev, off);
        CHECK_NEAR_REF(o.dev, ref, rt, Tol<T>::atol(1));
    }
    CHECK_NEAR_REF(ops::grouped_row_sum(g.dev, off), test_ref::grouped_row_sum(g.ref, off), rt, Tol<T>::atol(33));
}

TEST_CASE("grouped GEMM: a single expert equals matmul; all-empty but one; errors name the op") {
    POLYMATH_REQUIRE_GPU();
    const auto a = make_input<float>({129, 7}, 41), b = make_input<float>({1, 7, 33}, 42);
    const Tensor<std::int64_t> one{0, 129};
    CHECK_NEAR_REF(ops::grouped_gemm(a.dev, b.dev, one), test_ref::matmul(a.ref, b.ref.select(0, 0)), 1e-5, 1e-4);
    const auto b4 = make_input<float>({4, 7, 33}, 43);
    const Tensor<std::int64_t> last_only{0, 0, 0, 0, 129};
    CHECK_NEAR_REF(ops::grouped_gemm(a.dev, b4.dev, last_only), test_ref::grouped_gemm(a.ref, b4.ref, last_only, false),
                   1e-5, 1e-4);
    CHECK_NEAR_REF(ops::grouped_gemm_tn(a.dev, a.dev, last_only), test_ref::grouped_gemm_tn(a.ref, a.ref, last_only),
                   1e-5, 1e-3);
    const Tensor<std::int64_t> bad{0, 50, 40, 129};
    const auto b3 = make_input<float>({3, 7, 33}, 44);
    CHECK(error_of([&] { (void)ops::grouped_gemm(a.dev, b3.dev, bad); }).find("grouped_gemm: expert_offsets decrease") !=
          std::string::npos);
    const Tensor<std::int64_t> short_end{0, 50, 100};
    CHECK(error_of([&] { (void)ops::grouped_gemm(a.dev, b.dev, short_end); }).find("grouped_gemm: expert_offsets") !=
          std::string::npos);
    CHECK(error_of([&] { (void)ops::grouped_gemm(a.dev, b.dev.transpose(1, 2).contiguous(), one); })
              .find("grouped_gemm: inner dims differ") != std::string::npos);
}
