// LoRA, adapters, prompts, AIM axis adapters, freezing and the by-name
// matching: gradients, exact equivalences, frozen-parameter guarantees, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>

#include "peft_test_util.hpp"
#include "polymath/autograd/grad_check.hpp"
#include "polymath/optim.hpp"

using namespace polymath;
using namespace peft_test;

namespace {
template <class T>
void randomize(const Var<T>& v, Generator& g, double scale = 0.5) {
    Tensor<T>(v.value()).copy_(ops::mul_scalar(Tensor<T>::randn(v.shape(), g), T(scale)));
}
std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("glob patterns: '*' stays inside one dotted component, '**' crosses dots") {
    CHECK(peft::glob_match("encoder.*.attention", "encoder.3.attention"));
    CHECK_FALSE(peft::glob_match("encoder.*.attention", "encoder.3.x.attention"));
    CHECK(peft::glob_match("encoder.**.attention", "encoder.3.x.attention"));
    CHECK(peft::glob_match("**.fc", "blocks.0.fc"));
    CHECK_FALSE(peft::glob_match("**.fc", "blocks.0.fc2"));
    CHECK(peft::glob_match("blocks.*", "blocks.10"));
    CHECK_FALSE(peft::glob_match("blocks.*", "blocks.1.fc"));
    CHECK(peft::glob_match("f*c", "fc"));
    CHECK_FALSE(peft::glob_match("", "fc"));
}

TEST_CASE("for_each_module walks dotted sub-module names pre-order, as named_parameters names them") {
    Generator g(1);
    Encoder<float> m(4, 8, 3, 1, g);
    const auto names = peft::module_names(m);
    const std::vector<std::string> want{"embed", "blocks", "blocks.0", "blocks.0.attention",
                                        "blocks.0.attention.out_proj", "blocks.0.fc", "head"};
    CHECK(names == want);
}

TEST_CASE("add_lora on attention wraps the Q and V slices by default, '.k' names one slice, and adds named parameters") {
    Generator g(2);
    Encoder<float> m(4, 8, 3, 2, g);
    const auto a = peft::add_lora(m, "blocks.*.attention", 2, 4.0, g);
    CHECK(a == std::vector<std::string>{"blocks.0.attention.q", "blocks.0.attention.v", "blocks.1.attention.q",
                                        "blocks.1.attention.v"});
    const auto b = peft::add_lora(m, "blocks.1.attention.k", 2, 4.0, g);
    CHECK(b == std::vector<std::string>{"blocks.1.attention.k"});
    std::set<std::string> names;
    for (const auto& p : m.named_parameters()) names.insert(p.name);
    CHECK(names.count("blocks.0.attention.lora_q_A"));
    CHECK(names.count("blocks.0.attention.lora_v_B"));
    CHECK_FALSE(names.count("blocks.0.attention.lora_k_A"));
    CHECK(names.count("blocks.1.attention.lora_k_A"));
    CHECK(m.blocks[0].attention.lora_A[0].shape() == Shape{2, 8});
    CHECK(m.blocks[0].attention.lora_B[0].shape() == Shape{8, 2});
    // '**' reaches every Linear (embed, fc, out_proj, head) and the attention modules' default slices.
    Encoder<float> m2(4, 8, 3, 1, g);
    const auto c = peft::add_lora(m2, "**", 2, 2.0, g);
    CHECK(c == std::vector<std::string>{"embed", "blocks.0.attention.q", "blocks.0.attention.v",
                                        "blocks.0.attention.out_proj", "blocks.0.fc", "head"});
}

TEST_CASE("LoRA with its zero-initialised B leaves the model's output exactly unchanged") {
    Generator g(3);
    Encoder<float> m(4, 8, 3, 2, g);
    const Var<float> x(Tensor<float>::randn({2, 5, 4}, g));
    const Tensor<float> before = m(x).value().clone();
    peft::add_lora(m, "**", 2, 4.0, g);
    CHECK(same_values(m(x).value(), before));
}

TEST_CASE("LoRA merged and unmerged give the same outputs (relative to the largest output: float 1e-6, double 1e-13)") {
    Generator g(4);
    {
        Encoder<float> m(4, 8, 3, 2, g);
        peft::add_lora(m, "**", 2, 4.0, g);
        for (auto& p : peft::added_parameters(m)) randomize(p.var, g, 0.2);
        const Tensor<float> w0 = m.blocks[0].fc.weight.value().clone();
        const Tensor<float> q0 = m.blocks[1].attention.in_proj_weight.value().clone();
        const Var<float> x(Tensor<float>::randn({2, 5, 4}, g));
        const Tensor<float> un = m(x).value().clone();
        CHECK(peft::merge_lora(m) == 10);
        CHECK(m.blocks[0].fc.lora_merged());
        CHECK_FALSE(same_values(m.blocks[0].fc.weight.value(), w0));  // the delta is really in W now
        const Tensor<float> me = m(x).value().clone();
        const double scale = max_abs_diff(un, Tensor<float>::zeros(un.shape()));
        CHECK(max_abs_diff(un, me) <= 1e-6 * scale);
        peft::unmerge_lora(m);
        // One rounding per element each way: W comes back within a few ulps.
        CHECK(max_abs_diff(m.blocks[0].fc.weight.value(), w0) <= 1e-6);
        CHECK(max_abs_diff(m.blocks[1].attention.in_proj_weight.value(), q0) <= 1e-6);
        CHECK(max_abs_diff(m(x).value(), un) <= 1e-6 * scale);
    }
    {
        Encoder<double> m(4, 8, 3, 1, g);
        peft::add_lora(m, "**", 3, 1.5, g);
        for (auto& p : peft::added_parameters(m)) randomize(p.var, g);
        const Var<double> x(Tensor<double>::randn({3, 4, 4}, g));
        const Tensor<double> un = m(x).value().clone();
        peft::merge_lora(m);
        CHECK(max_abs_diff(un, m(x).value()) <= 1e-13 * max_abs_diff(un, Tensor<double>::zeros(un.shape())));
    }
}

TEST_CASE("grad_check: Linear with LoRA (x, W, A, B) and attention with LoRA on Q and V") {
    Generator g(5);
    nn::Linear<double> fc(5, 4, {}, g);
    fc.add_lora({.rank = 2, .alpha = 3}, g);
    randomize(fc.lora_B, g);
    const auto r = grad_check(
        [&](const std::vector<Var<double>>& in) {
            fc.weight = in[1];
            fc.lora_A = in[2];
            fc.lora_B = in[3];
            return fc(in[0]);
        },
        {Var<double>(Tensor<double>::randn({2, 3, 5}, g)), fc.weight, fc.lora_A, fc.lora_B});
    CHECK_MESSAGE(r.ok, r.report);

    nn::MultiheadAttention<double> mha(6, 2, {}, g);
    mha.add_lora(0, {.rank = 2, .alpha = 2}, g);
    mha.add_lora(2, {.rank = 1, .alpha = 1}, g);
    randomize(mha.lora_B[0], g);
    randomize(mha.lora_B[2], g);
    const auto r2 = grad_check(
        [&](const std::vector<Var<double>>& in) {
            mha.lora_A[0] = in[1];
            mha.lora_B[0] = in[2];
            mha.lora_A[2] = in[3];
            mha.lora_B[2] = in[4];
            return mha(in[0]);
        },
        {Var<double>(Tensor<double>::randn({2, 3, 6}, g)), mha.lora_A[0], mha.lora_B[0], mha.lora_A[2],
         mha.lora_B[2]});
    CHECK_MESSAGE(r2.ok, r2.report);
    // Memory attention projects Q and K|V separately; the slice deltas follow.
    const Var<double> mem(Tensor<double>::randn({2, 4, 6}, g));
    const auto r3 = grad_check(
        [&](const std::vector<Var<double>>& in) {
            mha.lora_B[0] = in[1];
            mha.lora_B[2] = in[2];
            return mha(in[0], mem);
        },
        {Var<double>(Tensor<double>::randn({2, 3, 6}, g)), mha.lora_B[0], mha.lora_B[2]});
    CHECK_MESSAGE(r3.ok, r3.report);
}

TEST_CASE("LoRA on an attention slice equals a dense update of that slice of in_proj_weight") {
    // Independent reference: W_q + scale·B·A written into a plain attention.
    Generator g(6);
    nn::MultiheadAttention<double> mha(6, 3, {}, g);
    nn::MultiheadAttention<double> ref = mha.clone();
    mha.add_lora(1, {.rank = 2, .alpha = 5}, g);
    randomize(mha.lora_B[1], g);
    const Tensor<double> delta = ops::matmul(mha.lora_B[1].value(), mha.lora_A[1].value());
    Tensor<double> rows = ref.in_proj_weight.value().narrow(0, 6, 6);
    ops::add_(rows, delta, 2.5);
    const Var<double> x(Tensor<double>::randn({2, 4, 6}, g));
    CHECK(max_abs_diff(mha(x).value(), ref(x).value()) <= 1e-12);
}

TEST_CASE("adapters: zero up-projection leaves the model exactly unchanged; grad_check of the adapter") {
    Generator g(7);
    Encoder<float> m(4, 8, 3, 2, g);
    const Var<float> x(Tensor<float>::randn({2, 5, 4}, g));
    const Tensor<float> before = m(x).value().clone();
    const auto names = peft::add_adapters(m, "blocks.*.fc|unused", {.bottleneck = 3}, g);
    (void)names;
    const auto n2 = peft::add_adapters(m, "blocks.*.attention", {.bottleneck = 2}, g);
    CHECK(n2 == std::vector<std::string>{"blocks.0.attention", "blocks.1.attention"});
    CHECK(same_values(m(x).value(), before));
    std::set<std::string> pn;
    for (const auto& p : m.named_parameters()) pn.insert(p.name);
    CHECK(pn.count("blocks.1.attention.adapter.up.weight"));

    peft::Adapter<double> a(5, 2, peft::Activation::Tanh, 0.7, g);
    randomize(a.up.weight, g);
    const auto r = grad_check(
        [&](const std::vector<Var<double>>& in) {
            a.down.weight = in[1];
            a.up.weight = in[2];
            a.up.bias = in[3];
            return a(in[0]);
        },
        {Var<double>(Tensor<double>::randn({3, 5}, g)), a.down.weight, a.up.weight, a.up.bias});
    CHECK_MESSAGE(r.ok, r.report);
}

TEST_CASE("an adapter hook computes x + up(act(down(x))) on the layer's output (hand-set weights)") {
    Generator g(8);
    nn::Linear<double> fc(2, 2, {.bias = false}, g);
    Tensor<double>(fc.weight.value()).copy_(Tensor<double>{{1, 0}, {0, 2}});  // y = (x0, 2 x1)
    fc.add_extension("adapter", std::make_shared<peft::ModuleExtension<peft::Adapter<double>>>(
                                    peft::Adapter<double>(2, 1, peft::Activation::ReLU, 1.0, g)));
    auto* ad = peft::find_extension<peft::Adapter<double>>(fc, "adapter");
    REQUIRE(ad != nullptr);
    Tensor<double>(ad->down.weight.value()).copy_(Tensor<double>{{1, -1}});  // h = relu(y0 - y1 + 0.5)
    Tensor<double>(ad->down.bias.value()).copy_(Tensor<double>{0.5});
    Tensor<double>(ad->up.weight.value()).copy_(Tensor<double>::from_vector({3, -1}, Shape{2, 1}));  // out += (3h, -h)
    const Var<double> x(Tensor<double>{{3, 1}, {1, 2}});
    // row 0: y = (3, 2), h = relu(1.5) = 1.5 -> (7.5, 0.5); row 1: y = (1, 4), h = relu(-2.5) = 0 -> (1, 4)
    CHECK(same_values(fc(x).value(), Tensor<double>{{7.5, 0.5}, {1, 4}}));
    CHECK(same_values(fc.forward(x).value(), Tensor<double>{{3, 2}, {1, 4}}));  // forward() skips hooks
}

TEST_CASE("freeze_base: frozen parameters stay bit-identical under Adam and get no grads and no optimizer state") {
    Generator g(9);
    Encoder<float> m(4, 8, 3, 2, g);
    peft::add_lora(m, "blocks.*.attention", 2, 4.0, g);
    peft::add_adapters(m, "blocks.*.fc", {.bottleneck = 2}, g);
    const peft::ParameterReport rep = peft::freeze_base(m);
    // By hand: embed 4·8+8 = 40; per block in_proj 3·8·8+24 = 216, out_proj 64+8 = 72, fc 72 -> 360;
    // head 8·3+3 = 27: base 40 + 2·360 + 27 = 787. Added per block: LoRA q,v 2·(2·8 + 8·2) = 64,
    // adapter down 8·2+2 = 18, up 2·8+8 = 24 -> 106; two blocks 212.
    CHECK(rep.added == 212);
    CHECK(rep.trainable == 212);
    CHECK(rep.frozen == 787);
    CHECK(rep.total == 999);
    CHECK(rep.extra_bytes == 212 * 4);

    std::vector<std::pair<std::string, Tensor<float>>> frozen, added0;
    std::set<std::string> added_names;
    for (const auto& p : peft::added_parameters(m)) added_names.insert(p.name);
    for (const auto& p : m.named_parameters()) {
        if (added_names.count(p.name))
            added0.emplace_back(p.name, p.var.value().clone());
        else
            frozen.emplace_back(p.name, p.var.value().clone());
    }
    REQUIRE(frozen.size() == 16);  // embed 2 + 2 blocks · 6 + head 2 tensors
    // Every parameter goes to the optimizer: it must skip the frozen ones itself.
    optim::Adam<float> opt(m.named_parameters(), {.lr = 1e-2});
    const Var<float> x(Tensor<float>::randn({4, 5, 4}, g));
    const Tensor<std::int64_t> y = Tensor<std::int64_t>::from_vector({0, 1, 2, 1});
    for (int step = 0; step < 3; ++step) {
        opt.zero_grad();
        cross_entropy(m(x), y).backward();
        for (const auto& p : m.named_parameters())
            CHECK_MESSAGE(p.var.grad().defined() == (added_names.count(p.name) > 0), p.name);
        opt.step();
    }
    for (const auto& [n, t] : frozen) {
        bool found = false;
        for (const auto& p : m.named_parameters())
            if (p.name == n) {
                CHECK_MESSAGE(same_bytes(p.var.value(), t), n);
                found = true;
            }
        CHECK(found);
    }
    int changed = 0;
    for (const auto& [n, t] : added0)
        for (const auto& p : m.named_parameters())
            if (p.name == n && !same_bytes(p.var.value(), t)) ++changed;
    CHECK(changed == int(added0.size()));  // every added tensor moved (B and up start at 0 but get gradients)
    for (const auto& [key, t] : opt.state().tensors) {
        const std::string param = key.substr(0, key.rfind('.'));
        CHECK_MESSAGE(added_names.count(param), key);
    }
    CHECK(opt.state().tensors.size() == 2 * added_names.size());  // exp_avg, exp_avg_sq per added tensor
}

TEST_CASE("errors: a pattern matching nothing lists the model's names; rank too large names the layer; nothing changes") {
    Generator g(10);
    Encoder<float> m(4, 8, 3, 1, g);
    const std::string e1 = error_of([&] { peft::add_lora(m, "encoder.*.attention", 2, 4.0, g); });
    CHECK(contains(e1, "peft::add_lora"));
    CHECK(contains(e1, "'encoder.*.attention'"));
    CHECK(contains(e1, "blocks.0.attention.out_proj"));
    CHECK(contains(e1, "embed.weight"));
    // head is [3, 8]: rank 4 > min(3, 8). The earlier targets must not have been wrapped.
    const std::string e2 = error_of([&] { peft::add_lora(m, "embed|head", 4, 4.0, g); });
    CHECK(contains(e2, "layer 'head'"));
    CHECK(contains(e2, "rank 4"));
    CHECK(contains(e2, "[3, 8]"));
    CHECK_FALSE(m.embed.has_lora());
    CHECK(contains(error_of([&] { peft::add_lora(m, "head", 0, 1.0, g); }), "rank 0"));
    CHECK(contains(error_of([&] { m.blocks[0].attention.add_lora(0, {.rank = 9}, g); }), "rank 9"));
    // A block does not run output hooks: the message says it matched but has the wrong type.
    const std::string e3 = error_of([&] { peft::add_adapters(m, "blocks.0", {}, g); });
    CHECK(contains(e3, "matched but of another type: blocks.0"));
    CHECK(contains(error_of([&] { peft::tap_features(m, "nothing"); }), "head.bias"));
    peft::add_lora(m, "head", 2, 4.0, g);
    CHECK(contains(error_of([&] { peft::add_lora(m, "head", 2, 4.0, g); }), "already has LoRA"));
    CHECK(contains(error_of([&] { m.embed.merge_lora(); }), "no LoRA"));
    CHECK(m.named_parameters().size() == 10 + 2);  // base: embed 2, block 6, head 2; + head's LoRA factors
}

TEST_CASE("prompt too long: prepending beyond the model's maximum length throws naming both lengths") {
    Generator g(11);
    Encoder<float> m(4, 8, 3, 1, g);
    peft::add_prompts(m, "embed", {.tokens = 3, .max_length = 8}, g);
    CHECK(m(Var<float>(Tensor<float>::randn({2, 5, 4}, g))).shape() == Shape{2, 3});  // 5 + 3 = 8 fits
    const std::string e = error_of([&] { m(Var<float>(Tensor<float>::randn({2, 6, 4}, g))); });
    CHECK(contains(e, "6 tokens"));
    CHECK(contains(e, "3 prompt tokens"));
    CHECK(contains(e, "maximum length 8"));
    CHECK(contains(error_of([&] { peft::add_prompts(m, "blocks.0.fc", {.tokens = 8, .max_length = 8}, g); }),
                   "no room"));
}

TEST_CASE("prompts change outputs only through the added tokens") {
    Generator g(12);
    // Per-token path (embed + fc, no attention): the original positions do not depend on the
    // prompt tokens at all (bit for bit when the tokens change), and equal the unprompted
    // model's outputs up to GEMM rounding (Eigen picks kernels by row count: 8 vs 5 rows per
    // batch here round differently, measured 6e-8 on values of size ~1).
    Encoder<float> m(4, 8, 3, 1, g);
    const Var<float> x(Tensor<float>::randn({2, 5, 4}, g));
    const Tensor<float> e0 = m.blocks[0].fc(m.embed(x)).value().clone();
    peft::add_prompts(m, "embed", {.tokens = 3}, g);
    auto* prompt = peft::find_extension<peft::Prompt<float>>(m.embed, "prompt");
    REQUIRE(prompt != nullptr);
    const Var<float> e1 = m.blocks[0].fc(m.embed(x));
    CHECK(e1.shape() == Shape{2, 8, 8});
    CHECK(max_abs_diff(narrow(e1, 1, 3, 5).value(), e0) <= 1e-6);
    randomize(prompt->tokens, g, 3.0);
    const Var<float> e2 = m.blocks[0].fc(m.embed(x));
    CHECK(same_values(narrow(e2, 1, 3, 5).value().contiguous(), narrow(e1, 1, 3, 5).value().contiguous()));
    CHECK_FALSE(same_values(narrow(e2, 1, 0, 3).value().contiguous(), narrow(e1, 1, 0, 3).value().contiguous()));
    // With attention the prompts do change every position — and after freeze_base they are
    // the only thing that trains: only the tokens get a gradient.
    const Tensor<float> t0 = m.tokens(x).value().clone();
    randomize(prompt->tokens, g, 2.0);
    CHECK(max_abs_diff(narrow(m.tokens(x), 1, 3, 5).value(), narrow(Var<float>(t0), 1, 3, 5).value()) > 1e-3);
    peft::freeze_base(m);
    sum(m(x)).backward();
    for (const auto& p : m.named_parameters())
        CHECK_MESSAGE(p.var.grad().defined() == (p.name == "embed.prompt.tokens"), p.name);
}

TEST_CASE("VPT-deep: the first target prepends, later targets replace the prompt positions; grad_check of both") {
    Generator g(13);
    Encoder<double> m(4, 6, 3, 2, g);
    const auto names = peft::add_prompts(m, "embed|blocks.*.fc", {.tokens = 2, .deep = true}, g);
    CHECK(names == std::vector<std::string>{"embed", "blocks.0.fc", "blocks.1.fc"});
    const Var<double> x(Tensor<double>::randn({3, 4, 6 - 2}, g));
    CHECK(m.tokens(x).shape() == Shape{3, 6, 6});  // length 4 + 2 through both blocks
    // replace() by hand: positions 0..P-1 are the tokens, the rest is x[:, P:].
    peft::Prompt<double> p(2, 3, g, peft::PromptMode::Replace);
    const Var<double> z(Tensor<double>::randn({2, 5, 3}, g));
    const Var<double> r = p(z);
    CHECK(same_values(narrow(r, 1, 2, 3).value().contiguous(), narrow(z, 1, 2, 3).value().contiguous()));
    CHECK(same_values(select(r, 0, 1).value().narrow(0, 0, 2).contiguous(), p.tokens.value()));
    const auto gc = grad_check(
        [&](const std::vector<Var<double>>& in) {
            p.tokens = in[1];
            return concat({p.replace(in[0]), p.prepend(in[0])}, 1);
        },
        {z, p.tokens});
    CHECK_MESSAGE(gc.ok, gc.report);
}

TEST_CASE("AIM axis adapters: temporal mixes frames of one token position, spatial the tokens of one frame, joint a clip") {
    Generator g(14);
    // A sublayer that mixes along the sequence axis: s + mean over the sequence.
    auto mix = [](const Var<double>& s) { return add(s, mean(s, {1}, true)); };
    const Var<double> x(Tensor<double>::randn({2, 3, 4, 5}, g));  // B=2, T=3, N=4, d=5
    Tensor<double> bumped = x.value().clone();
    bumped.data()[((1 * 3 + 0) * 4 + 1) * 5 + 2] += 1.0;  // clip 1, frame 0, token 1, channel 2
    for (auto axis : {peft::Axis::Temporal, peft::Axis::Spatial, peft::Axis::Joint}) {
        peft::AxisAdapter<double> a(axis, 5, 2, g);
        const Tensor<double> y0 = a(x, mix).value().contiguous();
        const Tensor<double> y1 = a(Var<double>(bumped), mix).value().contiguous();
        for (std::int64_t t = 0; t < 3; ++t)
            for (std::int64_t n = 0; n < 4; ++n) {
                double d = 0;
                for (std::int64_t c = 0; c < 5; ++c) {
                    const std::int64_t i = ((1 * 3 + t) * 4 + n) * 5 + c;
                    d = std::max(d, std::fabs(y1.data()[i] - y0.data()[i]));
                }
                const bool reached = axis == peft::Axis::Temporal ? n == 1 : axis == peft::Axis::Spatial ? t == 0 : true;
                CHECK_MESSAGE((d > 0) == reached, "t=", t, " n=", n);
            }
        // Clip 0 never sees clip 1's tokens, on any axis.
        CHECK(same_values(y0.narrow(0, 0, 1).contiguous(), y1.narrow(0, 0, 1).contiguous()));
        // Zero-initialised up-projection: the adapter adds nothing yet.
        const Tensor<double> ref = peft::from_axis(mix(peft::to_axis(x, axis)), axis, x.shape()).value().contiguous();
        CHECK(same_values(y0, ref));
        randomize(a.adapter.up.weight, g);
        const auto gc = grad_check(
            [&](const std::vector<Var<double>>& in) {
                a.adapter.up.weight = in[1];
                return a(in[0], mix);
            },
            {Var<double>(x.value().clone()), a.adapter.up.weight});
        CHECK_MESSAGE(gc.ok, gc.report);
    }
}

TEST_CASE("clone() deep-copies adapters and LoRA; state_dict carries them by name") {
    Generator g(15);
    Encoder<float> m(4, 8, 3, 1, g);
    peft::add_lora(m, "head", 2, 2.0, g);
    peft::add_adapters(m, "blocks.0.fc", {.bottleneck = 2}, g);
    Encoder<float> c = m.clone();
    auto* ad = peft::find_extension<peft::Adapter<float>>(c.blocks[0].fc, "adapter");
    auto* orig = peft::find_extension<peft::Adapter<float>>(m.blocks[0].fc, "adapter");
    REQUIRE(ad != nullptr);
    REQUIRE(orig != nullptr);
    CHECK(ad->up.weight.impl() != orig->up.weight.impl());
    Tensor<float>(ad->up.weight.value()).fill_(1.0f);
    CHECK(orig->up.weight.value().data()[0] == 0.0f);
    CHECK(c.head.lora_A.impl() != m.head.lora_A.impl());
    bool has = false;
    for (const auto& [n, t] : m.state_dict()) has = has || n == "blocks.0.fc.adapter.down.weight";
    CHECK(has);
    c.load_state_dict(m.state_dict());  // same names, so it round-trips
    CHECK(ad->up.weight.value().data()[0] == 0.0f);
    m.eval();
    CHECK_FALSE(orig->is_training());
}

TEST_CASE("LoRA dropout acts on the low-rank path in training mode only") {
    Generator g(16);
    nn::Linear<double> fc(6, 4, {}, g);
    Generator drop_gen(99);
    fc.add_lora({.rank = 2, .alpha = 2, .dropout = 0.5, .dropout_gen = &drop_gen}, g);
    randomize(fc.lora_B, g);
    const Var<double> x(Tensor<double>::randn({3, 6}, g));
    // Independent reference: x Wᵀ + b + (alpha / r) (x Aᵀ) Bᵀ with plain tensor ops.
    const Tensor<double> ref = ops::add(
        ops::add(ops::matmul(x.value(), fc.weight.value().t()), fc.bias.value()),
        ops::mul_scalar(ops::matmul(ops::matmul(x.value(), fc.lora_A.value().t()), fc.lora_B.value().t()), 1.0));
    fc.eval();
    CHECK(max_abs_diff(fc(x).value(), ref) <= 1e-12);
    fc.train();
    const Tensor<double> t1 = fc(x).value().clone();
    CHECK(max_abs_diff(t1, ref) > 1e-6);  // some inputs of the LoRA path were dropped
    drop_gen = Generator(99);
    CHECK(same_values(fc(x).value(), t1));  // same stream, same mask
    // Base path untouched by dropout: with B = 0 training output equals x Wᵀ + b exactly.
    Tensor<double>(fc.lora_B.value()).fill_(0.0);
    CHECK(same_values(fc(x).value(), ops::add(ops::matmul(x.value(), fc.weight.value().t()), fc.bias.value())));
}

TEST_CASE("training only the LoRA factors and adapters of a frozen model lowers the loss on a new task") {
    Generator g(17);
    Encoder<float> m(4, 8, 3, 1, g);
    peft::add_lora(m, "blocks.*.attention|head", 2, 4.0, g);
    peft::add_adapters(m, "blocks.*.fc", {.bottleneck = 4}, g);
    peft::freeze_base(m);
    optim::Adam<float> opt(m.named_parameters(/*trainable_only=*/true), {.lr = 2e-2});
    const Var<float> x(Tensor<float>::randn({16, 5, 4}, g));
    std::vector<std::int64_t> yv;
    for (int i = 0; i < 16; ++i) yv.push_back(i % 3);
    const Tensor<std::int64_t> y = Tensor<std::int64_t>::from_vector(yv);
    float first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
        opt.zero_grad();
        Var<float> loss = cross_entropy(m(x), y);
        loss.backward();
        opt.step();
        (step == 0 ? first : last) = loss.item();
    }
    CHECK(last < 0.5f * first);
}
