// Indexing, joining and shape ops: index_select / index_add, gather /
// scatter_add, embedding, concat / stack / split / chunk, topk and the
// differentiable views. Forward values against hand-derived results or naive
// loops, gradients with grad_check (double), error messages of bad input, and
// bit-exact determinism of the accumulating kernels on inputs large enough to
// run threaded.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "polymath/polymath.hpp"
#include "polymath/autograd/embedding.hpp"
#include "polymath/autograd/index.hpp"
#include "polymath/autograd/join.hpp"
#include "polymath/autograd/topk.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "ops_test_util.hpp"

using namespace polymath;
using namespace polymath::test;
using doctest::Contains;

namespace {

using I64 = Tensor<std::int64_t>;

// 0, 1, 2, ... in the given shape.
Tensor<double> seq(const Shape& s, double start = 0) {
    return Tensor<double>::arange(start, start + double(numel_of(s))).reshape(s);
}
I64 ids(const std::vector<std::int64_t>& v, const Shape& s) { return I64::from_vector(v, s); }
I64 ids(const std::vector<std::int64_t>& v) { return I64::from_vector(v); }

}  // namespace

// ============================================================================
// index_select / index_add
// ============================================================================

TEST_CASE("index_select picks entries along any axis, repeats allowed") {
    const Tensor<double> x = seq({3, 4});  // [[0 1 2 3] [4 5 6 7] [8 9 10 11]]
    const auto r0 = ops::index_select(x, 0, ids({2, 0, 2}));
    CHECK(r0.shape() == Shape{3, 4});
    CHECK(r0.to_vector() == std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
    const auto r1 = ops::index_select(x, -1, ids({3, 1}));
    CHECK(r1.shape() == Shape{3, 2});
    CHECK(r1.to_vector() == std::vector<double>{3, 1, 7, 5, 11, 9});
    const auto e = ops::index_select(x, 1, ids({}));
    CHECK(e.shape() == Shape{3, 0});
}

TEST_CASE("index_select matches a naive loop on a non-contiguous 3-D input") {
    const Tensor<double> x = seq({4, 3, 5}).permute({2, 0, 1});  // [5, 4, 3], non-contiguous
    REQUIRE(!x.is_contiguous());
    const std::vector<std::vector<std::int64_t>> lists{{3, 0, 3, 4, 1}, {3, 0, 3, 1, 1}, {2, 0, 2, 1}};
    for (int axis = 0; axis < 3; ++axis) {
        CAPTURE(axis);
        const auto& list = lists[std::size_t(axis)];
        const auto r = ops::index_select(x, axis, ids(list));
        Shape want = x.shape();
        want[axis] = std::int64_t(list.size());
        REQUIRE(r.shape() == want);
        for (const auto& m : all_indices(r.shape())) {
            auto src = m;
            src[std::size_t(axis)] = list[std::size_t(m[std::size_t(axis)])];
            CHECK(r.at(m) == x.at(src));
        }
    }
}

TEST_CASE("index_select gradient accumulates repeated indices") {
    auto x = leaf(Tensor<double>{10, 20, 30, 40});
    auto y = index_select(x, 0, ids({1, 1, 3, 1}));
    CHECK(y.value().to_vector() == std::vector<double>{20, 20, 40, 20});
    y.backward(Tensor<double>{1, 2, 3, 4});
    CHECK(x.grad().to_vector() == std::vector<double>{0, 1 + 2 + 4, 0, 3});
}

TEST_CASE("index_select passes grad_check with repeated indices, any axis, non-contiguous input") {
    Generator g(1);
    const I64 idx = ids({2, 0, 2, 2, 1});
    for (std::int64_t axis : {0, 1, -1}) {
        CAPTURE(axis);
        check_grads([&](const std::vector<Var<double>>& v) { return index_select(v[0], axis, idx); },
                    {Var<double>(randn<double>({3, 3, 3}, g))});
    }
    // A transposed (non-contiguous) leaf.
    check_grads([&](const std::vector<Var<double>>& v) { return index_select(v[0], 1, idx); },
                {Var<double>(randn<double>({4, 3}, g).t())});
}

TEST_CASE("index_select rejects out-of-range and negative indices naming the index and the size") {
    const Tensor<double> x = seq({3, 4});
    const std::string m = error_of([&] { ops::index_select(x, 1, ids({0, 4})); });
    CHECK(has(m, "index_select"));
    CHECK(has(m, "index 4"));
    CHECK(has(m, "size 4"));
    const std::string n = error_of([&] { ops::index_select(x, 0, ids({-1})); });
    CHECK(has(n, "index -1"));
    CHECK(has(n, "negative"));
    CHECK_THROWS_WITH_AS(ops::index_select(x, 0, ids({0, 1}, {1, 2})), Contains("1-D"), Error);
    CHECK_THROWS_WITH_AS(ops::index_select(x, 2, ids({0})), Contains("index_select"), Error);
}

TEST_CASE("index_add adds source rows at the indices and is differentiable in both inputs") {
    const Tensor<double> x = Tensor<double>::ones({4, 2});
    const Tensor<double> src{{1, 2}, {3, 4}, {5, 6}};
    const auto r = ops::index_add(x, 0, ids({3, 0, 3}), src);
    CHECK(r.to_vector() == std::vector<double>{4, 5, 1, 1, 1, 1, 7, 9});
    CHECK(x.to_vector() == std::vector<double>(8, 1.0));  // out of place
    CHECK_THROWS_WITH_AS(ops::index_add(x, 0, ids({0, 1}), src), Contains("index_add"), Error);

    Generator g(2);
    check_grads([](const std::vector<Var<double>>& v) { return index_add(v[0], 1, ids({1, 1, 0}), v[1]); },
                {Var<double>(randn<double>({2, 3, 2}, g)), Var<double>(randn<double>({2, 4, 2}, g).narrow(1, 1, 3))});
}

TEST_CASE("index_add accumulates deterministically on a large threaded input") {
    // O*K*I well above the parallel grain: the threaded path must give the
    // bits of a serial loop that adds in ascending source order.
    const std::int64_t O = 3, N = 37, K = 3000, I = 9;
    Generator g(7);
    const Tensor<float> src = randn<float>({O, K, I}, g);
    std::vector<std::int64_t> iv(static_cast<std::size_t>(K));
    for (std::int64_t k = 0; k < K; ++k) iv[std::size_t(k)] = (k * 7919) % N;
    const Tensor<float> x = randn<float>({O, N, I}, g);
    const auto r = ops::index_add(x, 1, ids(iv), src);
    std::vector<float> want = x.to_vector();
    const std::vector<float> sv = src.to_vector();
    for (std::int64_t o = 0; o < O; ++o)
        for (std::int64_t k = 0; k < K; ++k)
            for (std::int64_t i = 0; i < I; ++i)
                want[std::size_t((o * N + iv[std::size_t(k)]) * I + i)] += sv[std::size_t((o * K + k) * I + i)];
    CHECK(r.to_vector() == want);
    CHECK(ops::index_add(x, 1, ids(iv), src).to_vector() == r.to_vector());
}

// ============================================================================
// gather / scatter_add
// ============================================================================

TEST_CASE("gather follows torch.gather on a 2-D example") {
    const Tensor<double> x{{1, 2}, {3, 4}};
    CHECK(ops::gather(x, 1, ids({0, 0, 1, 0}, {2, 2})).to_vector() == std::vector<double>{1, 1, 4, 3});
    CHECK(ops::gather(x, 0, ids({1, 0, 0, 1, 1, 1}, {3, 2})).to_vector() == std::vector<double>{3, 2, 1, 4, 3, 4});
    // idx smaller than x in the non-gathered dimension
    CHECK(ops::gather(x, 1, ids({1, 1, 0}, {1, 3})).to_vector() == std::vector<double>{2, 2, 1});
}

TEST_CASE("gather matches a naive loop on a non-contiguous 3-D input with a smaller index") {
    Generator g(3);
    const Tensor<double> x = randn<double>({5, 4, 6}, g).transpose(0, 2);  // [6, 4, 5]
    for (int axis = 0; axis < 3; ++axis) {
        CAPTURE(axis);
        const Shape is{4, 3, 2};
        std::vector<std::int64_t> iv;
        for (std::int64_t k = 0; k < numel_of(is); ++k) iv.push_back((k * 5 + 3) % x.shape()[axis]);
        const I64 idx = ids(iv, is);
        const auto r = ops::gather(x, axis, idx);
        REQUIRE(r.shape() == is);
        for (const auto& m : all_indices(is)) {
            auto src = m;
            src[std::size_t(axis)] = idx.at(m);
            CHECK(r.at(m) == x.at(src));
        }
    }
    // A non-contiguous index tensor.
    const I64 it = ids({0, 1, 2, 3, 4, 5}, {2, 3}).t();  // [3, 2]
    const Tensor<double> x2 = seq({6, 2});
    CHECK(ops::gather(x2, 0, it).to_vector() == std::vector<double>{0, 7, 2, 9, 4, 11});
}

TEST_CASE("gather passes grad_check with repeated indices and non-contiguous input") {
    Generator g(4);
    const I64 idx = ids({0, 0, 2, 1, 0, 0, 2, 2, 1, 1, 1, 1}, {2, 3, 2});
    for (std::int64_t axis : {0, 1, 2}) {
        CAPTURE(axis);
        check_grads([&](const std::vector<Var<double>>& v) { return gather(v[0], axis, idx); },
                    {Var<double>(randn<double>({3, 3, 3}, g))});
    }
    check_grads([&](const std::vector<Var<double>>& v) { return gather(v[0], -1, idx); },
                {Var<double>(randn<double>({3, 3, 3}, g).permute({2, 1, 0}))});
}

TEST_CASE("gather checks ranks, extents and index values") {
    const Tensor<double> x = seq({2, 3});
    const std::string m = error_of([&] { ops::gather(x, 1, ids({0, 3}, {1, 2})); });
    CHECK(has(m, "gather"));
    CHECK(has(m, "index 3"));
    CHECK(has(m, "size 3"));
    CHECK(has(error_of([&] { ops::gather(x, 0, ids({-2}, {1, 1})); }), "negative"));
    CHECK_THROWS_WITH_AS(ops::gather(x, 1, ids({0, 1})), Contains("same rank"), Error);
    CHECK_THROWS_WITH_AS(ops::gather(x, 1, ids({0, 0, 0}, {3, 1})), Contains("[3, 1]"), Error);
}

TEST_CASE("scatter_add adds src at the indexed positions, out of place") {
    const Tensor<double> x = Tensor<double>::zeros({3, 5});
    const Tensor<double> src = Tensor<double>::ones({2, 5});
    const I64 idx = ids({0, 1, 2, 0, 0, 2, 0, 0, 1, 2}, {2, 5});
    const auto r = ops::scatter_add(x, 0, idx, src);
    CHECK(r.to_vector() == std::vector<double>{1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1});
    CHECK(x.to_vector() == std::vector<double>(15, 0.0));
    // along axis 1, repeated targets accumulate; src larger than idx is read only where idx covers it
    const Tensor<double> s2{{1, 2, 3}, {4, 5, 6}};
    const auto r2 = ops::scatter_add(Tensor<double>::ones({2, 2}), 1, ids({1, 1, 0, 1}, {2, 2}), s2);
    CHECK(r2.to_vector() == std::vector<double>{1, 1 + 1 + 2, 1 + 4, 1 + 5});
}

TEST_CASE("scatter_add matches a naive loop and is deterministic on a large threaded input") {
    Generator g(5);
    const Shape xs{7, 40, 300}, is{7, 50, 300}, ss{7, 51, 301};
    const Tensor<float> x = randn<float>(xs, g).permute({0, 1, 2});
    const Tensor<float> src = randn<float>({301, 51, 7}, g).permute({2, 1, 0});  // [7, 51, 301], non-contiguous
    REQUIRE(src.shape() == ss);
    std::vector<std::int64_t> iv(std::size_t(numel_of(is)));
    for (std::size_t k = 0; k < iv.size(); ++k) iv[k] = std::int64_t((k * 2654435761u) % 40);
    const I64 idx = ids(iv, is);
    const auto r = ops::scatter_add(x, 1, idx, src);
    // naive: row-major over idx positions, i.e. ascending along the axis for each target
    std::vector<float> want = x.to_vector();
    for (std::int64_t a = 0; a < is[0]; ++a)
        for (std::int64_t b = 0; b < is[1]; ++b)
            for (std::int64_t c = 0; c < is[2]; ++c) {
                const std::int64_t t = iv[std::size_t((a * is[1] + b) * is[2] + c)];
                want[std::size_t((a * xs[1] + t) * xs[2] + c)] += src.at({a, b, c});
            }
    CHECK(r.to_vector() == want);
}

TEST_CASE("scatter_add passes grad_check w.r.t. both x and src, src larger than idx") {
    Generator g(6);
    const I64 idx = ids({0, 2, 2, 1, 0, 0, 2, 2}, {2, 4});
    for (std::int64_t axis : {0, 1}) {
        CAPTURE(axis);
        const Shape xshape = axis == 0 ? Shape{3, 5} : Shape{2, 3};
        check_grads([&](const std::vector<Var<double>>& v) { return scatter_add(v[0], axis, idx, v[1]); },
                    {Var<double>(randn<double>(xshape, g)), Var<double>(randn<double>({5, 3}, g).t())});  // src [3, 5]
    }
    // The src gradient is zero outside idx's extent.
    auto x = leaf(Tensor<double>::zeros({3, 5}));
    auto s = leaf(Tensor<double>::ones({3, 5}));
    sum(scatter_add(x, 0, idx, s)).backward();
    const std::vector<double> gs = s.grad().to_vector();
    CHECK(gs == std::vector<double>{1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0});
    CHECK(x.grad().to_vector() == std::vector<double>(15, 1.0));
}

TEST_CASE("scatter_add rejects bad indices and shapes") {
    const Tensor<double> x = Tensor<double>::zeros({3, 5});
    const Tensor<double> src = Tensor<double>::ones({2, 5});
    const std::string m = error_of([&] { ops::scatter_add(x, 0, ids({0, 3}, {1, 2}), src); });
    CHECK(has(m, "scatter_add"));
    CHECK(has(m, "index 3"));
    CHECK(has(m, "size 3"));
    CHECK_THROWS_WITH_AS(ops::scatter_add(x, 0, ids({0, 0, 0}, {3, 1}), src), Contains("source"), Error);
    CHECK_THROWS_WITH_AS(ops::scatter_add(x, 0, ids({0, 0}), src), Contains("same rank"), Error);
}

// ============================================================================
// embedding
// ============================================================================

TEST_CASE("embedding looks up rows for indices of any shape") {
    const Tensor<double> w = seq({5, 3});
    const auto e = ops::embedding(w, ids({0, 4, 4, 2}, {2, 2}));
    CHECK(e.shape() == Shape{2, 2, 3});
    CHECK(e.to_vector() == std::vector<double>{0, 1, 2, 12, 13, 14, 12, 13, 14, 6, 7, 8});
    CHECK(ops::embedding(w, ids({3}, {})).to_vector() == std::vector<double>{9, 10, 11});
    CHECK(ops::embedding(w, ids({3}, {})).shape() == Shape{3});
    // a non-contiguous table
    const Tensor<double> wt = seq({3, 5}).t();  // [5, 3]
    CHECK(ops::embedding(wt, ids({1})).to_vector() == std::vector<double>{1, 6, 11});
}

TEST_CASE("embedding gradient sums repeated rows and skips padding_idx") {
    auto w = leaf(seq({4, 2}));
    auto e = embedding(w, ids({1, 3, 1, 0, 3}), 3);
    e.backward(seq({5, 2}, 1));  // rows [1 2] [3 4] [5 6] [7 8] [9 10]
    CHECK(w.grad().to_vector() == std::vector<double>{7, 8, 1 + 5, 2 + 6, 0, 0, 0, 0});

    Generator g(8);
    const I64 idx = ids({2, 0, 2, 5, 2, 1, 5, 0}, {2, 4});
    check_grads([&](const std::vector<Var<double>>& v) { return embedding(v[0], idx); },
                {Var<double>(randn<double>({6, 3}, g))});
    // With padding_idx among the indices: the padding row gets no gradient, so
    // the check masks out the outputs that read it (their true derivative is
    // then 0 too); the table is non-contiguous.
    const I64 pidx = ids({2, 0, 1, 2, 1, 0});
    const Tensor<double> mask = Tensor<double>{1, 1, 0, 1, 0, 1}.reshape({6, 1});
    check_grads([&](const std::vector<Var<double>>& v) { return embedding(v[0], pidx, 1) * Var<double>(mask); },
                {Var<double>(randn<double>({2, 3}, g).t())});
    auto w2 = leaf(seq({3, 2}));
    sum(embedding(w2, pidx, 1)).backward();
    CHECK(w2.grad().to_vector() == std::vector<double>{2, 2, 0, 0, 2, 2});
}

TEST_CASE("embedding backward is deterministic on a large threaded input") {
    const std::int64_t V = 101, D = 12, N = 9000;
    Generator g(9);
    const Tensor<float> grad = randn<float>({N / 3, 3, D}, g);
    std::vector<std::int64_t> iv(static_cast<std::size_t>(N));
    for (std::int64_t k = 0; k < N; ++k) iv[std::size_t(k)] = (k * k + 3 * k) % V;
    const I64 idx = ids(iv, {N / 3, 3});
    const auto r = ops::embedding_backward(grad, idx, V, 5);
    std::vector<float> want(std::size_t(V * D), 0.0f);
    const std::vector<float> gv = grad.to_vector();
    for (std::int64_t n = 0; n < N; ++n) {
        if (iv[std::size_t(n)] == 5) continue;
        for (std::int64_t d = 0; d < D; ++d) want[std::size_t(iv[std::size_t(n)] * D + d)] += gv[std::size_t(n * D + d)];
    }
    CHECK(r.shape() == Shape{V, D});
    CHECK(r.to_vector() == want);
    // forward: every row matches the table
    const Tensor<float> w = randn<float>({V, D}, g);
    const auto e = ops::embedding(w, idx);
    const std::vector<float> ev = e.to_vector(), wv = w.to_vector();
    bool same = true;
    for (std::int64_t n = 0; n < N; ++n)
        same = same && std::equal(ev.begin() + n * D, ev.begin() + (n + 1) * D, wv.begin() + iv[std::size_t(n)] * D);
    CHECK(same);
}

TEST_CASE("embedding rejects indices outside the table naming the index and the table size") {
    const Tensor<double> w = seq({5, 3});
    const std::string m = error_of([&] { ops::embedding(w, ids({1, 7})); });
    CHECK(has(m, "embedding"));
    CHECK(has(m, "index 7"));
    CHECK(has(m, "5 rows"));
    CHECK(has(error_of([&] { ops::embedding(w, ids({-1})); }), "negative"));
    CHECK_THROWS_WITH_AS(ops::embedding(w, ids({0}), 5), Contains("padding_idx 5"), Error);
    CHECK_THROWS_WITH_AS(ops::embedding(seq({5}), ids({0})), Contains("2-D"), Error);
}

// ============================================================================
// concat / stack / split / chunk
// ============================================================================

TEST_CASE("concat joins along any axis, including non-contiguous inputs") {
    const Tensor<double> a = seq({2, 3}), b = seq({2, 1}, 100), c = seq({2, 2}, 200);
    CHECK(ops::concat({a, b, c}, 1).to_vector() == std::vector<double>{0, 1, 2, 100, 200, 201, 3, 4, 5, 101, 202, 203});
    CHECK(ops::concat({a, seq({1, 3}, 50)}, 0).to_vector() == std::vector<double>{0, 1, 2, 3, 4, 5, 50, 51, 52});
    // 3-D, every axis, against at()
    const Tensor<double> p = seq({2, 3, 4}), q = seq({4, 3, 2}, 1000).permute({2, 1, 0});  // q non-contiguous
    for (int axis = 0; axis < 3; ++axis) {
        CAPTURE(axis);
        const auto r = ops::concat({p, q}, axis - 3);
        Shape want = p.shape();
        want[axis] = 2 * p.shape()[axis];
        REQUIRE(r.shape() == want);
        for (const auto& m : all_indices(r.shape())) {
            auto k = m;
            const std::int64_t n = p.shape()[axis];
            if (m[std::size_t(axis)] < n) {
                CHECK(r.at(m) == p.at(k));
            } else {
                k[std::size_t(axis)] -= n;
                CHECK(r.at(m) == q.at(k));
            }
        }
    }
    // an empty piece is allowed
    CHECK(ops::concat({a, Tensor<double>::empty({2, 0})}, 1).to_vector() == a.to_vector());
}

TEST_CASE("concat rejects mismatched shapes naming the op and both shapes") {
    const std::string m = error_of([] { ops::concat({seq({2, 3}), seq({3, 4})}, 1); });
    CHECK(has(m, "concat"));
    CHECK(has(m, "[2, 3]"));
    CHECK(has(m, "[3, 4]"));
    CHECK(has(error_of([] { ops::concat({seq({2, 3}), seq({6})}, 0); }), "[6]"));
    CHECK_THROWS_WITH_AS(ops::concat(std::vector<Tensor<double>>{}, 0), Contains("at least one"), Error);
    CHECK_THROWS_WITH_AS(ops::concat({seq({2, 3})}, 2), Contains("concat"), Error);
}

TEST_CASE("stack adds a new axis at any position") {
    const Tensor<double> a = seq({2, 3}), b = seq({2, 3}, 10);
    const auto s0 = ops::stack({a, b}, 0);
    CHECK(s0.shape() == Shape{2, 2, 3});
    CHECK(s0.to_vector() == std::vector<double>{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15});
    const auto s2 = ops::stack({a, b}, -1);
    CHECK(s2.shape() == Shape{2, 3, 2});
    CHECK(s2.to_vector() == std::vector<double>{0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15});
    const auto s1 = ops::stack({a, b.t().contiguous().t()}, 1);
    CHECK(s1.shape() == Shape{2, 2, 3});
    CHECK(s1.to_vector() == std::vector<double>{0, 1, 2, 10, 11, 12, 3, 4, 5, 13, 14, 15});
    const std::string m = error_of([] { ops::stack({seq({2, 3}), seq({3, 2})}, 0); });
    CHECK(has(m, "stack"));
    CHECK(has(m, "[2, 3]"));
    CHECK(has(m, "[3, 2]"));
}

TEST_CASE("concat and stack pass grad_check along several axes") {
    Generator g(10);
    for (std::int64_t axis : {0, 1, 2, -1}) {
        CAPTURE(axis);
        Shape sa{2, 3, 2}, sb{2, 3, 2};
        const int a = axis < 0 ? 2 : int(axis);
        sb[a] = 1;
        check_grads([&](const std::vector<Var<double>>& v) { return concat({v[0], v[1], v[2]}, axis); },
                    {Var<double>(randn<double>(sa, g)), Var<double>(randn<double>(sb, g)),
                     Var<double>(randn<double>({sa[2], sa[1], sa[0]}, g).permute({2, 1, 0}))});
    }
    for (std::int64_t axis : {0, 1, 2, -1}) {
        CAPTURE(axis);
        check_grads([&](const std::vector<Var<double>>& v) { return stack({v[0], v[1], v[2]}, axis); },
                    {Var<double>(randn<double>({2, 3}, g)), Var<double>(randn<double>({3, 2}, g).t()),
                     Var<double>(randn<double>({2, 3}, g))});
    }
    // Only inputs that require grad receive one.
    auto x = leaf(seq({2}));
    auto c = Var<double>(seq({3}), false);
    auto y = concat({c, x, c});
    y.backward(seq({8}, 1));
    CHECK(x.grad().to_vector() == std::vector<double>{4, 5});
    CHECK(!c.grad().defined());
}

TEST_CASE("split and chunk return views with torch sizes") {
    const Tensor<double> x = seq({7, 2});
    auto sizes = [](const std::vector<Tensor<double>>& v, int axis) {
        std::vector<std::int64_t> s;
        for (const auto& t : v) s.push_back(t.shape()[axis]);
        return s;
    };
    const auto s = ops::split(x, 3);
    CHECK(sizes(s, 0) == std::vector<std::int64_t>{3, 3, 1});
    CHECK(s[2].to_vector() == std::vector<double>{12, 13});
    CHECK(s[1].shares_storage_with(x));
    CHECK(sizes(ops::split(x, std::vector<std::int64_t>{2, 0, 5}, 0), 0) == std::vector<std::int64_t>{2, 0, 5});
    CHECK(sizes(ops::split(x, 1, 1), 1) == std::vector<std::int64_t>{1, 1});
    CHECK(ops::split(x, 1, -1)[1].to_vector() == std::vector<double>{1, 3, 5, 7, 9, 11, 13});
    CHECK(sizes(ops::chunk(x, 3), 0) == std::vector<std::int64_t>{3, 3, 1});
    CHECK(sizes(ops::chunk(seq({6}), 4), 0) == std::vector<std::int64_t>{2, 2, 2});  // fewer than 4 pieces
    CHECK(sizes(ops::chunk(seq({5}), 5), 0) == std::vector<std::int64_t>{1, 1, 1, 1, 1});
    CHECK(sizes(ops::chunk(seq({2}), 5), 0) == std::vector<std::int64_t>{1, 1});
    CHECK(sizes(ops::chunk(Tensor<double>::empty({0}), 3), 0) == std::vector<std::int64_t>{0, 0, 0});
    CHECK_THROWS_WITH_AS(ops::split(x, std::vector<std::int64_t>{3, 3}, 0), Contains("sum to 6"), Error);
    CHECK_THROWS_WITH_AS(ops::split(x, 0), Contains("split size"), Error);
    CHECK_THROWS_WITH_AS(ops::chunk(x, 0), Contains("chunk"), Error);
}

TEST_CASE("split and chunk pieces used in a loss pass grad_check") {
    Generator g(12);
    // chunk into equal pieces combined arithmetically; a transposed input
    check_grads(
        [](const std::vector<Var<double>>& v) {
            auto p = chunk(v[0], 3, 1);
            return p[0] * p[1] + p[2] * p[2];
        },
        {Var<double>(randn<double>({6, 4}, g).t())});
    // uneven split; the middle piece is unused and gets zero gradient
    check_grads(
        [](const std::vector<Var<double>>& v) {
            auto p = split(v[0], std::vector<std::int64_t>{2, 1, 3}, 0);
            return concat({p[2] * 2.0, p[0] * p[0]}, 0);
        },
        {Var<double>(randn<double>({6, 2}, g))});
    auto x = leaf(seq({5}));
    auto p = split(x, 2);
    REQUIRE(p.size() == 3);
    sum(p[0] * 3.0 + p[1]).backward();
    CHECK(x.grad().to_vector() == std::vector<double>{3, 3, 1, 1, 0});
}

// ============================================================================
// topk
// ============================================================================

TEST_CASE("topk selects the k best per row with ties to the lower index") {
    const Tensor<double> x{{1, 3, 2, 3}, {5, -1, 0, 5}};
    const auto big = ops::topk(x, 2);
    CHECK(big.values.to_vector() == std::vector<double>{3, 3, 5, 5});
    CHECK(big.indices.to_vector() == std::vector<std::int64_t>{1, 3, 0, 3});
    const auto small = ops::topk(x, 3, 1, false);
    CHECK(small.values.to_vector() == std::vector<double>{1, 2, 3, -1, 0, 5});
    CHECK(small.indices.to_vector() == std::vector<std::int64_t>{0, 2, 1, 1, 2, 0});
    const auto col = ops::topk(x, 1, 0);
    CHECK(col.values.shape() == Shape{1, 4});
    CHECK(col.values.to_vector() == std::vector<double>{5, 3, 2, 5});
    CHECK(col.indices.to_vector() == std::vector<std::int64_t>{1, 0, 0, 1});
    // unsorted: the same set, in ascending index order
    const auto uns = ops::topk(Tensor<double>{4, 9, 1, 7, 8}, 3, -1, true, false);
    CHECK(uns.indices.to_vector() == std::vector<std::int64_t>{1, 3, 4});
    CHECK(uns.values.to_vector() == std::vector<double>{9, 7, 8});
    // integers work too
    CHECK(ops::topk(Tensor<std::int64_t>{3, 1, 2}, 2).values.to_vector() == std::vector<std::int64_t>{3, 2});
}

TEST_CASE("topk treats NaN as the largest value") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto big = ops::topk(Tensor<double>{1, nan, 3}, 2);
    CHECK(big.indices.to_vector() == std::vector<std::int64_t>{1, 2});
    const auto small = ops::topk(Tensor<double>{1, nan, 3}, 3, 0, false);
    CHECK(small.indices.to_vector() == std::vector<std::int64_t>{0, 2, 1});
}

TEST_CASE("topk matches a stable sort along every axis of a non-contiguous input") {
    Generator g(13);
    // Values on a coarse grid so that ties occur.
    Tensor<double> x = Tensor<double>::empty({5, 6, 7});
    {
        const Tensor<double> r = rand<double>({5, 6, 7}, g);
        for (std::int64_t i = 0; i < r.numel(); ++i) x.data()[i] = std::floor(r.data()[i] * 4);
    }
    const Tensor<double> xp = x.permute({1, 2, 0});  // [6, 7, 5]
    for (int axis = 0; axis < 3; ++axis)
        for (bool largest : {true, false}) {
            CAPTURE(axis);
            CAPTURE(largest);
            const std::int64_t k = 3;
            const auto r = ops::topk(xp, k, axis, largest);
            Shape line_shape = xp.shape();
            line_shape[axis] = 1;
            for (auto m : all_indices(line_shape)) {
                std::vector<std::int64_t> order(std::size_t(xp.shape()[axis]));
                std::iota(order.begin(), order.end(), 0);
                auto val = [&](std::int64_t j) {
                    auto mm = m;
                    mm[std::size_t(axis)] = j;
                    return xp.at(mm);
                };
                std::stable_sort(order.begin(), order.end(), [&](std::int64_t p, std::int64_t q) {
                    return largest ? val(p) > val(q) : val(p) < val(q);
                });
                for (std::int64_t j = 0; j < k; ++j) {
                    auto mm = m;
                    mm[std::size_t(axis)] = j;
                    CHECK(r.indices.at(mm) == order[std::size_t(j)]);
                    CHECK(r.values.at(mm) == val(order[std::size_t(j)]));
                }
            }
        }
}

TEST_CASE("topk values pass grad_check and k larger than the axis throws") {
    Generator g(14);
    for (std::int64_t axis : {0, -1}) {
        CAPTURE(axis);
        check_grads([&](const std::vector<Var<double>>& v) { return topk(v[0], 2, axis).values; },
                    {Var<double>(randn<double>({4, 3}, g))});
        check_grads([&](const std::vector<Var<double>>& v) { return topk(v[0], 3, axis, false, false).values; },
                    {Var<double>(randn<double>({5, 4}, g).t())});
    }
    auto x = leaf(Tensor<double>{3, 1, 4, 1, 5});
    auto r = topk(x, 2);
    CHECK(r.indices.to_vector() == std::vector<std::int64_t>{4, 2});
    r.values.backward(Tensor<double>{10, 20});
    CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 20, 0, 10});

    const std::string m = error_of([] { ops::topk(seq({2, 4}), 5); });
    CHECK(has(m, "topk"));
    CHECK(has(m, "k = 5"));
    CHECK(has(m, "size 4"));
}

// ============================================================================
// differentiable views
// ============================================================================

TEST_CASE("view ops on Vars share storage with their input") {
    auto x = leaf(seq({2, 3, 4}));
    CHECK(reshape(x, {6, 4}).value().shares_storage_with(x.value()));
    CHECK(view(x, {4, -1}).value().shares_storage_with(x.value()));
    CHECK(permute(x, {2, 0, 1}).value().shares_storage_with(x.value()));
    CHECK(transpose(x, 0, 2).value().shares_storage_with(x.value()));
    CHECK(slice(x, 2, 1, 4, 2).value().shares_storage_with(x.value()));
    CHECK(narrow(x, 1, 1, 2).value().shares_storage_with(x.value()));
    CHECK(select(x, 0, -1).value().shares_storage_with(x.value()));
    CHECK(unsqueeze(x, 1).value().shares_storage_with(x.value()));
    CHECK(expand(unsqueeze(x, 0), {3, 2, 3, 4}).value().shares_storage_with(x.value()));
    CHECK(!clone(x).value().shares_storage_with(x.value()));
    CHECK(select(x, 0, -1).value().to_vector() == seq({3, 4}, 12).to_vector());
    CHECK(slice(x, 2, 1, 4, 2).value().shape() == Shape{2, 3, 2});
}

TEST_CASE("view op gradients map back by hand") {
    auto x = leaf(seq({2, 3}));
    permute(x, {1, 0}).backward(seq({3, 2}));  // g[j, i] -> dx[i, j]
    CHECK(x.grad().to_vector() == std::vector<double>{0, 2, 4, 1, 3, 5});
    x.zero_grad();
    slice(x, 1, 0, 3, 2).backward(Tensor<double>{{1, 2}, {3, 4}});
    CHECK(x.grad().to_vector() == std::vector<double>{1, 0, 2, 3, 0, 4});
    x.zero_grad();
    select(x, 1, -2).backward(Tensor<double>{7, 8});
    CHECK(x.grad().to_vector() == std::vector<double>{0, 7, 0, 0, 8, 0});
    x.zero_grad();
    auto b = leaf(Tensor<double>{1, 2}.reshape({2, 1}));
    expand(b, {4, 2, 3}).backward(Tensor<double>::ones({4, 2, 3}));
    CHECK(b.grad().to_vector() == std::vector<double>{12, 12});
}

TEST_CASE("each view op passes grad_check, including non-contiguous inputs") {
    Generator g(15);
    auto rn = [&](const Shape& s) { return randn<double>(s, g); };
    const Tensor<double> nc = rn({4, 3, 2}).permute({2, 1, 0});  // [2, 3, 4], non-contiguous
    REQUIRE(!nc.is_contiguous());
    struct Case {
        const char* name;
        VarFn f;
    };
    const std::vector<Case> cases{
        {"reshape", [](const std::vector<Var<double>>& v) { return reshape(v[0], {4, -1}); }},
        {"view", [](const std::vector<Var<double>>& v) { return view(v[0], {2, 12}); }},
        {"permute", [](const std::vector<Var<double>>& v) { return permute(v[0], {1, 2, 0}); }},
        {"transpose", [](const std::vector<Var<double>>& v) { return transpose(v[0], 0, -1); }},
        {"slice", [](const std::vector<Var<double>>& v) { return slice(v[0], 2, -3, 4, 2); }},
        {"narrow", [](const std::vector<Var<double>>& v) { return narrow(v[0], 1, 1, 2); }},
        {"select", [](const std::vector<Var<double>>& v) { return select(v[0], -1, 2); }},
        {"squeeze", [](const std::vector<Var<double>>& v) { return squeeze(unsqueeze(v[0], 1)); }},
        {"squeeze(axis)", [](const std::vector<Var<double>>& v) { return squeeze(unsqueeze(v[0], -1), -1); }},
        {"unsqueeze", [](const std::vector<Var<double>>& v) { return unsqueeze(v[0], 0) * 2.0; }},
        {"expand", [](const std::vector<Var<double>>& v) { return expand(narrow(v[0], 1, 0, 1), {3, 2, 4, 4}); }},
        {"flatten", [](const std::vector<Var<double>>& v) { return flatten(v[0], 1); }},
        {"contiguous", [](const std::vector<Var<double>>& v) { return contiguous(v[0]); }},
        {"clone", [](const std::vector<Var<double>>& v) { return clone(v[0]); }},
        {"chain", [](const std::vector<Var<double>>& v) {
             return flatten(transpose(slice(reshape(v[0], {6, 4}), 0, 1, 6, 2), 0, 1)) * flatten(select(v[0], 0, 1));
         }},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        check_grads(c.f, {Var<double>(rn({2, 3, 4}))});
        if (std::string(c.name) != "view") check_grads(c.f, {Var<double>(nc)});
    }
    // view of a non-contiguous input whose strides allow it: split a transposed axis
    check_grads([](const std::vector<Var<double>>& v) { return view(v[0], {3, 2, 2}); },
                {Var<double>(rn({4, 3}).t())});
}

TEST_CASE("view on a non-viewable Var throws like Tensor::view") {
    auto x = leaf(seq({2, 3}));
    CHECK_THROWS_WITH_AS(view(transpose(x, 0, 1), {6}), Contains("view"), Error);
    CHECK(reshape(transpose(x, 0, 1), {6}).value().to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
    CHECK_THROWS_WITH_AS(permute(x, {0, 0}), Contains("repeated"), Error);
}

// ============================================================================
// edge cases
// ============================================================================

TEST_CASE("indexing and joining work on integer tensors and scalars") {
    const I64 x = ids({5, 6, 7, 8, 9, 10}, {2, 3});
    CHECK(ops::index_select(x, 1, ids({2, 2})).to_vector() == std::vector<std::int64_t>{7, 7, 10, 10});
    CHECK(ops::gather(x, 0, ids({1, 0, 1}, {1, 3})).to_vector() == std::vector<std::int64_t>{8, 6, 10});
    CHECK(ops::scatter_add(x, 1, ids({0, 0}, {1, 2}), ids({1, 2}, {1, 2})).to_vector() ==
          std::vector<std::int64_t>{5 + 3, 6, 7, 8, 9, 10});
    CHECK(ops::concat({x, x}, 0).shape() == Shape{4, 3});
    CHECK(ops::embedding(x.t().contiguous(), ids({2})).to_vector() == std::vector<std::int64_t>{7, 10});
    // 0-d input and index
    const Tensor<double> s = Tensor<double>::full({}, 4.5);
    CHECK(ops::gather(s, 0, ids({0}, {})).item() == 4.5);
    CHECK(ops::scatter_add(s, -1, ids({0}, {}), Tensor<double>::full({}, 1.0)).item() == 5.5);
    CHECK_THROWS_WITH_AS(ops::gather(s, 0, ids({1}, {})), Contains("index 1"), Error);
    const auto t = ops::topk(s, 1);
    CHECK(t.values.dim() == 0);
    CHECK(t.indices.item() == 0);
}

TEST_CASE("empty index tensors give empty results and zero gradients") {
    auto x = leaf(seq({3, 2}));
    auto y = index_select(x, 0, ids({}));
    CHECK(y.shape() == Shape{0, 2});
    y.backward(Tensor<double>::empty({0, 2}));
    CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
    x.zero_grad();
    auto g = gather(x, 1, I64::empty({3, 0}));
    CHECK(g.shape() == Shape{3, 0});
    g.backward(Tensor<double>::empty({3, 0}));
    CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("large gathers and concatenations (threaded paths) match naive loops") {
    Generator g(16);
    const Tensor<float> x = randn<float>({1000}, g);
    std::vector<std::int64_t> iv(100000);
    for (std::size_t k = 0; k < iv.size(); ++k) iv[k] = std::int64_t((k * 7 + k / 3) % 1000);
    const auto r = ops::gather(x, 0, ids(iv));
    const auto s = ops::index_select(x, 0, ids(iv));
    const std::vector<float> xv = x.to_vector(), rv = r.to_vector(), sv = s.to_vector();
    bool ok = true;
    for (std::size_t k = 0; k < iv.size(); ++k) ok = ok && rv[k] == xv[std::size_t(iv[k])] && sv[k] == rv[k];
    CHECK(ok);
    // concat along axis 0 of a few big slabs, and along the last axis of many rows
    const Tensor<float> a = randn<float>({3, 40000}, g), b = randn<float>({2, 40000}, g);
    const auto c0 = ops::concat({a, b}, 0);
    std::vector<float> want = a.to_vector();
    const std::vector<float> bv = b.to_vector();
    want.insert(want.end(), bv.begin(), bv.end());
    CHECK(c0.to_vector() == want);
    const auto c1 = ops::concat({a.t(), b.t()}, 1);  // [40000, 5], non-contiguous inputs
    CHECK(c1.shape() == Shape{40000, 5});
    ok = true;
    for (std::int64_t i = 0; i < 40000; i += 997)
        for (std::int64_t j = 0; j < 5; ++j) ok = ok && c1.at({i, j}) == (j < 3 ? a.at({j, i}) : b.at({j - 3, i}));
    CHECK(ok);
}
