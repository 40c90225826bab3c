// benchmarks/peft_cpu — what parameter-efficient transfer costs on the CPU
// (issue #8, Performance). The model is the small ViT of examples/peft_transfer
// (16 patches of 7x7, d 64, 3 pre-LN blocks, 4 heads, MLP 128, 105k
// parameters), on random inputs [N, 16, 49] with random labels of 10 classes
// (timing only). CSV as bench_util.hpp, where "polymath_ms" is the method named
// first in the case and "peer_ms" the baseline named after "_vs_" (run
// alternately within every pass); ratio = baseline / method (> 1: the method
// is cheaper).
//
// Training to the end, N = 1024 examples, E = 2 epochs, batch 64, Adam
// (one run per rep; the baseline is full fine-tuning for E epochs):
//   h2t_E_vs_full_ft        Head2Toe: the backbone runs ONCE over the N examples
//                           (taps on the embedding, every attention, fc1 and
//                           block output; 2,560 pooled features), then the
//                           group-lasso probe for E full-batch steps (one step
//                           = one pass over the cached features = one epoch)
//   h2t_300_vs_full_ft      the same with the 300 probe steps the example uses
//   h2t_probe_E_vs_full_ft  only the E probe epochs on features already cached
//   linear_probe_vs_full_ft a new head trained E epochs on the frozen backbone
//                           (the backbone runs forward every step, no backward)
// One training step, forward + backward (no optimizer step), batch 64, against
// the same step of full fine-tuning:
//   lora_r4_step_vs_full, lora_r8_step_vs_full   LoRA on Q and V of every attention
//   adapter_step_vs_full                         bottleneck-8 adapters after every attention and fc2
//   vpt_deep_step_vs_full                        8 prompt tokens, replaced before every block
//
//   peft_cpu [--threads 1,2] [--passes 5] [--reps 5] [--filter NAME]
// (the training-to-the-end cases run 1 rep per pass whatever --reps says).
#include <cmath>

#include "bench_util.hpp"
#include <polymath/data/batching.hpp>
#include <polymath/nn.hpp>
#include <polymath/optim.hpp>
#include <polymath/peft.hpp>

using namespace polymath;
using namespace polymath::bench;

namespace {

constexpr std::int64_t kTokens = 16, kPatchDim = 49, kDim = 64, kDepth = 3, kHeads = 4, kClasses = 10;
constexpr std::int64_t kN = 1024, kEpochs = 2, kBatch = 64;

// The model of examples/peft_transfer.cpp (kept in step with it by hand).
struct PatchEmbed : nn::Module<PatchEmbed, float> {
    static constexpr bool runs_output_hooks = true;
    nn::Linear<float> proj;
    Var<float> pos;
    PatchEmbed() = default;
    PatchEmbed(std::int64_t d, Generator& g)
        : proj(kPatchDim, d, {}, g), pos(nn::init::normal<float>({kTokens, d}, 0.0, 0.02, g), true) {}
    Var<float> forward(const Var<float>& x) const { return add(proj(x), pos); }
    Var<float> operator()(const Var<float>& x) const { return this->run_output_hooks(forward(x)); }
    std::int64_t output_features() const { return proj.out_features(); }
    template <class V>
    void visit(V& v) {
        v.module("proj", proj);
        v.parameter("pos", pos);
    }
};

struct Block : nn::Module<Block, float> {
    static constexpr bool runs_output_hooks = true;
    nn::LayerNorm<float> ln1, ln2;
    nn::MultiheadAttention<float> attention;
    nn::Linear<float> fc1, fc2;
    Block() = default;
    Block(std::int64_t d, std::int64_t heads, Generator& g)
        : ln1(d), ln2(d), attention(d, heads, {}, g), fc1(d, 2 * d, {}, g), fc2(2 * d, d, {}, g) {}
    Var<float> forward(const Var<float>& x) const {
        const Var<float> h = add(x, attention(ln1(x)));
        return add(h, fc2(gelu(fc1(ln2(h)))));
    }
    Var<float> operator()(const Var<float>& x) const { return this->run_output_hooks(forward(x)); }
    std::int64_t output_features() const { return fc2.out_features(); }
    template <class V>
    void visit(V& v) {
        v.module("ln1", ln1);
        v.module("attention", attention);
        v.module("ln2", ln2);
        v.module("fc1", fc1);
        v.module("fc2", fc2);
    }
};

struct ViT : nn::Module<ViT, float> {
    PatchEmbed embed;
    nn::ModuleList<Block> blocks;
    nn::LayerNorm<float> norm;
    nn::Linear<float> head;
    ViT() = default;
    explicit ViT(Generator& g) : embed(kDim, g), norm(kDim), head(kDim, kClasses, {}, g) {
        for (std::int64_t i = 0; i < kDepth; ++i) blocks.push_back(Block(kDim, kHeads, g));
    }
    Var<float> operator()(const Var<float>& x) const {
        Var<float> h = embed(x);
        for (const auto& b : blocks) h = b(h);
        return head(norm(mean(narrow(h, 1, h.size(1) - kTokens, kTokens), {1})));
    }
    template <class V>
    void visit(V& v) {
        v.module("embed", embed);
        v.module("blocks", blocks);
        v.module("norm", norm);
        v.module("head", head);
    }
};

template <class T>
Tensor<T> rows(const Tensor<T>& x, const std::vector<std::int64_t>& idx) {
    return ops::index_select(x, 0, Tensor<std::int64_t>::from_vector(idx)).contiguous();
}

// E epochs of minibatch Adam on m's trainable parameters.
void train_epochs(ViT& m, optim::Adam<float>& opt, const Tensor<float>& x, const Tensor<std::int64_t>& y, Generator& g) {
    for (std::int64_t ep = 0; ep < kEpochs; ++ep) {
        const auto order = data::shuffled_indices(x.size(0), g);
        for (std::int64_t b = 0; b < x.size(0); b += kBatch) {
            const std::vector<std::int64_t> idx(order.begin() + b, order.begin() + std::min(x.size(0), b + kBatch));
            Var<float> loss = cross_entropy(m(Var<float>(rows(x, idx))), rows(y, idx));
            opt.zero_grad();
            loss.backward();
            opt.step();
            g_sink = g_sink + float(loss.item());
        }
    }
}

void run_all(const Options& o, int th) {
    Generator g(1);
    const Tensor<float> x = Tensor<float>::randn({kN, kTokens, kPatchDim}, g);
    Tensor<std::int64_t> y = Tensor<std::int64_t>::empty({kN});
    for (std::int64_t i = 0; i < kN; ++i) y.data()[i] = (i * 7 + i / 3) % kClasses;
    const ViT backbone(g);
    const std::string shape = "N=" + std::to_string(kN) + ";E=" + std::to_string(kEpochs) + ";B=" + std::to_string(kBatch);

    // Full fine-tuning, the baseline of the training-to-the-end cases.
    ViT full = backbone.clone();
    optim::Adam<float> full_opt(full.named_parameters(true), {.lr = 1e-3});
    Generator gf(2);
    auto full_ft = [&] { train_epochs(full, full_opt, x, y, gf); };

    // Head2Toe on the frozen backbone.
    ViT tapped = backbone.clone();
    auto taps = peft::tap_features(tapped, "embed|blocks.*|blocks.*.attention|blocks.*.fc1");
    const peft::head2toe::ExtractOptions eo{.target_features = 256, .group_size = 32};
    auto extract = [&] {
        const std::int64_t bs = 256, nb = (kN + bs - 1) / bs;
        return peft::head2toe::extract(
            taps, nb, [&](std::int64_t b) { tapped(Var<float>(x.narrow(0, b * bs, std::min(bs, kN - b * bs)).contiguous())); },
            eo);
    };
    const peft::head2toe::Features<float> cached = extract();
    auto probe = [&](const peft::head2toe::Features<float>& f, int steps) {
        const auto p = peft::head2toe::train_probe(f.x, y, kClasses, f.groups, {.lambda = 1e-3, .lr = 0.1, .steps = steps});
        g_sink = g_sink + p.weight.data()[0];
    };

    Options once = o;
    once.reps = 1;
    const std::string fshape = shape + ";F=" + std::to_string(cached.x.size(1));
    compare(once, "h2t_E_vs_full_ft", fshape, th, [&] { probe(extract(), int(kEpochs)); }, full_ft);
    compare(once, "h2t_300_vs_full_ft", fshape, th, [&] { probe(extract(), 300); }, full_ft);
    compare(once, "h2t_probe_E_vs_full_ft", fshape, th, [&] { probe(cached, int(kEpochs)); }, full_ft);

    ViT lin = backbone.clone();
    lin.freeze();
    lin.head.unfreeze();
    optim::Adam<float> lin_opt(lin.named_parameters(true), {.lr = 1e-3});
    Generator gl(2);
    compare(once, "linear_probe_vs_full_ft", shape, th, [&] { train_epochs(lin, lin_opt, x, y, gl); }, full_ft);

    // One forward + backward at batch 64.
    const Var<float> xb(x.narrow(0, 0, kBatch).contiguous());
    const Tensor<std::int64_t> yb = y.narrow(0, 0, kBatch).contiguous();
    auto step = [&](ViT& m) {
        return [&m, &xb, &yb] {
            m.zero_grad();
            Var<float> loss = cross_entropy(m(xb), yb);
            loss.backward();
            g_sink = g_sink + float(loss.item());
        };
    };
    const std::string sshape = "B=" + std::to_string(kBatch) + ";L=16;d=64";
    ViT lora4 = backbone.clone(), lora8 = backbone.clone(), adapter = backbone.clone(), vpt = backbone.clone();
    Generator gp(3);
    peft::add_lora(lora4, "blocks.*.attention", {.rank = 4, .alpha = 8}, gp);
    peft::add_lora(lora8, "blocks.*.attention", {.rank = 8, .alpha = 8}, gp);
    peft::add_adapters(adapter, "blocks.*.attention|blocks.*.fc2", {.bottleneck = 8}, gp);
    peft::add_prompts(vpt, "embed|blocks.0|blocks.1", {.tokens = 8, .deep = true}, gp);
    for (ViT* m : {&lora4, &lora8, &adapter, &vpt}) {
        peft::freeze_base(*m);
        m->head.unfreeze();
    }
    ViT full_step = backbone.clone();
    compare(o, "lora_r4_step_vs_full", sshape, th, step(lora4), step(full_step));
    compare(o, "lora_r8_step_vs_full", sshape, th, step(lora8), step(full_step));
    compare(o, "adapter_step_vs_full", sshape, th, step(adapter), step(full_step));
    compare(o, "vpt_deep_step_vs_full", sshape + "+8", th, step(vpt), step(full_step));
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv, "peft_cpu");
    std::printf("case,shape,threads,polymath_ms,peer_ms,ratio,polymath_min_ms,peer_min_ms\n");
    for (int th : o.threads) {
        set_num_threads(th);
        run_all(o, th);
    }
    return 0;
}
