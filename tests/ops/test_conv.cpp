// Convolution and pooling kernels (ops/conv.hpp, ops/pool.hpp) and their
// autograd wrappers: forward values against naive direct loops written here,
// gradients with grad_check (double), thread-count independence of the
// backward, causality of the Causal depthwise convolution, and the error
// messages of bad input.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "polymath/autograd/conv.hpp"
#include "polymath/autograd/grad_check.hpp"
#include "polymath/autograd/pool.hpp"
#include "polymath/polymath.hpp"
#include "ops_test_util.hpp"

using namespace polymath;
using namespace polymath::test;
using doctest::Contains;

namespace {

struct ThreadCount {
    int prev;
    explicit ThreadCount(int n) : prev(num_threads()) { set_num_threads(n); }
    ~ThreadCount() { set_num_threads(prev); }
};

template <class T>
bool bit_equal(const Tensor<T>& a, const Tensor<T>& b) {
    if (a.shape() != b.shape()) return false;
    const std::vector<T> x = a.to_vector(), y = b.to_vector();
    return std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

// Direct convolution, PyTorch semantics, in double.
Tensor<double> naive_conv2d(const Tensor<double>& x, const Tensor<double>& w, const Tensor<double>& b, Int2 s, Int2 p,
                            Int2 d, std::int64_t groups) {
    const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const std::int64_t O = w.size(0), Cg = w.size(1), kh = w.size(2), kw = w.size(3), Og = O / groups;
    const std::int64_t Ho = (H + 2 * p.h - d.h * (kh - 1) - 1) / s.h + 1;
    const std::int64_t Wo = (W + 2 * p.w - d.w * (kw - 1) - 1) / s.w + 1;
    (void)C;
    Tensor<double> y = Tensor<double>::empty({N, O, Ho, Wo});
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t o = 0; o < O; ++o)
            for (std::int64_t i = 0; i < Ho; ++i)
                for (std::int64_t j = 0; j < Wo; ++j) {
                    double acc = b.defined() ? b.at({o}) : 0.0;
                    const std::int64_t grp = o / Og;
                    for (std::int64_t c = 0; c < Cg; ++c)
                        for (std::int64_t a = 0; a < kh; ++a)
                            for (std::int64_t e = 0; e < kw; ++e) {
                                const std::int64_t ih = i * s.h - p.h + a * d.h, iw = j * s.w - p.w + e * d.w;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc += w.at({o, c, a, e}) * x.at({n, grp * Cg + c, ih, iw});
                            }
                    y.at({n, o, i, j}) = acc;
                }
    return y;
}

// Channels-last depthwise: y[n,t,c] = b[c] + sum_k w[k,c] x[n, t + k d - pl, c], t < Lo.
Tensor<double> naive_depthwise(const Tensor<double>& x, const Tensor<double>& w, const Tensor<double>& b, std::int64_t d,
                               std::int64_t pl, std::int64_t Lo) {
    const std::int64_t N = x.size(0), L = x.size(1), C = x.size(2), K = w.size(0);
    Tensor<double> y = Tensor<double>::empty({N, Lo, C});
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t t = 0; t < Lo; ++t)
            for (std::int64_t c = 0; c < C; ++c) {
                double acc = b.defined() ? b.at({c}) : 0.0;
                for (std::int64_t k = 0; k < K; ++k) {
                    const std::int64_t s = t + k * d - pl;
                    if (s >= 0 && s < L) acc += w.at({k, c}) * x.at({n, s, c});
                }
                y.at({n, t, c}) = acc;
            }
    return y;
}

// Pools over [N, C, H, W], count_include_pad averages; max ignores padding.
Tensor<double> naive_pool2d(const Tensor<double>& x, Int2 k, Int2 s, Int2 p, bool is_max,
                            Tensor<std::int64_t>* idx = nullptr) {
    const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const std::int64_t Ho = (H + 2 * p.h - k.h) / s.h + 1, Wo = (W + 2 * p.w - k.w) / s.w + 1;
    Tensor<double> y = Tensor<double>::empty({N, C, Ho, Wo});
    if (idx) *idx = Tensor<std::int64_t>::empty({N, C, Ho, Wo});
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t i = 0; i < Ho; ++i)
                for (std::int64_t j = 0; j < Wo; ++j) {
                    double acc = is_max ? -INFINITY : 0.0;
                    std::int64_t best = -1;
                    for (std::int64_t a = 0; a < k.h; ++a)
                        for (std::int64_t e = 0; e < k.w; ++e) {
                            const std::int64_t ih = i * s.h - p.h + a, iw = j * s.w - p.w + e;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            const double v = x.at({n, c, ih, iw});
                            if (is_max) {
                                if (v > acc) {
                                    acc = v;
                                    best = ih * W + iw;
                                }
                            } else {
                                acc += v;
                            }
                        }
                    y.at({n, c, i, j}) = is_max ? acc : acc / double(k.h * k.w);
                    if (idx) idx->at({n, c, i, j}) = best;
                }
    return y;
}

Tensor<double> rnd(const Shape& s, std::uint64_t seed) { return uniform<double>(s, -1.0, 1.0, seed); }

struct ConvCase {
    std::int64_t N, C, H, W, O, kh, kw;
    Int2 stride, padding, dilation;
    std::int64_t groups;
    bool bias;
};

}  // namespace

// ---------------------------------------------------------------------------
// conv2d / conv1d
// ---------------------------------------------------------------------------

TEST_CASE("conv2d equals the direct convolution loop (stride, padding, dilation, groups, non-square, batch)") {
    const std::vector<ConvCase> cases = {
        {1, 3, 5, 5, 4, 3, 3, 1, 0, 1, 1, true},                // plain 3x3
        {2, 3, 7, 6, 5, 3, 3, 2, 1, 1, 1, true},                // stride 2, padding 1, batch 2
        {2, 2, 9, 9, 3, 3, 3, 1, 2, 2, 1, false},               // dilation 2
        {2, 4, 6, 5, 6, 3, 2, 1, 1, 1, 2, true},                // groups 2, non-square kernel
        {1, 4, 7, 9, 4, 2, 3, {2, 1}, {0, 1}, {1, 2}, 1, true}, // non-square stride / padding / dilation
        {3, 6, 4, 4, 6, 3, 3, 1, 1, 1, 6, true},                // depthwise (groups = C)
        {2, 5, 6, 7, 3, 1, 1, 1, 0, 1, 1, true},                // 1x1 direct path
        {2, 4, 6, 6, 8, 1, 1, 2, 0, 1, 2, false},               // 1x1 with stride (im2col path), groups
        {5, 8, 12, 12, 16, 3, 3, 1, 1, 1, 1, true},             // enough images to run in parallel
        {1, 16, 20, 20, 32, 3, 3, 1, 1, 1, 1, false},           // one image, a GEMM big enough to split
    };
    for (std::size_t ci = 0; ci < cases.size(); ++ci) {
        const ConvCase& c = cases[ci];
        CAPTURE(ci);
        const Tensor<double> x = rnd({c.N, c.C, c.H, c.W}, 10 + ci);
        const Tensor<double> w = rnd({c.O, c.C / c.groups, c.kh, c.kw}, 20 + ci);
        const Tensor<double> b = c.bias ? rnd({c.O}, 30 + ci) : Tensor<double>();
        const Tensor<double> want = naive_conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
        const Tensor<double> got = ops::conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
        REQUIRE(got.shape() == want.shape());
        CHECK_CLOSE(got, values(want), 1e-12, 1e-12);
        const Tensor<float> gotf = ops::conv2d(x.to<float>(), w.to<float>(), c.bias ? b.to<float>() : Tensor<float>(),
                                               c.stride, c.padding, c.dilation, c.groups);
        CHECK_CLOSE(gotf, values(want), 1e-4, 1e-4);
    }
}

TEST_CASE("conv2d reads non-contiguous inputs") {
    const Tensor<double> xt = rnd({2, 6, 5, 3}, 1).permute({0, 3, 2, 1});  // [2, 3, 5, 6], strided
    const Tensor<double> w = rnd({4, 3, 3, 3}, 2);
    CHECK_CLOSE(ops::conv2d(xt, w, {}, 1, 1), values(naive_conv2d(xt.contiguous(), w, {}, 1, 1, 1, 1)), 1e-12, 1e-12);
}

TEST_CASE("conv1d equals the direct loop on [N, C, L] (stride, padding, dilation, groups)") {
    struct C1 {
        std::int64_t N, C, L, O, k, s, p, d, g;
        bool bias;
    };
    for (const C1& c : std::vector<C1>{{2, 3, 11, 4, 3, 1, 1, 1, 1, true},
                                       {2, 4, 13, 6, 3, 2, 2, 2, 2, false},
                                       {1, 2, 5, 2, 5, 1, 2, 1, 1, true},
                                       {3, 6, 8, 6, 1, 1, 0, 1, 3, true}}) {
        const Tensor<double> x = rnd({c.N, c.C, c.L}, 3), w = rnd({c.O, c.C / c.g, c.k}, 4);
        const Tensor<double> b = c.bias ? rnd({c.O}, 5) : Tensor<double>();
        const Tensor<double> want = naive_conv2d(x.unsqueeze(2), w.unsqueeze(2), b, Int2(1, c.s), Int2(0, c.p),
                                                 Int2(1, c.d), c.g)
                                        .squeeze(2);
        const Tensor<double> got = ops::conv1d(x, w, b, c.s, c.p, c.d, c.g);
        REQUIRE(got.shape() == want.shape());
        CHECK_CLOSE(got, values(want), 1e-12, 1e-12);
    }
}

TEST_CASE("conv2d gradients pass grad_check (bias, stride, padding, dilation, groups)") {
    const std::vector<ConvCase> cases = {
        {2, 2, 5, 4, 3, 3, 2, 1, 1, 1, 1, true},
        {2, 4, 6, 5, 4, 3, 3, 2, 1, 1, 2, true},
        {1, 2, 7, 7, 2, 3, 3, {1, 2}, {2, 1}, 2, 1, false},
        {2, 3, 3, 4, 2, 1, 1, 1, 0, 1, 1, true},  // 1x1 direct path
    };
    for (std::size_t ci = 0; ci < cases.size(); ++ci) {
        const ConvCase& c = cases[ci];
        CAPTURE(ci);
        std::vector<Var<double>> in = {leaf(rnd({c.N, c.C, c.H, c.W}, 40 + ci)),
                                       leaf(rnd({c.O, c.C / c.groups, c.kh, c.kw}, 50 + ci))};
        if (c.bias) in.push_back(leaf(rnd({c.O}, 60 + ci)));
        check_grads(
            [&](const std::vector<Var<double>>& v) {
                return conv2d(v[0], v[1], c.bias ? v[2] : Var<double>(), c.stride, c.padding, c.dilation, c.groups);
            },
            in);
    }
}

TEST_CASE("conv1d gradients pass grad_check") {
    check_grads([](const std::vector<Var<double>>& v) { return conv1d(v[0], v[1], v[2], 2, 1, 2, 2); },
                {leaf(rnd({2, 4, 9}, 1)), leaf(rnd({4, 2, 3}, 2)), leaf(rnd({4}, 3))});
    check_grads([](const std::vector<Var<double>>& v) { return conv1d(v[0], v[1]); },
                {leaf(rnd({1, 3, 6}, 4)), leaf(rnd({2, 3, 2}, 5))});
}

TEST_CASE("conv2d backward is bit-identical for 1 and several threads") {
    const Tensor<float> x = uniform<float>({12, 8, 10, 10}, -1, 1, 1), w = uniform<float>({16, 4, 3, 3}, -1, 1, 2);
    const Tensor<float> y = ops::conv2d(x, w, {}, 1, 1, 1, 2);
    const Tensor<float> g = uniform<float>(y.shape(), -1, 1, 3);
    ops::ConvGrads<float> one, many;
    {
        ThreadCount tc(1);
        one = ops::conv2d_backward(g, x, w, 1, 1, 1, 2);
    }
    {
        ThreadCount tc(4);
        many = ops::conv2d_backward(g, x, w, 1, 1, 1, 2);
        CHECK(bit_equal(ops::conv2d(x, w, {}, 1, 1, 1, 2), y));
    }
    CHECK(bit_equal(one.dx, many.dx));
    CHECK(bit_equal(one.dw, many.dw));
    CHECK(bit_equal(one.db, many.db));
}

TEST_CASE("conv2d / conv1d reject bad shapes with messages naming the op and the shapes") {
    const Tensor<double> x = rnd({2, 4, 5, 5}, 1), w = rnd({6, 2, 3, 3}, 2);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, rnd({6, 3, 3, 3}, 3)), Contains("conv2d"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, rnd({6, 3, 3, 3}, 3)), Contains("[6, 3, 3, 3]"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, w, {}, 1, 0, 1, 3), Contains("divisible by groups 3"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, w, rnd({5}, 4), 1, 0, 1, 2), Contains("bias of shape [5]"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(rnd({2, 4, 5}, 1), w), Contains("conv2d"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, rnd({6, 4, 7, 7}, 5)), Contains("smaller than the dilated kernel"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, rnd({6, 4, 3, 3}, 5), {}, 0), Contains("stride must be >= 1"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(x, rnd({6, 4, 3, 3}, 5), {}, 1, -1), Contains("padding"), Error);
    CHECK_THROWS_WITH_AS(ops::conv1d(rnd({2, 4, 5}, 1), rnd({3, 3, 2}, 2)), Contains("conv1d"), Error);
    CHECK_THROWS_WITH_AS(ops::conv1d(rnd({2, 4, 5}, 1), rnd({3, 3, 2}, 2)), Contains("[2, 4, 5]"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d_backward(rnd({2, 6, 2, 2}, 1), x, rnd({6, 4, 3, 3}, 5)),
                         Contains("conv2d_backward: gradient of shape [2, 6, 2, 2]"), Error);
}

// ---------------------------------------------------------------------------
// depthwise_conv1d (channels-last)
// ---------------------------------------------------------------------------

TEST_CASE("depthwise_conv1d Same / Causal / Valid equal the direct loop (incl. dilation 8, kernel 15, short L)") {
    struct DC {
        std::int64_t N, L, C, K, d;
        bool bias;
    };
    for (const DC& c : std::vector<DC>{{2, 9, 5, 3, 1, true},
                                       {1, 20, 7, 4, 2, false},   // even kernel: Same pads floor(d(K-1)/2) left
                                       {2, 10, 3, 15, 8, true},   // receptive field far past the sequence
                                       {3, 33, 40, 5, 3, true},
                                       {2, 64, 256, 15, 8, true}}) {  // parallel row split
        CAPTURE(c.L);
        CAPTURE(c.K);
        const Tensor<double> x = rnd({c.N, c.L, c.C}, 7), w = rnd({c.K, c.C}, 8);
        const Tensor<double> b = c.bias ? rnd({c.C}, 9) : Tensor<double>();
        const std::int64_t span = c.d * (c.K - 1);
        CHECK_CLOSE(ops::depthwise_conv1d(x, w, b, c.d, PaddingMode::Same), values(naive_depthwise(x, w, b, c.d, span / 2, c.L)),
                    1e-12, 1e-12);
        CHECK_CLOSE(ops::depthwise_conv1d(x, w, b, c.d, PaddingMode::Causal), values(naive_depthwise(x, w, b, c.d, span, c.L)),
                    1e-12, 1e-12);
        if (c.L > span) {
            const Tensor<double> v = ops::depthwise_conv1d(x, w, b, c.d, PaddingMode::Valid);
            CHECK(v.shape() == (Shape{c.N, c.L - span, c.C}));
            CHECK_CLOSE(v, values(naive_depthwise(x, w, b, c.d, 0, c.L - span)), 1e-12, 1e-12);
        }
        const Tensor<float> f = ops::depthwise_conv1d(x.to<float>(), w.to<float>(), c.bias ? b.to<float>() : Tensor<float>(),
                                                      c.d, PaddingMode::Causal);
        CHECK_CLOSE(f, values(naive_depthwise(x, w, b, c.d, span, c.L)), 1e-5, 1e-5);
    }
}

TEST_CASE("depthwise_conv1d Same with an odd kernel is centred (TensorFlow SAME): a delta kernel is the identity") {
    const Tensor<double> x = rnd({1, 6, 2}, 1);
    Tensor<double> w = Tensor<double>::zeros({5, 2});
    w.at({2, 0}) = 1;  // centre tap
    w.at({2, 1}) = 1;
    CHECK_CLOSE(ops::depthwise_conv1d(x, w, {}, 3, PaddingMode::Same), values(x), 0, 0);
    // Causal: the last tap is "now", so a delta there is the identity too.
    Tensor<double> wc = Tensor<double>::zeros({5, 2});
    wc.at({4, 0}) = 1;
    wc.at({4, 1}) = 1;
    CHECK_CLOSE(ops::depthwise_conv1d(x, wc, {}, 3, PaddingMode::Causal), values(x), 0, 0);
}

TEST_CASE("depthwise_conv1d Causal: changing x after t0 never changes y up to t0") {
    const std::int64_t L = 24;
    const Tensor<double> x = rnd({2, L, 6}, 11), w = rnd({15, 6}, 12), b = rnd({6}, 13);
    const Tensor<double> y = ops::depthwise_conv1d(x, w, b, 8, PaddingMode::Causal);
    for (std::int64_t t0 : {0, 5, 17, 22}) {
        Tensor<double> x2 = x.clone();
        x2.slice(1, t0 + 1, L).copy_(rnd({2, L - t0 - 1, 6}, 100 + std::uint64_t(t0)));
        const Tensor<double> y2 = ops::depthwise_conv1d(x2, w, b, 8, PaddingMode::Causal);
        CHECK(bit_equal(y.slice(1, 0, t0 + 1).contiguous(), y2.slice(1, 0, t0 + 1).contiguous()));
        CHECK_FALSE(bit_equal(y.slice(1, t0 + 1, L).contiguous(), y2.slice(1, t0 + 1, L).contiguous()));
    }
}

TEST_CASE("depthwise_conv1d gradients pass grad_check (Same, Causal, Valid, bias, dilation)") {
    for (PaddingMode m : {PaddingMode::Same, PaddingMode::Causal, PaddingMode::Valid}) {
        CAPTURE(m);
        check_grads([m](const std::vector<Var<double>>& v) { return depthwise_conv1d(v[0], v[1], v[2], 2, m); },
                    {leaf(rnd({2, 9, 3}, 1)), leaf(rnd({3, 3}, 2)), leaf(rnd({3}, 3))});
        check_grads([m](const std::vector<Var<double>>& v) { return depthwise_conv1d(v[0], v[1], Var<double>(), 1, m); },
                    {leaf(rnd({1, 6, 4}, 4)), leaf(rnd({4, 4}, 5))});
    }
    // Kernel 15 at dilation 8 on a short sequence: most taps read padding.
    check_grads([](const std::vector<Var<double>>& v) { return depthwise_conv1d(v[0], v[1], v[2], 8, PaddingMode::Same); },
                {leaf(rnd({1, 10, 2}, 6)), leaf(rnd({15, 2}, 7)), leaf(rnd({2}, 8))});
}

TEST_CASE("depthwise_conv1d backward is bit-identical for 1 and several threads") {
    const Tensor<float> x = uniform<float>({8, 128, 64}, -1, 1, 1), w = uniform<float>({15, 64}, -1, 1, 2);
    const Tensor<float> g = uniform<float>({8, 128, 64}, -1, 1, 3);
    ops::ConvGrads<float> one, many;
    {
        ThreadCount tc(1);
        one = ops::depthwise_conv1d_backward(g, x, w, 8, PaddingMode::Causal);
    }
    {
        ThreadCount tc(4);
        many = ops::depthwise_conv1d_backward(g, x, w, 8, PaddingMode::Causal);
    }
    CHECK(bit_equal(one.dx, many.dx));
    CHECK(bit_equal(one.dw, many.dw));
    CHECK(bit_equal(one.db, many.db));
}

TEST_CASE("depthwise_conv1d rejects bad shapes with messages naming the op and the shapes") {
    const Tensor<double> x = rnd({2, 8, 4}, 1);
    CHECK_THROWS_WITH_AS(ops::depthwise_conv1d(x, rnd({3, 5}, 2)), Contains("depthwise_conv1d"), Error);
    CHECK_THROWS_WITH_AS(ops::depthwise_conv1d(x, rnd({3, 5}, 2)), Contains("[3, 5]"), Error);
    CHECK_THROWS_WITH_AS(ops::depthwise_conv1d(x, rnd({3, 4, 1}, 2)), Contains("expects input [N, L, C] and weight [K, C]"),
                         Error);
    CHECK_THROWS_WITH_AS(ops::depthwise_conv1d(x, rnd({3, 4}, 2), rnd({3}, 3)), Contains("bias of shape [3]"), Error);
    CHECK_THROWS_WITH_AS(ops::depthwise_conv1d(x, rnd({3, 4}, 2), {}, 0), Contains("dilation must be >= 1"), Error);
    CHECK_THROWS_WITH_AS(ops::depthwise_conv1d(x, rnd({5, 4}, 2), {}, 2, PaddingMode::Valid), Contains("shorter"), Error);
}

// ---------------------------------------------------------------------------
// pooling
// ---------------------------------------------------------------------------

TEST_CASE("max_pool2d / avg_pool2d equal naive loops (stride defaults to kernel, padding, non-square)") {
    const Tensor<double> x = rnd({2, 3, 7, 8}, 1);
    struct PC {
        Int2 k, s, p;
    };
    for (const PC& c : std::vector<PC>{{2, 0, 0}, {3, 2, 1}, {{3, 2}, {1, 2}, {1, 0}}, {{2, 4}, 1, {1, 2}}}) {
        const Int2 s = c.s == Int2(0) ? c.k : c.s;
        Tensor<std::int64_t> want_idx;
        const Tensor<double> want_max = naive_pool2d(x, c.k, s, c.p, true, &want_idx);
        const ops::MaxPoolResult<double> got = ops::max_pool2d(x, c.k, c.s, c.p);
        REQUIRE(got.values.shape() == want_max.shape());
        CHECK_CLOSE(got.values, values(want_max), 0, 0);
        CHECK(got.indices.to_vector() == want_idx.to_vector());
        CHECK_CLOSE(ops::avg_pool2d(x, c.k, c.s, c.p), values(naive_pool2d(x, c.k, s, c.p, false)), 1e-14, 1e-14);
        CHECK_CLOSE(ops::avg_pool2d(x.to<float>(), c.k, c.s, c.p), values(naive_pool2d(x, c.k, s, c.p, false)), 1e-6, 1e-6);
    }
}

TEST_CASE("avg_pool2d counts padding in the divisor (count_include_pad = true)") {
    const Tensor<double> x = Tensor<double>::ones({1, 1, 2, 2});
    // 3x3 windows, stride 1, padding 1: each window covers the 4 ones and 5 zeros.
    CHECK_CLOSE(ops::avg_pool2d(x, 3, 1, 1), std::vector<double>(4, 4.0 / 9.0), 1e-15, 0);
    CHECK_CLOSE(ops::avg_pool1d(Tensor<double>::ones({1, 1, 3}), 2, 1, 1), (std::vector<double>{0.5, 1, 1, 0.5}), 1e-15, 0);
}

TEST_CASE("max_pool propagates NaN like PyTorch") {
    Tensor<double> x = Tensor<double>::from_vector({1, std::nan(""), 3, 2}, {1, 1, 4});
    const ops::MaxPoolResult<double> r = ops::max_pool1d(x, 2);
    CHECK(std::isnan(r.values.at({0, 0, 0})));
    CHECK(r.indices.at({0, 0, 0}) == 1);
    CHECK(r.values.at({0, 0, 1}) == 3);
}

TEST_CASE("max_pool1d / avg_pool1d equal naive loops on [N, C, L]") {
    const Tensor<double> x = rnd({2, 3, 11}, 2);
    for (auto [k, s, p] : std::vector<std::array<std::int64_t, 3>>{{2, 0, 0}, {3, 2, 1}, {4, 1, 2}, {5, 3, 0}}) {
        const Int2 s2(1, s == 0 ? k : s);
        Tensor<std::int64_t> idx;
        const Tensor<double> want = naive_pool2d(x.unsqueeze(2), Int2(1, k), s2, Int2(0, p), true, &idx).squeeze(2);
        const ops::MaxPoolResult<double> got = ops::max_pool1d(x, k, s, p);
        REQUIRE(got.values.shape() == want.shape());
        CHECK_CLOSE(got.values, values(want), 0, 0);
        CHECK(got.indices.to_vector() == idx.to_vector());
        CHECK_CLOSE(ops::avg_pool1d(x, k, s, p),
                    values(naive_pool2d(x.unsqueeze(2), Int2(1, k), s2, Int2(0, p), false).squeeze(2)), 1e-14, 1e-14);
    }
}

TEST_CASE("global_avg_pool is the mean over every spatial dim") {
    const Tensor<double> x = rnd({2, 3, 4, 5}, 3);
    std::vector<double> want;
    for (std::int64_t n = 0; n < 2; ++n)
        for (std::int64_t c = 0; c < 3; ++c) {
            double acc = 0;
            for (std::int64_t i = 0; i < 4; ++i)
                for (std::int64_t j = 0; j < 5; ++j) acc += x.at({n, c, i, j});
            want.push_back(acc / 20);
        }
    const Tensor<double> y = ops::global_avg_pool(x);
    CHECK(y.shape() == (Shape{2, 3}));
    CHECK_CLOSE(y, want, 1e-14, 1e-14);
    CHECK_CLOSE(ops::global_avg_pool(rnd({2, 3, 7}, 4)), values(ops::mean(rnd({2, 3, 7}, 4), {2})), 1e-14, 1e-14);
}

TEST_CASE("max_pool1d_channels_last: TensorFlow SAME windows over the length axis") {
    // L = 4, k = 3, s = 2: Lo = 2, total pad max(2 + 3 - 4, 0) = 1, all of it on the right:
    // windows [0, 3) and [2, 4).
    const Tensor<double> x = Tensor<double>::from_vector({1, 8, 5, 2, 3, 4, 0, 9}, {1, 4, 2});
    const ops::MaxPoolResult<double> r = ops::max_pool1d_channels_last(x, 3, 2);
    CHECK(r.values.shape() == (Shape{1, 2, 2}));
    CHECK_CLOSE(r.values, (std::vector<double>{5, 8, 3, 9}), 0, 0);
    CHECK(r.indices.to_vector() == std::vector<std::int64_t>{1, 0, 2, 3});
    // Against a loop: L = 7 (pad 1 left, 1 right), L = 8 (pad 0 left, 1 right), and Valid.
    for (std::int64_t L : {7, 8, 13}) {
        const Tensor<double> xs = rnd({2, L, 5}, std::uint64_t(L));
        for (PaddingMode m : {PaddingMode::Same, PaddingMode::Valid}) {
            const std::int64_t k = 3, s = 2;
            const std::int64_t Lo = m == PaddingMode::Same ? (L + s - 1) / s : (L - k) / s + 1;
            const std::int64_t pl = m == PaddingMode::Same ? std::max<std::int64_t>((Lo - 1) * s + k - L, 0) / 2 : 0;
            std::vector<double> want;
            for (std::int64_t n = 0; n < 2; ++n)
                for (std::int64_t t = 0; t < Lo; ++t)
                    for (std::int64_t c = 0; c < 5; ++c) {
                        double best = -INFINITY;
                        for (std::int64_t j = 0; j < k; ++j) {
                            const std::int64_t i = t * s - pl + j;
                            if (i >= 0 && i < L) best = std::max(best, xs.at({n, i, c}));
                        }
                        want.push_back(best);
                    }
            const ops::MaxPoolResult<double> got = ops::max_pool1d_channels_last(xs, k, s, m);
            CHECK(got.values.shape() == (Shape{2, Lo, 5}));
            CHECK_CLOSE(got.values, want, 0, 0);
        }
    }
}

TEST_CASE("pooling gradients pass grad_check") {
    const GradCheckOptions opt{};
    check_grads([](const std::vector<Var<double>>& v) { return max_pool2d(v[0], 3, 2, 1); }, {leaf(rnd({2, 2, 5, 6}, 1))}, opt);
    check_grads([](const std::vector<Var<double>>& v) { return max_pool2d(v[0], {2, 3}); }, {leaf(rnd({1, 2, 4, 6}, 2))});
    check_grads([](const std::vector<Var<double>>& v) { return avg_pool2d(v[0], 3, 2, 1); }, {leaf(rnd({2, 2, 5, 6}, 3))});
    check_grads([](const std::vector<Var<double>>& v) { return max_pool1d(v[0], 3, 1, 1); }, {leaf(rnd({2, 3, 7}, 4))});
    check_grads([](const std::vector<Var<double>>& v) { return avg_pool1d(v[0], 2, 1, 1); }, {leaf(rnd({2, 3, 7}, 5))});
    check_grads([](const std::vector<Var<double>>& v) { return global_avg_pool(v[0]); }, {leaf(rnd({2, 3, 2, 3}, 6))});
    check_grads([](const std::vector<Var<double>>& v) { return global_avg_pool(v[0]); }, {leaf(rnd({2, 3, 5}, 7))});
    for (PaddingMode m : {PaddingMode::Same, PaddingMode::Valid})
        check_grads([m](const std::vector<Var<double>>& v) { return max_pool1d_channels_last(v[0], 3, 2, m); },
                    {leaf(rnd({2, 9, 4}, 8))});
}

TEST_CASE("pooling rejects bad input with messages naming the op and the shapes") {
    CHECK_THROWS_WITH_AS(ops::max_pool2d(rnd({2, 3, 4}, 1), 2), Contains("max_pool2d"), Error);
    CHECK_THROWS_WITH_AS(ops::max_pool2d(rnd({2, 3, 4}, 1), 2), Contains("[2, 3, 4]"), Error);
    CHECK_THROWS_WITH_AS(ops::avg_pool2d(rnd({1, 1, 4, 4}, 1), 2, 2, 2), Contains("avg_pool2d: padding"), Error);
    CHECK_THROWS_WITH_AS(ops::avg_pool2d(rnd({1, 1, 2, 2}, 1), 3), Contains("[1, 1, 2, 2] is smaller than the kernel"), Error);
    CHECK_THROWS_WITH_AS(ops::max_pool1d(rnd({1, 4}, 1), 2), Contains("max_pool1d: expects input [N, C, L], got shape [1, 4]"),
                         Error);
    CHECK_THROWS_WITH_AS(ops::avg_pool1d(rnd({1, 2, 4}, 1), 0), Contains("avg_pool1d: kernel must be >= 1"), Error);
    CHECK_THROWS_WITH_AS(ops::global_avg_pool(rnd({2, 3}, 1)), Contains("global_avg_pool"), Error);
    CHECK_THROWS_WITH_AS(ops::max_pool1d_channels_last(rnd({2, 3}, 1), 3, 2), Contains("max_pool1d_channels_last"), Error);
    CHECK_THROWS_WITH_AS(ops::max_pool1d_channels_last(rnd({1, 2, 3}, 1), 3, 2, PaddingMode::Valid), Contains("[1, 2, 3]"),
                         Error);
    CHECK_THROWS_WITH_AS(ops::max_pool1d_channels_last(rnd({1, 5, 3}, 1), 3, 2, PaddingMode::Causal), Contains("Causal"),
                         Error);
}
