// Neural-network primitives: matmul / gemm, softmax / log_softmax,
// cross_entropy / nll_loss / mse_loss, layer_norm and dropout. Forward values
// against naive loops or hand-derived numbers, gradients with grad_check
// (double), the threaded GEMM split against the single-thread result, and the
// error messages of bad input.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "polymath/polymath.hpp"
#include "polymath/autograd/dropout.hpp"
#include "polymath/autograd/grad_check.hpp"
#include "polymath/autograd/layer_norm.hpp"
#include "polymath/autograd/loss.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/autograd/softmax.hpp"
#include "ops_test_util.hpp"

using namespace polymath;
using namespace polymath::test;
using doctest::Contains;

namespace {

using I64 = Tensor<std::int64_t>;

template <class T>
Tensor<T> randn_t(const Shape& s, std::uint64_t seed) {
    Generator g(seed);
    return Tensor<T>::randn(s, g);
}

// Restores the thread count on scope exit.
struct ThreadCount {
    int prev;
    explicit ThreadCount(int n) : prev(num_threads()) { set_num_threads(n); }
    ~ThreadCount() { set_num_threads(prev); }
};

template <class T>
void check_close(const Tensor<T>& got, const Tensor<T>& want, double tol) {
    REQUIRE(got.shape() == want.shape());
    const std::vector<T> g = got.to_vector(), w = want.to_vector();
    double worst = 0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < g.size(); ++i) {
        const double e = std::fabs(double(g[i]) - double(w[i])) / (1.0 + std::fabs(double(w[i])));
        if (!(e <= worst)) {
            worst = e;
            at = i;
        }
    }
    CHECK_MESSAGE(worst <= tol, "max rel error ", worst, " at flat index ", at, " (got ", (g.empty() ? 0.0 : double(g[at])),
                  ", want ", (w.empty() ? 0.0 : double(w[at])), ")");
}

template <class T>
bool bit_equal(const Tensor<T>& a, const Tensor<T>& b) {
    if (a.shape() != b.shape()) return false;
    const std::vector<T> x = a.to_vector(), y = b.to_vector();
    return std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

// Triple loop over a 2-D pair, in double.
template <class T>
Tensor<T> naive_mm(const Tensor<T>& a, const Tensor<T>& b) {
    const std::int64_t M = a.shape()[0], K = a.shape()[1], N = b.shape()[1];
    Tensor<T> c = Tensor<T>::empty({M, N});
    for (std::int64_t i = 0; i < M; ++i)
        for (std::int64_t j = 0; j < N; ++j) {
            double acc = 0;
            for (std::int64_t k = 0; k < K; ++k) acc += double(a.at({i, k})) * double(b.at({k, j}));
            c.at({i, j}) = T(acc);
        }
    return c;
}

// Naive torch.matmul for >= 2-D operands with broadcast batch dims.
template <class T>
Tensor<T> naive_batched(const Tensor<T>& a, const Tensor<T>& b) {
    Shape ba, bb;
    for (int i = 0; i + 2 < a.dim(); ++i) ba.push_back(a.shape()[i]);
    for (int i = 0; i + 2 < b.dim(); ++i) bb.push_back(b.shape()[i]);
    const Shape batch = broadcast_shapes(ba, bb, "test");
    Shape sa = batch, sb = batch, so = batch;
    sa.push_back(a.shape()[a.dim() - 2]);
    sa.push_back(a.shape()[a.dim() - 1]);
    sb.push_back(b.shape()[b.dim() - 2]);
    sb.push_back(b.shape()[b.dim() - 1]);
    so.push_back(a.shape()[a.dim() - 2]);
    so.push_back(b.shape()[b.dim() - 1]);
    const Tensor<T> ae = a.expand(sa), be = b.expand(sb);
    Tensor<T> out = Tensor<T>::empty(so);
    for (const auto& idx : all_indices(batch)) {
        Tensor<T> x = ae, y = be, o = out;
        for (auto i : idx) {
            x = x.select(0, i);
            y = y.select(0, i);
            o = o.select(0, i);
        }
        o.copy_(naive_mm(x, y));
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// matmul / gemm
// ---------------------------------------------------------------------------

TEST_CASE("matmul of 2-D operands equals the triple loop (float and double, tiny to GEMM-sized)") {
    for (auto [M, K, N] : std::vector<std::array<std::int64_t, 3>>{{1, 1, 1}, {2, 3, 4}, {5, 7, 3}, {37, 53, 29}, {64, 80, 72}}) {
        const auto a = randn_t<double>({M, K}, 1), b = randn_t<double>({K, N}, 2);
        check_close(ops::matmul(a, b), naive_mm(a, b), 1e-12);
        const auto af = a.to<float>(), bf = b.to<float>();
        check_close(ops::matmul(af, bf), naive_mm(af, bf), 1e-5);
    }
}

TEST_CASE("matmul reads transposed, row-padded and sliced views without changing the result") {
    const auto A = randn_t<double>({40, 50}, 3), B = randn_t<double>({50, 60}, 4);
    // transposed views (column-major to Eigen)
    const auto at = randn_t<double>({33, 40}, 5).t();  // [40, 33]
    const auto bt = randn_t<double>({45, 33}, 6).t();  // [33, 45]
    CHECK(!at.is_contiguous());
    check_close(ops::matmul(at, bt), naive_mm(at, bt), 1e-12);
    // row-padded: a column window of a wider matrix (outer stride > cols)
    const auto ap = A.narrow(1, 5, 30);  // [40, 30], row stride 50
    const auto bp = B.narrow(0, 10, 30).narrow(1, 3, 20);  // [30, 20], row stride 60
    check_close(ops::matmul(ap, bp), naive_mm(ap, bp), 1e-12);
    // column window of a transpose (column-major with padding)
    const auto ct = B.t().narrow(0, 2, 25);  // [25, 50], col-major, ld 60
    check_close(ops::matmul(ct, A.t()), naive_mm(ct, A.t()), 1e-12);
    // step-2 slices (no unit stride: copied internally) and an expanded operand
    const auto as = A.slice(1, 0, 50, 2);  // [40, 25]
    const auto bs = B.slice(0, 0, 50, 2);  // [25, 60]
    check_close(ops::matmul(as, bs), naive_mm(as, bs), 1e-12);
    const auto row = randn_t<double>({1, 25}, 7).expand({40, 25});
    check_close(ops::matmul(row, bs), naive_mm(row, bs), 1e-12);
    // the inputs are not modified
    check_close(A, randn_t<double>({40, 50}, 3), 0);
}

TEST_CASE("matmul with 1-D operands: vector-matrix, matrix-vector, dot, batched") {
    const auto v = randn_t<double>({6}, 8), w = randn_t<double>({6}, 9);
    const auto m = randn_t<double>({6, 4}, 10), mt = randn_t<double>({3, 6}, 11);
    const auto vm = ops::matmul(v, m);
    CHECK(vm.shape() == Shape{4});
    check_close(vm, naive_mm(v.unsqueeze(0), m).reshape({4}), 1e-12);
    const auto mv = ops::matmul(mt, v);
    CHECK(mv.shape() == Shape{3});
    check_close(mv, naive_mm(mt, v.unsqueeze(1)).reshape({3}), 1e-12);
    const auto d = ops::matmul(v, w);
    CHECK(d.dim() == 0);
    double ref = 0;
    for (int i = 0; i < 6; ++i) ref += v.data()[i] * w.data()[i];
    CHECK(d.item() == doctest::Approx(ref).epsilon(1e-12));
    const auto bm = randn_t<double>({2, 3, 6, 4}, 12);
    const auto vb = ops::matmul(v, bm);
    CHECK(vb.shape() == Shape{2, 3, 4});
    check_close(vb, naive_batched(v.unsqueeze(0), bm).reshape({2, 3, 4}), 1e-12);
    const auto bv = ops::matmul(randn_t<double>({2, 5, 6}, 13), v);
    CHECK(bv.shape() == Shape{2, 5});
    check_close(bv, naive_batched(randn_t<double>({2, 5, 6}, 13), v.unsqueeze(1)).reshape({2, 5}), 1e-12);
}

TEST_CASE("matmul of transposed and row-padded views allocates only its output") {
    const auto a = randn_t<float>({70, 90}, 24), b = randn_t<float>({80, 70}, 25);
    const auto at = a.t();                       // [90, 70] column-major
    const auto bp = b.narrow(0, 0, 70).narrow(1, 10, 60);  // [70, 60], row stride 70
    const auto before = CpuAllocator::instance().stats().allocations;
    const auto c = ops::matmul(at, bp);
    CHECK(CpuAllocator::instance().stats().allocations - before == 1);
    check_close(c, naive_mm(at, bp), 1e-4);
    // a batch of inputs folded into one GEMM: also only the output
    const auto x = randn_t<float>({4, 30, 90}, 26);
    const auto before2 = CpuAllocator::instance().stats().allocations;
    const auto y = ops::matmul(x, at.t().t());
    CHECK(CpuAllocator::instance().stats().allocations - before2 == 1);
    check_close(y, naive_batched(x, at), 1e-4);
}

TEST_CASE("batched matmul broadcasts batch dims like torch.matmul") {
    const auto a = randn_t<double>({2, 1, 4, 5}, 14), b = randn_t<double>({3, 5, 6}, 15);
    const auto c = ops::matmul(a, b);
    CHECK(c.shape() == Shape{2, 3, 4, 6});
    check_close(c, naive_batched(a, b), 1e-12);
    // right operand without a batch: folded into one GEMM
    const auto x = randn_t<double>({3, 7, 5}, 16), w = randn_t<double>({5, 6}, 17);
    check_close(ops::matmul(x, w), naive_batched(x, w), 1e-12);
    // left operand whose batch does not fold (permuted) and a transposed right operand
    const auto xp = randn_t<double>({7, 3, 5}, 18).permute({1, 0, 2});  // [3, 7, 5]
    check_close(ops::matmul(xp, w), naive_batched(xp, w), 1e-12);
    check_close(ops::matmul(xp, randn_t<double>({6, 5}, 19).t()), naive_batched(xp, randn_t<double>({6, 5}, 19).t()), 1e-12);
    // batch of transposed matrices on both sides
    const auto at = randn_t<double>({4, 5, 3}, 20).transpose(-1, -2);  // [4, 3, 5]
    const auto bt = randn_t<double>({4, 2, 5}, 21).transpose(-1, -2);  // [4, 5, 2]
    check_close(ops::matmul(at, bt), naive_batched(at, bt), 1e-12);
    // expanded batch and a size-1 batch dim against a larger one
    const auto ae = randn_t<double>({1, 4, 5}, 22).expand({6, 4, 5});
    check_close(ops::matmul(ae, randn_t<double>({6, 5, 3}, 23)), naive_batched(ae, randn_t<double>({6, 5, 3}, 23)), 1e-12);
    // empty batch and K == 0
    CHECK(ops::matmul(randn_t<double>({0, 4, 5}, 1), randn_t<double>({5, 3}, 2)).shape() == Shape{0, 4, 3});
    const auto z = ops::matmul(Tensor<double>::empty({3, 0}), Tensor<double>::empty({0, 2}));
    CHECK(z.shape() == Shape{3, 2});
    for (double e : z.to_vector()) CHECK(e == 0.0);
}

TEST_CASE("threaded GEMM split gives the single-thread result bit for bit") {
    const auto a = randn_t<float>({300, 200}, 30), b = randn_t<float>({200, 250}, 31);
    Tensor<float> one, two;
    {
        ThreadCount t(1);
        one = ops::matmul(a, b);
    }
    {
        ThreadCount t(2);
        two = ops::matmul(a, b);
    }
    CHECK(bit_equal(one, two));
    check_close(one, naive_mm(a, b), 1e-4);
    // wide output (split over columns) with transposed operands
    const auto at = randn_t<float>({180, 100}, 32).t(), bt = randn_t<float>({400, 180}, 33).t();  // [100,180] x [180,400]
    {
        ThreadCount t(1);
        one = ops::matmul(at, bt);
    }
    {
        ThreadCount t(2);
        two = ops::matmul(at, bt);
    }
    CHECK(bit_equal(one, two));
    check_close(one, naive_mm(at, bt), 1e-4);
    // batched: 3 matrices (sequential with the inner split) and 8 (split over the batch)
    for (std::int64_t B : {3, 8}) {
        const auto x = randn_t<float>({B, 96, 120}, 34), y = randn_t<float>({B, 120, 88}, 35);
        {
            ThreadCount t(1);
            one = ops::matmul(x, y);
        }
        {
            ThreadCount t(2);
            two = ops::matmul(x, y);
        }
        CHECK(bit_equal(one, two));
        check_close(one, naive_batched(x, y), 1e-4);
    }
    // matrix-vector and vector-matrix products large enough to split (GEMV per block)
    const auto mv_a = randn_t<float>({300, 4000}, 38), mv_x = randn_t<float>({4000}, 39);
    const auto vm_b = randn_t<float>({4000, 300}, 40);
    Tensor<float> mv1, mv2, vm1, vm2;
    {
        ThreadCount t(1);
        mv1 = ops::matmul(mv_a, mv_x);
        vm1 = ops::matmul(mv_x, vm_b);
    }
    {
        ThreadCount t(2);
        mv2 = ops::matmul(mv_a, mv_x);
        vm2 = ops::matmul(mv_x, vm_b);
    }
    CHECK(bit_equal(mv1, mv2));
    CHECK(bit_equal(vm1, vm2));
    check_close(mv1, naive_mm(mv_a, mv_x.unsqueeze(1)).reshape({300}), 1e-4);
    check_close(vm1, naive_mm(mv_x.unsqueeze(0), vm_b).reshape({300}), 1e-4);
    // double through the same path
    const auto ad = randn_t<double>({300, 200}, 36), bd = randn_t<double>({200, 250}, 37);
    Tensor<double> d1, d2;
    {
        ThreadCount t(1);
        d1 = ops::matmul(ad, bd);
    }
    {
        ThreadCount t(2);
        d2 = ops::matmul(ad, bd);
    }
    CHECK(bit_equal(d1, d2));
}

TEST_CASE("gemm: transposes, alpha and beta, and outputs of any layout") {
    const auto a = randn_t<double>({30, 20}, 40), b = randn_t<double>({25, 30}, 41);
    // aᵀ · bᵀ : [20, 30] x [30, 25]
    const auto ref = naive_mm(a.t(), b.t());
    check_close(ops::gemm(a, b, true, true), ref, 1e-12);
    check_close(ops::gemm(a, b, true, true, 2.5), ops::mul_scalar(ref, 2.5), 1e-12);
    // beta: out = 2 · aᵀbᵀ + 0.5 · out
    const auto c0 = randn_t<double>({20, 25}, 42);
    const auto want = ops::add(ops::mul_scalar(ref, 2.0), ops::mul_scalar(c0, 0.5));
    Tensor<double> c = c0.clone();
    ops::gemm(a, b, true, true, 2.0, 0.5, c);
    check_close(c, want, 1e-12);
    // column-major output (a transposed buffer)
    Tensor<double> buf = c0.t().clone();  // [25, 20] contiguous
    Tensor<double> cm = buf.t();           // [20, 25] column-major view
    ops::gemm(a, b, true, true, 2.0, 0.5, cm);
    check_close(cm, want, 1e-12);
    // an output with no unit stride: computed aside and copied in
    Tensor<double> wide = Tensor<double>::zeros({20, 50});
    Tensor<double> strided = wide.slice(1, 0, 50, 2);
    strided.copy_(c0);
    ops::gemm(a, b, true, true, 2.0, 0.5, strided);
    check_close(strided, want, 1e-12);
    for (std::int64_t j = 1; j < 50; j += 2) CHECK(wide.at({3, j}) == 0.0);
    // beta == 0 ignores NaN in the output, like BLAS
    Tensor<double> nan_out = Tensor<double>::full({20, 25}, std::numeric_limits<double>::quiet_NaN());
    ops::gemm(a, b, true, true, 1.0, 0.0, nan_out);
    check_close(nan_out, ref, 1e-12);
    // the nt / tn spellings
    check_close(ops::matmul_nt(a.t(), b), ref, 1e-12);
    check_close(ops::matmul_tn(a, b.t()), ref, 1e-12);
}

TEST_CASE("matmul errors name the op and both shapes") {
    const auto a = randn_t<double>({2, 3}, 1), b = randn_t<double>({4, 5}, 2);
    const std::string e = error_of([&] { ops::matmul(a, b); });
    CHECK(has(e, "matmul"));
    CHECK(has(e, "[2, 3]"));
    CHECK(has(e, "[4, 5]"));
    CHECK_THROWS_WITH_AS(ops::matmul(randn_t<double>({2, 2, 3}, 1), randn_t<double>({3, 3, 4}, 2)),
                         Contains("[2, 2, 3]"), Error);
    CHECK_THROWS_WITH_AS(ops::matmul(randn_t<double>({3}, 1), randn_t<double>({4}, 2)), Contains("matmul"), Error);
    CHECK_THROWS_WITH_AS(ops::gemm(a, b), Contains("gemm"), Error);
    CHECK_THROWS_WITH_AS(matmul(Var<double>(a), Var<double>(b)), Contains("[4, 5]"), Error);
}

TEST_CASE("matmul gradients: 2-D, batched with broadcast, transposed views, 1-D") {
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({4, 5}, 50)), leaf(randn_t<double>({5, 3}, 51))});
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({2, 1, 3, 4}, 52)), leaf(randn_t<double>({3, 4, 2}, 53))});
    // [B, M, K] x [K, N]: the folded dB path
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({3, 4, 5}, 54)), leaf(randn_t<double>({5, 2}, 55))});
    // [M, K] x [B, K, N]: dA summed over the batch
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({4, 5}, 56)), leaf(randn_t<double>({3, 5, 2}, 57))});
    // transposed (non-contiguous) leaves
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({5, 4}, 58).t()), leaf(randn_t<double>({3, 5}, 59).t())});
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({2, 5, 4}, 60).transpose(1, 2)), leaf(randn_t<double>({5, 3}, 61))});
    // 1-D operands
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({5}, 62)), leaf(randn_t<double>({5, 3}, 63))});
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({2, 4, 5}, 64)), leaf(randn_t<double>({5}, 65))});
    check_grads([](const auto& v) { return matmul(v[0], v[1]); },
                {leaf(randn_t<double>({5}, 66)), leaf(randn_t<double>({5}, 67))});
    // only one side requires grad
    Var<double> a(randn_t<double>({3, 4}, 68), true), b(randn_t<double>({4, 2}, 69), false);
    Var<double> c = matmul(a, b);
    c.backward(Tensor<double>::ones({3, 2}));
    CHECK(a.grad().shape() == Shape{3, 4});
    CHECK(!b.grad().defined());
}

TEST_CASE("matmul gradients on sizes that run the threaded split") {
    ThreadCount t(2);
    const auto a = randn_t<double>({130, 120}, 70), b = randn_t<double>({120, 110}, 71), g = randn_t<double>({130, 110}, 72);
    Var<double> av(a, true), bv(b, true);
    matmul(av, bv).backward(g);
    check_close(av.grad(), naive_mm(g, b.t()), 1e-12);
    check_close(bv.grad(), naive_mm(a.t(), g), 1e-12);
}

// ---------------------------------------------------------------------------
// softmax / log_softmax
// ---------------------------------------------------------------------------

namespace {
// softmax by definition along `axis`, in double.
Tensor<double> naive_softmax(const Tensor<double>& x, int axis, bool log) {
    Tensor<double> y = Tensor<double>::empty(x.shape());
    for (const auto& idx : all_indices(x.shape())) {
        std::vector<std::int64_t> j = idx;
        double m = -INFINITY;
        for (std::int64_t r = 0; r < x.shape()[axis]; ++r) {
            j[std::size_t(axis)] = r;
            m = std::max(m, x.at(j));
        }
        double s = 0;
        for (std::int64_t r = 0; r < x.shape()[axis]; ++r) {
            j[std::size_t(axis)] = r;
            s += std::exp(x.at(j) - m);
        }
        y.at(idx) = log ? x.at(idx) - m - std::log(s) : std::exp(x.at(idx) - m) / s;
    }
    return y;
}
}  // namespace

TEST_CASE("softmax and log_softmax equal the definition on every axis") {
    const auto x = randn_t<double>({3, 4, 5}, 80);
    for (int axis : {0, 1, 2}) {
        check_close(ops::softmax(x, axis), naive_softmax(x, axis, false), 1e-14);
        check_close(ops::log_softmax(x, axis), naive_softmax(x, axis, true), 1e-14);
        check_close(ops::softmax(x.to<float>(), axis), naive_softmax(x, axis, false).to<float>(), 1e-6);
        check_close(ops::log_softmax(x.to<float>(), axis), naive_softmax(x, axis, true).to<float>(), 1e-6);
    }
    check_close(ops::softmax(x, -1), ops::softmax(x, 2), 0);
    // a softmax axis with more than one chunk of columns behind it
    const auto wide = randn_t<double>({3, 1500}, 79);
    check_close(ops::softmax(wide, 0), naive_softmax(wide, 0, false), 1e-14);
    check_close(ops::log_softmax(wide, 0), naive_softmax(wide, 0, true), 1e-14);
    check_close(ops::softmax_backward(wide, ops::softmax(wide, 0), 0),
                ops::softmax_backward(wide.t().contiguous(), ops::softmax(wide.t().contiguous(), 1), 1).t(), 1e-14);
    // non-contiguous input
    const auto xt = x.transpose(0, 2);
    check_close(ops::softmax(xt, 1), naive_softmax(xt, 1, false), 1e-14);
    // large logits do not overflow; rows sum to one
    const auto big = ops::mul_scalar(randn_t<double>({4, 7}, 81), 1000.0);
    const auto sb = ops::softmax(big, 1);
    for (double v : sb.to_vector()) CHECK(std::isfinite(v));
    check_close(ops::sum(sb, {1}), Tensor<double>::ones({4}), 1e-14);
    // one column per row: softmax 1, log_softmax 0; 0-d input
    check_close(ops::softmax(x.narrow(2, 0, 1), 2), Tensor<double>::ones({3, 4, 1}), 0);
    check_close(ops::log_softmax(x.narrow(0, 0, 1), 0), Tensor<double>::zeros({1, 4, 5}), 0);
    CHECK(ops::log_softmax(Tensor<double>::full({}, 3.0), -1).item() == 0.0);
}

TEST_CASE("softmax rows of a large input are the same with 1 and 2 threads") {
    const auto x = randn_t<float>({512, 300}, 82);
    Tensor<float> a, b, la, lb;
    {
        ThreadCount t(1);
        a = ops::softmax(x, -1);
        la = ops::log_softmax(x, 0);
    }
    {
        ThreadCount t(2);
        b = ops::softmax(x, -1);
        lb = ops::log_softmax(x, 0);
    }
    CHECK(bit_equal(a, b));
    CHECK(bit_equal(la, lb));
}

TEST_CASE("softmax and log_softmax gradients on axis 0, 1 and -1") {
    for (int axis : {0, 1, -1}) {
        CAPTURE(axis);
        check_grads([axis](const auto& v) { return softmax(v[0], axis); }, {leaf(randn_t<double>({4, 5}, 83))});
        check_grads([axis](const auto& v) { return log_softmax(v[0], axis); }, {leaf(randn_t<double>({4, 5}, 84))});
        check_grads([axis](const auto& v) { return softmax(v[0], axis); }, {leaf(randn_t<double>({3, 4, 2}, 85))});
        check_grads([axis](const auto& v) { return log_softmax(v[0], axis); }, {leaf(randn_t<double>({3, 4, 2}, 86))});
    }
    // non-contiguous leaf and a broadcast (expanded) upstream gradient from sum
    check_grads([](const auto& v) { return softmax(v[0], 0); }, {leaf(randn_t<double>({5, 3}, 87).t())});
    Var<double> x(randn_t<double>({3, 4}, 88), true);
    sum(log_softmax(x, 1)).backward();
    // d/dx sum_j log_softmax(x)_ij = 1 - C * softmax(x)_ij
    const auto sm = ops::softmax(x.value(), 1);
    check_close(x.grad(), ops::affine(sm, -4.0, 1.0), 1e-12);
}

TEST_CASE("softmax errors name the op") {
    CHECK_THROWS_WITH_AS(ops::softmax(randn_t<double>({2, 3}, 1), 2), Contains("softmax"), Error);
    CHECK_THROWS_WITH_AS(ops::log_softmax(randn_t<double>({2, 3}, 1), -3), Contains("log_softmax"), Error);
}

// ---------------------------------------------------------------------------
// losses
// ---------------------------------------------------------------------------

TEST_CASE("cross_entropy equals hand-derived values, with ignore_index and label smoothing") {
    // row 0: logits 1,2,3, target 2: lse = log(e + e^2 + e^3) = 3.40760596444438, nll = lse - 3
    // row 1: uniform logits, target 0: nll = log 3 (for any smoothing too)
    const Tensor<double> logits{{1, 2, 3}, {1, 1, 1}};
    const double nll0 = 0.40760596444438013, nll1 = std::log(3.0);
    CHECK(ops::cross_entropy(logits, I64{2, 0}).item() == doctest::Approx((nll0 + nll1) / 2).epsilon(1e-14));
    CrossEntropyOptions sum_opt;
    sum_opt.reduction = Reduction::Sum;
    CHECK(ops::cross_entropy(logits, I64{2, 0}, sum_opt).item() == doctest::Approx(nll0 + nll1).epsilon(1e-14));
    CrossEntropyOptions none_opt;
    none_opt.reduction = Reduction::None;
    const auto per = ops::cross_entropy(logits, I64{2, -100}, none_opt);
    CHECK(per.shape() == Shape{2});
    CHECK(per.data()[0] == doctest::Approx(nll0).epsilon(1e-14));
    CHECK(per.data()[1] == 0.0);
    // ignore_index: the mean is over the one kept row
    CHECK(ops::cross_entropy(logits, I64{2, -100}).item() == doctest::Approx(nll0).epsilon(1e-14));
    CrossEntropyOptions ign;
    ign.ignore_index = 0;
    CHECK(ops::cross_entropy(logits, I64{2, 0}, ign).item() == doctest::Approx(nll0).epsilon(1e-14));
    // label smoothing 0.1: loss0 = 0.9 * nll0 + 0.1/3 * (3 lse - 6) = nll0 + 0.1 (lse - nll0 - 2) = nll0 + 0.1
    CrossEntropyOptions ls;
    ls.label_smoothing = 0.1;
    CHECK(ops::cross_entropy(logits, I64{2, 0}, ls).item() == doctest::Approx((nll0 + 0.1 + nll1) / 2).epsilon(1e-14));
    ls.ignore_index = -1;
    CHECK(ops::cross_entropy(logits, I64{2, -1}, ls).item() == doctest::Approx(nll0 + 0.1).epsilon(1e-14));
    // everything ignored with mean: NaN, like PyTorch; sum: 0
    CHECK(std::isnan(ops::cross_entropy(logits, I64{-100, -100}).item()));
    CHECK(ops::cross_entropy(logits, I64{-100, -100}, sum_opt).item() == 0.0);
    // float
    CHECK(ops::cross_entropy(logits.to<float>(), I64{2, 0}).item() == doctest::Approx((nll0 + nll1) / 2).epsilon(1e-6));
}

TEST_CASE("cross_entropy over [N, C, d] equals the [N*d, C] form") {
    const auto x = randn_t<double>({2, 4, 3}, 90);  // N=2, C=4, d=3
    const I64 t = I64::from_vector({0, 3, 1, 2, -100, 3}, {2, 3});
    const auto rows = x.permute({0, 2, 1}).contiguous().reshape({6, 4});
    const I64 tf = t.reshape({6});
    for (double eps : {0.0, 0.2}) {
        CrossEntropyOptions o;
        o.label_smoothing = eps;
        CHECK(ops::cross_entropy(x, t, o).item() == doctest::Approx(ops::cross_entropy(rows, tf, o).item()).epsilon(1e-14));
        o.reduction = Reduction::None;
        const auto per = ops::cross_entropy(x, t, o);
        CHECK(per.shape() == Shape{2, 3});
        check_close(per.reshape({6}), ops::cross_entropy(rows, tf, o), 1e-14);
    }
}

TEST_CASE("cross_entropy gradients with ignore_index, label smoothing and every reduction") {
    const I64 t{1, -100, 3, 0, 2};
    for (double eps : {0.0, 0.25}) {
        for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
            CrossEntropyOptions o;
            o.label_smoothing = eps;
            o.reduction = r;
            check_grads([&](const auto& v) { return cross_entropy(v[0], t, o); }, {leaf(randn_t<double>({5, 4}, 91))});
        }
    }
    CrossEntropyOptions o;
    o.label_smoothing = 0.1;
    const I64 t3 = I64::from_vector({0, 3, 1, 2, -100, 3}, {2, 3});
    check_grads([&](const auto& v) { return cross_entropy(v[0], t3, o); }, {leaf(randn_t<double>({2, 4, 3}, 92))});
    // non-contiguous logits
    check_grads([&](const auto& v) { return cross_entropy(v[0], t, o); }, {leaf(randn_t<double>({4, 5}, 93).t())});
    // the gradient is (softmax - smoothed one-hot) / count
    Var<double> x(Tensor<double>{{1, 2, 3}, {1, 1, 1}}, true);
    cross_entropy(x, I64{2, -100}).backward();
    const auto p = ops::softmax(x.value(), 1);
    CHECK(x.grad().at({0, 0}) == doctest::Approx(p.at({0, 0})).epsilon(1e-14));
    CHECK(x.grad().at({0, 2}) == doctest::Approx(p.at({0, 2}) - 1).epsilon(1e-14));
    CHECK(x.grad().at({1, 1}) == 0.0);
    // all ignored: NaN loss, zero gradient
    Var<double> z(randn_t<double>({2, 3}, 94), true);
    Var<double> lz = cross_entropy(z, I64{-100, -100});
    CHECK(std::isnan(lz.item()));
    lz.backward();
    for (double g : z.grad().to_vector()) CHECK(g == 0.0);
}

TEST_CASE("cross_entropy errors: bad target value, shape mismatch, bad smoothing") {
    const auto x = randn_t<double>({4, 3}, 95);
    const std::string e = error_of([&] { ops::cross_entropy(x, I64{0, 7, 1, 2}); });
    CHECK(has(e, "cross_entropy"));
    CHECK(has(e, "target value 7"));
    CHECK(has(e, "position [1]"));
    CHECK(has(e, "3 classes"));
    CHECK_THROWS_WITH_AS(ops::cross_entropy(x, I64{0, -1, 1, 2}), Contains("target value -1"), Error);
    CHECK_THROWS_WITH_AS(ops::cross_entropy(x, I64{0, 1, 2}), Contains("[4, 3]"), Error);
    CHECK_THROWS_WITH_AS(ops::cross_entropy(randn_t<double>({3}, 1), I64{0}), Contains("cross_entropy"), Error);
    CrossEntropyOptions o;
    o.label_smoothing = 1.5;
    CHECK_THROWS_WITH_AS(ops::cross_entropy(x, I64{0, 1, 1, 2}, o), Contains("label_smoothing"), Error);
    const std::string e3 = error_of([&] {
        ops::cross_entropy(randn_t<double>({2, 3, 2}, 2), I64::from_vector({0, 1, 2, 5}, {2, 2}));
    });
    CHECK(has(e3, "position [1, 1]"));
    CHECK_THROWS_WITH_AS(cross_entropy(Var<double>(x, true), I64{0, 3, 1, 2}), Contains("target value 3"), Error);
}

TEST_CASE("nll_loss picks -log_probs at the targets; its gradient matches grad_check") {
    const Tensor<double> lp{{-0.1, -2.0, -3.0}, {-1.5, -0.5, -4.0}, {-0.7, -0.8, -0.9}};
    CHECK(ops::nll_loss(lp, I64{0, 1, 2}).item() == doctest::Approx((0.1 + 0.5 + 0.9) / 3).epsilon(1e-14));
    CHECK(ops::nll_loss(lp, I64{0, -100, 2}).item() == doctest::Approx((0.1 + 0.9) / 2).epsilon(1e-14));
    NllLossOptions o;
    o.reduction = Reduction::Sum;
    CHECK(ops::nll_loss(lp, I64{0, 1, 2}, o).item() == doctest::Approx(1.5).epsilon(1e-14));
    // nll_loss(log_softmax(x)) == cross_entropy(x)
    const auto x = randn_t<double>({5, 4}, 96);
    const I64 t{1, 0, 3, -100, 2};
    CHECK(ops::nll_loss(ops::log_softmax(x, 1), t).item() == doctest::Approx(ops::cross_entropy(x, t).item()).epsilon(1e-13));
    for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        NllLossOptions no;
        no.reduction = r;
        check_grads([&](const auto& v) { return nll_loss(v[0], t, no); }, {leaf(randn_t<double>({5, 4}, 97))});
        check_grads([&](const auto& v) { return nll_loss(log_softmax(v[0], 1), t, no); }, {leaf(randn_t<double>({5, 4}, 98))});
    }
    CHECK_THROWS_WITH_AS(ops::nll_loss(lp, I64{0, 3, 2}), Contains("nll_loss"), Error);
}

TEST_CASE("mse_loss: mean, sum and none, with broadcasting and gradients") {
    const Tensor<double> a{{1, 2}, {3, 4}}, b{{0, 2}, {5, 1}};
    CHECK(ops::mse_loss(a, b).item() == doctest::Approx((1.0 + 0 + 4 + 9) / 4).epsilon(1e-14));
    CHECK(ops::mse_loss(a, b, Reduction::Sum).item() == doctest::Approx(14.0).epsilon(1e-14));
    check_close(ops::mse_loss(a, b, Reduction::None), Tensor<double>{{1, 0}, {4, 9}}, 0);
    for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        check_grads([r](const auto& v) { return mse_loss(v[0], v[1], r); },
                    {leaf(randn_t<double>({3, 4}, 99)), leaf(randn_t<double>({3, 4}, 100))});
        check_grads([r](const auto& v) { return mse_loss(v[0], v[1], r); },
                    {leaf(randn_t<double>({3, 4}, 101)), leaf(randn_t<double>({4}, 102))});
    }
}

// ---------------------------------------------------------------------------
// layer_norm
// ---------------------------------------------------------------------------

namespace {
// layer_norm by definition over the last k dims.
Tensor<double> naive_layer_norm(const Tensor<double>& x, int k, const Tensor<double>& w, const Tensor<double>& b,
                                double eps) {
    std::int64_t D = 1;
    for (int i = x.dim() - k; i < x.dim(); ++i) D *= x.shape()[i];
    const auto xc = x.contiguous();
    Tensor<double> y = Tensor<double>::empty(x.shape());
    const auto wc = w.defined() ? w.contiguous() : w, bc = b.defined() ? b.contiguous() : b;
    for (std::int64_t r = 0; r < x.numel() / D; ++r) {
        const double* p = xc.data() + r * D;
        double m = 0, v = 0;
        for (std::int64_t i = 0; i < D; ++i) m += p[i];
        m /= double(D);
        for (std::int64_t i = 0; i < D; ++i) v += (p[i] - m) * (p[i] - m);
        v /= double(D);
        for (std::int64_t i = 0; i < D; ++i) {
            double o = (p[i] - m) / std::sqrt(v + eps);
            if (wc.defined()) o *= wc.data()[i];
            if (bc.defined()) o += bc.data()[i];
            y.data()[r * D + i] = o;
        }
    }
    return y;
}
}  // namespace

TEST_CASE("layer_norm equals the definition over the last 1 and last 2 dims, with and without weight / bias") {
    const auto x = randn_t<double>({3, 4, 5}, 110);
    const auto w1 = randn_t<double>({5}, 111), b1 = randn_t<double>({5}, 112);
    const auto w2 = randn_t<double>({4, 5}, 113), b2 = randn_t<double>({4, 5}, 114);
    check_close(ops::layer_norm(x, {5}), naive_layer_norm(x, 1, {}, {}, 1e-5), 1e-12);
    check_close(ops::layer_norm(x, {5}, w1, b1), naive_layer_norm(x, 1, w1, b1, 1e-5), 1e-12);
    check_close(ops::layer_norm(x, {5}, w1), naive_layer_norm(x, 1, w1, {}, 1e-5), 1e-12);
    check_close(ops::layer_norm(x, {5}, Tensor<double>(), b1), naive_layer_norm(x, 1, {}, b1, 1e-5), 1e-12);
    check_close(ops::layer_norm(x, {4, 5}, w2, b2, 1e-3), naive_layer_norm(x, 2, w2, b2, 1e-3), 1e-12);
    check_close(ops::layer_norm(x.to<float>(), {4, 5}, w2.to<float>(), b2.to<float>()),
                naive_layer_norm(x, 2, w2, b2, 1e-5).to<float>(), 1e-5);
    // non-contiguous input
    const auto xt = randn_t<double>({5, 6}, 115).t();
    check_close(ops::layer_norm(xt, {5}), naive_layer_norm(xt, 1, {}, {}, 1e-5), 1e-12);
    // mean / rstd kept for the backward, shaped with the normalised dims as 1
    const auto f = ops::layer_norm_forward(x, {4, 5});
    CHECK(f.mean.shape() == Shape{3, 1, 1});
    check_close(f.mean.reshape({3}), ops::mean(x, {1, 2}), 1e-14);
}

TEST_CASE("layer_norm gradients with and without weight / bias, over the last 1 and 2 dims") {
    check_grads([](const auto& v) { return layer_norm(v[0], {5}); }, {leaf(randn_t<double>({3, 5}, 120))});
    check_grads([](const auto& v) { return layer_norm(v[0], {5}, v[1], v[2]); },
                {leaf(randn_t<double>({2, 3, 5}, 121)), leaf(randn_t<double>({5}, 122)), leaf(randn_t<double>({5}, 123))});
    check_grads([](const auto& v) { return layer_norm(v[0], {3, 5}, v[1], v[2]); },
                {leaf(randn_t<double>({2, 3, 5}, 124)), leaf(randn_t<double>({3, 5}, 125)), leaf(randn_t<double>({3, 5}, 126))});
    check_grads([](const auto& v) { return layer_norm(v[0], {3, 5}); }, {leaf(randn_t<double>({2, 3, 5}, 127))});
    check_grads([](const auto& v) { return layer_norm(v[0], {4}, v[1]); },
                {leaf(randn_t<double>({3, 4}, 128)), leaf(randn_t<double>({4}, 129))});
    check_grads([](const auto& v) { return layer_norm(v[0], {4}, Var<double>(), v[1]); },
                {leaf(randn_t<double>({3, 4}, 130)), leaf(randn_t<double>({4}, 131))});
    // non-contiguous input
    check_grads([](const auto& v) { return layer_norm(v[0], {3}, v[1], v[2]); },
                {leaf(randn_t<double>({3, 4}, 132).t()), leaf(randn_t<double>({3}, 133)), leaf(randn_t<double>({3}, 134))});
    // only the parameters require grad
    Var<double> x(randn_t<double>({4, 6}, 135), false), w(randn_t<double>({6}, 136), true), b(randn_t<double>({6}, 137), true);
    layer_norm(x, {6}, w, b).backward(Tensor<double>::ones({4, 6}));
    check_close(b.grad(), Tensor<double>::full({6}, 4.0), 1e-14);
    CHECK(!x.grad().defined());
}

TEST_CASE("layer_norm backward rows longer than a packet (vector body plus tail) match in float and double") {
    check_grads([](const auto& v) { return layer_norm(v[0], {37}, v[1], v[2]); },
                {leaf(randn_t<double>({3, 37}, 144)), leaf(randn_t<double>({37}, 145)), leaf(randn_t<double>({37}, 146))});
    check_grads([](const auto& v) { return layer_norm(v[0], {37}); }, {leaf(randn_t<double>({3, 37}, 147))});
    const auto x = randn_t<double>({9, 100}, 148), g = randn_t<double>({9, 100}, 149), w = randn_t<double>({100}, 150);
    const auto fd = ops::layer_norm_forward(x, {100}, w, Tensor<double>());
    const auto rd = ops::layer_norm_backward(g, x, fd.mean, fd.rstd, {100}, w);
    const auto xf = x.to<float>(), gf = g.to<float>(), wf = w.to<float>();
    const auto ff = ops::layer_norm_forward(xf, {100}, wf, Tensor<float>());
    const auto rf = ops::layer_norm_backward(gf, xf, ff.mean, ff.rstd, {100}, wf);
    check_close(rf.dx, rd.dx.to<float>(), 1e-4);
    check_close(rf.dweight, rd.dweight.to<float>(), 1e-4);
    check_close(rf.dbias, rd.dbias.to<float>(), 1e-4);
    // only dx, or only the parameters
    const auto only_dx = ops::layer_norm_backward(g, x, fd.mean, fd.rstd, {100}, w, true, false, false);
    CHECK(!only_dx.dweight.defined());
    check_close(only_dx.dx, rd.dx, 0);
    const auto only_p = ops::layer_norm_backward(g, x, fd.mean, fd.rstd, {100}, w, false, true, true);
    CHECK(!only_p.dx.defined());
    check_close(only_p.dweight, rd.dweight, 0);
}

TEST_CASE("layer_norm parameter gradients are identical with 1 and 2 threads") {
    const auto x = randn_t<float>({1000, 96}, 140), g = randn_t<float>({1000, 96}, 141);
    const auto w = randn_t<float>({96}, 142), b = randn_t<float>({96}, 143);
    ops::LayerNormGrads<float> r1, r2;
    for (int th : {1, 2}) {
        ThreadCount t(th);
        const auto f = ops::layer_norm_forward(x, {96}, w, b);
        (th == 1 ? r1 : r2) = ops::layer_norm_backward(g, x, f.mean, f.rstd, {96}, w);
    }
    CHECK(bit_equal(r1.dx, r2.dx));
    CHECK(bit_equal(r1.dweight, r2.dweight));
    CHECK(bit_equal(r1.dbias, r2.dbias));
    check_close(r1.dbias, ops::sum(g, {0}), 1e-4);
}

TEST_CASE("layer_norm errors: normalized_shape and parameter shape mismatch") {
    const auto x = randn_t<double>({2, 3}, 1);
    const std::string e = error_of([&] { ops::layer_norm(x, {4}); });
    CHECK(has(e, "layer_norm"));
    CHECK(has(e, "[4]"));
    CHECK(has(e, "[2, 3]"));
    CHECK_THROWS_WITH_AS(ops::layer_norm(x, {2, 3, 1}), Contains("normalized_shape"), Error);
    CHECK_THROWS_WITH_AS(ops::layer_norm(x, {3}, randn_t<double>({2}, 2)), Contains("weight of shape [2]"), Error);
    CHECK_THROWS_WITH_AS(ops::layer_norm(x, {3}, Tensor<double>(), randn_t<double>({4}, 2)), Contains("bias"), Error);
    CHECK_THROWS_WITH_AS(layer_norm(Var<double>(x), {2}), Contains("layer_norm"), Error);
}

// ---------------------------------------------------------------------------
// dropout
// ---------------------------------------------------------------------------

TEST_CASE("dropout: Philox mask, same seed same mask, kept fraction, scaling") {
    const std::int64_t n = 100000;
    const auto x = Tensor<float>::ones({n});
    const double p = 0.3;
    Generator g1(7), g2(7);
    const auto y1 = ops::dropout(x, p, true, g1), y2 = ops::dropout(x, p, true, g2);
    CHECK(bit_equal(y1, y2));
    CHECK(g1.offset() == std::uint64_t(n));  // reserved numel (rounded up to 4)
    const auto y3 = ops::dropout(x, p, true, g1);  // the next draw differs
    CHECK(!bit_equal(y1, y3));
    std::int64_t kept = 0, bad_value = 0, bad_rule = 0;
    const float scale = float(1.0 / (1.0 - p));
    for (std::int64_t i = 0; i < n; ++i) {
        const float v = y1.data()[i];
        bad_value += !(v == 0.0f || v == scale);
        kept += v != 0.0f;
        // the element rule of the stream: kept iff philox_uniform_float(seed, offset + i) >= p
        bad_rule += (v != 0.0f) != (philox_uniform_float(7, std::uint64_t(i)) >= float(p));
    }
    CHECK(bad_value == 0);
    CHECK(bad_rule == 0);
    CHECK(double(kept) / double(n) == doctest::Approx(1 - p).epsilon(0.01));
    // mask regeneration from (seed, offset)
    const auto m = ops::dropout_mask({n}, p, 7, 0);
    for (std::int64_t i = 0; i < n; i += 997) CHECK(bool(m.data()[i]) == (y1.data()[i] != 0.0f));
    // non-zero offset not a multiple of the block
    const auto mo = ops::dropout_mask({10}, p, 7, 5);
    for (std::int64_t i = 0; i < 10; ++i) CHECK(bool(mo.data()[i]) == (philox_uniform_float(7, 5 + std::uint64_t(i)) >= float(p)));
    // values are scaled copies of x
    const auto xr = randn_t<double>({50, 40}, 150);
    Generator g3(9);
    const auto yr = ops::dropout(xr, 0.5, true, g3);
    for (std::int64_t i = 0; i < xr.numel(); ++i)
        CHECK((yr.data()[i] == 0.0 || yr.data()[i] == doctest::Approx(2.0 * xr.data()[i]).epsilon(1e-15)));
}

TEST_CASE("dropout: eval mode and p == 0 are the identity, p == 1 zeros, bad p throws") {
    const auto x = randn_t<float>({4, 5}, 151);
    Generator g(3);
    CHECK(ops::dropout(x, 0.5, false, g).shares_storage_with(x));
    CHECK(bit_equal(ops::dropout(x, 0.0, true, g), x));
    CHECK(g.offset() == 0);
    for (float v : ops::dropout(x, 1.0, true, g).to_vector()) CHECK(v == 0.0f);
    CHECK_THROWS_WITH_AS(ops::dropout(x, 1.5, true, g), Contains("dropout"), Error);
    CHECK_THROWS_WITH_AS(ops::dropout(x, -0.1, true, g), Contains("[0, 1]"), Error);
    Var<float> xv(x, true);
    CHECK(dropout(xv, 0.5, false, g).impl() == xv.impl());
}

TEST_CASE("dropout gradient is the same mask times the scale") {
    const auto x = randn_t<double>({64, 32}, 152), gy = randn_t<double>({64, 32}, 153);
    Generator g(11);
    Var<double> xv(x, true);
    Var<double> y = dropout(xv, 0.25, true, g);
    y.backward(gy);
    for (std::int64_t i = 0; i < x.numel(); ++i) {
        const bool kept = y.value().data()[i] != 0.0;
        const double want = kept ? gy.data()[i] / 0.75 : 0.0;
        CHECK(xv.grad().data()[i] == doctest::Approx(want).epsilon(1e-15));
    }
    // p == 1: zero gradient
    Var<double> x1(x, true);
    dropout(x1, 1.0, true, g).backward(gy);
    for (double v : x1.grad().to_vector()) CHECK(v == 0.0);
}
