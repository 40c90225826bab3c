// Fused attention on CUDA (ops/cuda/attention.cuh) against the CPU op
// (ops/attention.hpp, through attention_ref.cpp): forward output and all three
// gradients, for lengths that are not multiples of the tiles, Lq != Lk,
// causal and not, key padding (with a batch entry whose keys are all padded),
// head dims 1..128 (odd ones, dk != dv), several heads and batches, strided
// q/k/v, float / double / bf16 / half.
//
// Tolerances, as |gpu - cpu| <= atol + rtol |cpu| elementwise:
//   float   out 1e-4 / 1e-5, gradients 1e-4 / 1e-4
//   double  out 1e-10 / 1e-12, gradients 1e-10 / 1e-11
//   half    1e-2 / 1e-2 (inputs are half-rounded on both sides; the GPU
//           stores out and the gradients in half, and Δ = rowsum(dO ⊙ O)
//           uses the half-rounded O)
//   bf16    3e-2 / 3e-2 (same, 8-bit mantissa)
#include <polymath/cuda.hpp>
#include <polymath/ops/cuda/attention.cuh>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attention_ref.hpp"
#include "cuda_test_util.hpp"

using namespace polymath;
// (write polymath::half: plain `half` is ambiguous with CUDA's)

namespace {

struct AttnCase {
    std::int64_t B = 2, H = 2, Lq = 17, Lk = 17, dk = 16, dv = 16;
    bool causal = false;
    int mask = 0;  // 0: none; 1: some keys padded; 2: as 1, and batch entry 0 has every key padded
    double scale = 0;
    bool fused_qkv = false;  // q, k, v are narrow()s of one [B, L, H*(2dk+dv)] tensor (needs Lq == Lk)
};

std::string describe(const AttnCase& c) {
    std::ostringstream s;
    s << "B=" << c.B << " H=" << c.H << " Lq=" << c.Lq << " Lk=" << c.Lk << " dk=" << c.dk << " dv=" << c.dv
      << " causal=" << c.causal << " mask=" << c.mask << " scale=" << c.scale << " fused_qkv=" << c.fused_qkv;
    return s.str();
}

template <class T>
struct Tol;
template <>
struct Tol<float> {
    static constexpr double out_r = 1e-4, out_a = 1e-5, grad_r = 1e-4, grad_a = 1e-4;
};
template <>
struct Tol<double> {
    static constexpr double out_r = 1e-10, out_a = 1e-12, grad_r = 1e-10, grad_a = 1e-11;
};
template <>
struct Tol<polymath::half> {
    static constexpr double out_r = 1e-2, out_a = 1e-2, grad_r = 1e-2, grad_a = 1e-2;
};
template <>
struct Tol<bfloat16> {
    static constexpr double out_r = 3e-2, out_a = 3e-2, grad_r = 3e-2, grad_a = 3e-2;
};

// The reference computes in double for double, else in float (on the
// T-rounded inputs).
template <class T>
using ref_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Odd batch entries: the last third of the keys padded; even ones: a
// scattered pattern; kind 2: entry 0 fully padded.
Tensor<std::uint8_t, Cpu> make_mask(std::int64_t B, std::int64_t Lk, int kind) {
    Tensor<std::uint8_t, Cpu> m = Tensor<std::uint8_t, Cpu>::zeros({B, Lk});
    for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t j = 0; j < Lk; ++j) {
            bool pad = (b % 2 == 1) ? (j > 0 && j >= Lk - Lk / 3) : ((j * 7 + b * 3) % 5 == 4);
            if (kind == 2 && b == 0) pad = true;
            m.data()[b * Lk + j] = pad ? 1 : 0;
        }
    return m;
}

template <class T>
Tensor<ref_t<T>, Cpu> host(const Tensor<T, Cuda>& t) {
    return t.template to<Cpu>().template to<ref_t<T>>();
}

template <class T>
struct CaseResult {
    ops::AttentionForwardCuda<T> f;
    ops::AttentionGradsCuda<T> g;
    test::AttentionRef<ref_t<T>> ref;
};

// Runs one case on both devices and checks out, dq, dk, dv.
template <class T>
CaseResult<T> check_case(const AttnCase& c, std::uint64_t seed) {
    using R = ref_t<T>;
    INFO(describe(c));
    Generator gen(seed);
    auto draw = [&](const Shape& s) { return Tensor<float, Cpu>::randn(s, gen).template to<T>(); };
    const std::int64_t B = c.B, H = c.H;
    Tensor<T, Cpu> q, k, v;
    Tensor<T, Cuda> qd, kd, vd;
    if (c.fused_qkv) {
        REQUIRE(c.Lq == c.Lk);
        const Tensor<T, Cpu> qkv = draw({B, c.Lq, H * (2 * c.dk + c.dv)});
        q = qkv.narrow(2, 0, H * c.dk).contiguous();
        k = qkv.narrow(2, H * c.dk, H * c.dk).contiguous();
        v = qkv.narrow(2, 2 * H * c.dk, H * c.dv).contiguous();
        const Tensor<T, Cuda> qkvd = qkv.template to<Cuda>();
        qd = qkvd.narrow(2, 0, H * c.dk);
        kd = qkvd.narrow(2, H * c.dk, H * c.dk);
        vd = qkvd.narrow(2, 2 * H * c.dk, H * c.dv);
    } else {
        q = draw({B, c.Lq, H * c.dk});
        k = draw({B, c.Lk, H * c.dk});
        v = draw({B, c.Lk, H * c.dv});
        qd = q.template to<Cuda>();
        kd = k.template to<Cuda>();
        vd = v.template to<Cuda>();
    }
    const Tensor<T, Cpu> go = draw({B, c.Lq, H * c.dv});
    const Tensor<std::uint8_t, Cpu> mask = c.mask ? make_mask(B, c.Lk, c.mask) : Tensor<std::uint8_t, Cpu>();
    const Tensor<std::uint8_t, Cuda> maskd = c.mask ? mask.template to<Cuda>() : Tensor<std::uint8_t, Cuda>();

    CaseResult<T> r;
    r.ref = test::attention_ref(q.template to<R>(), k.template to<R>(), v.template to<R>(), mask,
                                go.template to<R>(), H, c.causal, c.scale);
    const ops::AttentionOptionsCuda opt{.num_heads = H, .causal = c.causal, .scale = c.scale};
    r.f = ops::attention_forward(qd, kd, vd, maskd, opt);
    r.g = ops::attention_backward(go.template to<Cuda>(), qd, kd, vd, r.f, opt);

    REQUIRE(r.f.out.shape() == (Shape{B, c.Lq, H * c.dv}));
    REQUIRE(r.f.lse.shape() == (Shape{B, H, c.Lq}));
    REQUIRE(r.g.dq.shape() == q.shape());
    REQUIRE(r.g.dk.shape() == k.shape());
    REQUIRE(r.g.dv.shape() == v.shape());
    {
        INFO("out");
        POLYMATH_CHECK_CLOSE(host(r.f.out), r.ref.out, Tol<T>::out_r, Tol<T>::out_a);
    }
    {
        INFO("dq");
        POLYMATH_CHECK_CLOSE(host(r.g.dq), r.ref.dq, Tol<T>::grad_r, Tol<T>::grad_a);
    }
    {
        INFO("dk");
        POLYMATH_CHECK_CLOSE(host(r.g.dk), r.ref.dk, Tol<T>::grad_r, Tol<T>::grad_a);
    }
    {
        INFO("dv");
        POLYMATH_CHECK_CLOSE(host(r.g.dv), r.ref.dv, Tol<T>::grad_r, Tol<T>::grad_a);
    }
    return r;
}

}  // namespace

TEST_CASE_TEMPLATE("attention matches the CPU forward and backward for lengths 1, 17, 65, 130, causal or not", T,
                   float, double) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 100;
    for (std::int64_t L : {1, 17, 65, 130})
        for (bool causal : {false, true}) {
            AttnCase c;
            c.Lq = c.Lk = L;
            c.dk = c.dv = 32;
            c.causal = causal;
            (void)check_case<T>(c, ++seed);
        }
}

TEST_CASE_TEMPLATE("attention with Lq != Lk (encoder-decoder), key padding, causal or not, matches the CPU", T,
                   float, double) {
    POLYMATH_REQUIRE_GPU();
    // Causal with Lq > Lk leaves the first Lq - Lk queries with no visible key.
    const std::vector<std::pair<std::int64_t, std::int64_t>> lens = {{17, 65}, {65, 17}, {1, 130},
                                                                     {130, 1}, {64, 129}, {33, 64}};
    std::uint64_t seed = 200;
    for (const auto& [Lq, Lk] : lens)
        for (bool causal : {false, true}) {
            AttnCase c;
            c.Lq = Lq;
            c.Lk = Lk;
            c.dk = c.dv = 24;
            c.causal = causal;
            c.mask = 1;
            (void)check_case<T>(c, ++seed);
        }
}

TEST_CASE_TEMPLATE("a batch entry whose keys are all padded gets zero output and zero gradients, lse +inf", T, float,
                   double) {
    POLYMATH_REQUIRE_GPU();
    std::uint64_t seed = 300;
    for (bool causal : {false, true}) {
        AttnCase c;
        c.B = 3;
        c.H = 2;
        c.Lq = 20;
        c.Lk = 33;
        c.dk = c.dv = 16;
        c.causal = causal;
        c.mask = 2;
        const CaseResult<T> r = check_case<T>(c, ++seed);
        const auto out = r.f.out.to_vector(), dq = r.g.dq.to_vector();
        const auto lse = r.f.lse.to_vector();
        const std::int64_t per_b_out = c.Lq * c.H * c.dv, per_b_q = c.Lq * c.H * c.dk, per_b_lse = c.H * c.Lq;
        for (std::int64_t i = 0; i < per_b_out; ++i) CHECK(double(out[std::size_t(i)]) == 0.0);
        for (std::int64_t i = 0; i < per_b_q; ++i) CHECK(double(dq[std::size_t(i)]) == 0.0);
        for (std::int64_t i = 0; i < per_b_lse; ++i) CHECK(std::isinf(double(lse[std::size_t(i)])));
        // Batch entries 1, 2 keep some keys; causal with Lk > Lq leaves every query one.
        for (std::size_t i = std::size_t(per_b_lse); i < lse.size(); ++i) CHECK(std::isfinite(double(lse[i])));
        // Keys of batch entry 0 get no gradient.
        const auto dk = r.g.dk.to_vector(), dv = r.g.dv.to_vector();
        for (std::int64_t i = 0; i < c.Lk * c.H * c.dk; ++i) CHECK(double(dk[std::size_t(i)]) == 0.0);
        for (std::int64_t i = 0; i < c.Lk * c.H * c.dv; ++i) CHECK(double(dv[std::size_t(i)]) == 0.0);
    }
}

TEST_CASE_TEMPLATE("attention head dims 8, 64, 128, odd ones and dk != dv match the CPU", T, float, double) {
    POLYMATH_REQUIRE_GPU();
    const std::vector<std::pair<std::int64_t, std::int64_t>> dims = {{8, 8},   {64, 64}, {128, 128}, {13, 13},
                                                                     {24, 40}, {128, 7}, {1, 1},     {33, 65}};
    std::uint64_t seed = 400;
    bool causal = false;
    for (const auto& [dk, dv] : dims) {
        AttnCase c;
        c.B = 1;
        c.H = 3;
        c.Lq = 37;
        c.Lk = 45;
        c.dk = dk;
        c.dv = dv;
        c.causal = causal;
        c.mask = 1;
        causal = !causal;
        (void)check_case<T>(c, ++seed);
    }
}

TEST_CASE_TEMPLATE("attention with many heads and batches, a custom scale, and q/k/v as narrow()s of a fused QKV", T,
                   float, double) {
    POLYMATH_REQUIRE_GPU();
    AttnCase c;
    c.B = 3;
    c.H = 5;
    c.Lq = c.Lk = 50;
    c.dk = c.dv = 16;
    c.fused_qkv = true;
    c.scale = 0.3;
    c.causal = true;
    (void)check_case<T>(c, 501);
    c.causal = false;
    c.mask = 1;
    c.dv = 40;
    (void)check_case<T>(c, 502);
}

TEST_CASE_TEMPLATE("attention in bf16 / half storage (float compute) matches the CPU float op loosely", T, bfloat16,
                   polymath::half) {
    POLYMATH_REQUIRE_GPU();
    AttnCase a;  // causal self-attention, a tile and a bit
    a.Lq = a.Lk = 65;
    a.dk = a.dv = 64;
    a.causal = true;
    a.mask = 1;
    (void)check_case<T>(a, 601);
    AttnCase b;  // cross-attention, head dim 128, a fully padded entry
    b.B = 3;
    b.Lq = 17;
    b.Lk = 130;
    b.dk = b.dv = 128;
    b.mask = 2;
    (void)check_case<T>(b, 602);
    AttnCase c;  // one query, one key
    c.Lq = c.Lk = 1;
    c.dk = c.dv = 8;
    (void)check_case<T>(c, 603);
    AttnCase d;  // strided operands, odd dims
    d.Lq = d.Lk = 30;
    d.dk = 13;
    d.dv = 21;
    d.fused_qkv = true;
    d.causal = true;
    (void)check_case<T>(d, 604);
}

TEST_CASE("attention over a long key axis (3000 keys) matches the CPU") {
    POLYMATH_REQUIRE_GPU();
    AttnCase c;
    c.B = 1;
    c.H = 2;
    c.Lq = 5;
    c.Lk = 3000;
    c.dk = c.dv = 64;
    c.mask = 1;
    (void)check_case<float>(c, 701);
    c.causal = true;  // shift = 2995: the last query sees every key
    (void)check_case<float>(c, 702);
    AttnCase d;  // a long query axis too, double
    d.B = 1;
    d.H = 1;
    d.Lq = 700;
    d.Lk = 900;
    d.dk = d.dv = 32;
    d.causal = true;
    (void)check_case<double>(d, 703);
}

TEST_CASE("attention backward is bitwise deterministic (no atomics)") {
    POLYMATH_REQUIRE_GPU();
    Generator gen(801);
    const std::int64_t B = 2, H = 4, L = 150, d = 64;
    const Tensor<float, Cuda> q = Tensor<float, Cuda>::randn({B, L, H * d}, gen),
                              k = Tensor<float, Cuda>::randn({B, L, H * d}, gen),
                              v = Tensor<float, Cuda>::randn({B, L, H * d}, gen),
                              go = Tensor<float, Cuda>::randn({B, L, H * d}, gen);
    const ops::AttentionOptionsCuda opt{.num_heads = H, .causal = true};
    const auto f = ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>(), opt);
    const auto g1 = ops::attention_backward(go, q, k, v, f, opt);
    const auto g2 = ops::attention_backward(go, q, k, v, f, opt);
    const auto f2 = ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>(), opt);
    auto same = [](const Tensor<float, Cuda>& a, const Tensor<float, Cuda>& b) {
        const auto x = a.to_vector(), y = b.to_vector();
        return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    CHECK(same(f.out, f2.out));
    CHECK(same(g1.dq, g2.dq));
    CHECK(same(g1.dk, g2.dk));
    CHECK(same(g1.dv, g2.dv));
}

namespace {
struct OtherOptions {  // any struct with num_heads / causal / scale works (e.g. the CPU's AttentionOptions)
    std::int64_t num_heads;
    bool causal;
    double scale;
};
}  // namespace

TEST_CASE("attention backward computes only the gradients asked for, with the same values") {
    POLYMATH_REQUIRE_GPU();
    Generator gen(901);
    const Tensor<double, Cuda> q = Tensor<double, Cuda>::randn({2, 9, 12}, gen),
                               k = Tensor<double, Cuda>::randn({2, 11, 12}, gen),
                               v = Tensor<double, Cuda>::randn({2, 11, 6}, gen),
                               go = Tensor<double, Cuda>::randn({2, 9, 6}, gen);
    const OtherOptions opt{3, true, 0};
    const auto f = ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>(), opt);
    const auto all = ops::attention_backward(go, q, k, v, f, opt);
    const auto only_q = ops::attention_backward(go, q, k, v, f, opt, true, false, false);
    CHECK(only_q.dq.defined());
    CHECK(!only_q.dk.defined());
    CHECK(!only_q.dv.defined());
    CHECK(only_q.dq.to_vector() == all.dq.to_vector());
    const auto only_kv = ops::attention_backward(go, q, k, v, f, opt, false, true, true);
    CHECK(!only_kv.dq.defined());
    CHECK(only_kv.dk.to_vector() == all.dk.to_vector());
    CHECK(only_kv.dv.to_vector() == all.dv.to_vector());
}

TEST_CASE("attention with no keys, no queries or no batch gives zeros / empty results, never NaN") {
    POLYMATH_REQUIRE_GPU();
    Generator gen(1001);
    const ops::AttentionOptionsCuda opt{.num_heads = 2};
    {  // Lk = 0: every query has no key -> out 0, dq 0
        const Tensor<float, Cuda> q = Tensor<float, Cuda>::randn({2, 5, 8}, gen);
        const Tensor<float, Cuda> k = Tensor<float, Cuda>::empty({2, 0, 8}), v = Tensor<float, Cuda>::empty({2, 0, 6});
        const Tensor<float, Cuda> go = Tensor<float, Cuda>::randn({2, 5, 6}, gen);
        const auto f = ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>(), opt);
        for (float x : f.out.to_vector()) CHECK(x == 0.0f);
        const auto g = ops::attention_backward(go, q, k, v, f, opt);
        for (float x : g.dq.to_vector()) CHECK(x == 0.0f);
        CHECK(g.dk.shape() == (Shape{2, 0, 8}));
        CHECK(g.dv.shape() == (Shape{2, 0, 6}));
    }
    {  // Lq = 0: keys get zero gradients
        const Tensor<float, Cuda> q = Tensor<float, Cuda>::empty({2, 0, 8});
        const Tensor<float, Cuda> k = Tensor<float, Cuda>::randn({2, 7, 8}, gen),
                                  v = Tensor<float, Cuda>::randn({2, 7, 6}, gen);
        const Tensor<float, Cuda> go = Tensor<float, Cuda>::empty({2, 0, 6});
        const auto f = ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>(), opt);
        CHECK(f.out.shape() == (Shape{2, 0, 6}));
        const auto g = ops::attention_backward(go, q, k, v, f, opt);
        for (float x : g.dk.to_vector()) CHECK(x == 0.0f);
        for (float x : g.dv.to_vector()) CHECK(x == 0.0f);
    }
    {  // B = 0
        const Tensor<float, Cuda> q = Tensor<float, Cuda>::empty({0, 3, 8}), k = Tensor<float, Cuda>::empty({0, 4, 8}),
                                  v = Tensor<float, Cuda>::empty({0, 4, 6});
        const auto f = ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>(), opt);
        CHECK(f.out.shape() == (Shape{0, 3, 6}));
        const auto g = ops::attention_backward(Tensor<float, Cuda>::empty({0, 3, 6}), q, k, v, f, opt);
        CHECK(g.dq.shape() == (Shape{0, 3, 8}));
    }
}

TEST_CASE("attention rejects bad shapes, masks and head dims above 128 with the shapes in the message") {
    POLYMATH_REQUIRE_GPU();
    const Tensor<float, Cuda> q = Tensor<float, Cuda>::zeros({2, 3, 8}), k = Tensor<float, Cuda>::zeros({2, 4, 8}),
                              v = Tensor<float, Cuda>::zeros({2, 4, 8});
    const Tensor<std::uint8_t, Cuda> none;
    CHECK_THROWS_WITH_AS(ops::attention_forward(q, Tensor<float, Cuda>::zeros({2, 4, 6}), v, none, {.num_heads = 2}),
                         doctest::Contains("[2, 4, 6]"), Error);
    CHECK_THROWS_WITH_AS(ops::attention_forward(q, k, Tensor<float, Cuda>::zeros({2, 5, 8}), none, {.num_heads = 2}),
                         doctest::Contains("batch/length mismatch"), Error);
    CHECK_THROWS_WITH_AS(ops::attention_forward(q, k, v, Tensor<std::uint8_t, Cuda>::zeros({2, 3}), {.num_heads = 2}),
                         doctest::Contains("key_padding_mask"), Error);
    CHECK_THROWS_WITH_AS(ops::attention_forward(q, k, v, none, {.num_heads = 3}), doctest::Contains("num_heads=3"),
                         Error);
    const Tensor<float, Cuda> wide = Tensor<float, Cuda>::zeros({1, 2, 2 * 130});
    CHECK_THROWS_WITH_AS(ops::attention_forward(wide, wide, wide, none, {.num_heads = 2}),
                         doctest::Contains("up to 128"), Error);
    const auto f = ops::attention_forward(q, k, v, none, {.num_heads = 2});
    CHECK_THROWS_WITH_AS(ops::attention_backward(Tensor<float, Cuda>::zeros({2, 3, 4}), q, k, v, f, {.num_heads = 2}),
                         doctest::Contains("[2, 3, 4]"), Error);
    CHECK_THROWS_WITH_AS(ops::attention_backward(Tensor<float, Cuda>::zeros({2, 3, 8}), q, k, v, f, {.num_heads = 4}),
                         doctest::Contains("saved forward"), Error);
}
