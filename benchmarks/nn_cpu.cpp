// benchmarks/nn_cpu — polymath layers and a MultiModel-style training step
// against LibTorch at the same shapes and thread counts (CSV as ops_cpu, see
// bench_util.hpp). Cases (float):
//   convstep_k3 / convstep_k15_d8   ConvStep on [N=8, L=128, C=256] channels-last
//   mha                             self-attention, batch 8, length 128, d 256, 4 heads
//   moe                             1024 tokens, d 256, 16 experts of FFN 1024, top-2, noisy gating
//   step                            embedding 8000x256 on [8,128] tokens, 2 ConvBlocks, 1 attention,
//                                   MoE (8 experts), logits over 8000, cross-entropy, Adam step
// each "_fwd" (no graph) and "_fwdbwd". LibTorch runs the same math the way a
// PyTorch user writes it: conv1d(groups=C) between transposes for the
// depthwise conv, torch::nn::MultiheadAttention, the widely used
// SparseDispatcher-style MoE (sort the nonzero gates by expert, one FFN per
// expert, index_add to combine).
//
//   nn_cpu [--threads 1,2] [--passes 5] [--reps 5] [--filter NAME]
//   nn_cpu --rss polymath|libtorch [--steps N] [--threads T]
//       runs only that side's training step N times, prints its peak RSS
//       (getrusage) and, for polymath, the allocator statistics of one
//       steady-state step (system allocations must not grow).
#include <sys/resource.h>

#include <cmath>
#include <cstring>

#include "bench_util.hpp"
#include <polymath/nn/attention.hpp>
#include <polymath/nn/conv_block.hpp>
#include <polymath/nn/embedding.hpp>
#include <polymath/nn/linear.hpp>
#include <polymath/nn/moe.hpp>
#include <polymath/optim/adam.hpp>

using namespace polymath;
using namespace polymath::bench;

namespace {

constexpr std::int64_t kN = 8, kL = 128, kC = 256;

// ---- polymath side -----------------------------------------------------------
struct PmStep : nn::Module<PmStep, float> {
    nn::Embedding<float> emb;
    nn::ConvBlock<float> b1, b2;
    nn::MultiheadAttention<float> att;
    nn::LayerNorm<float> ln;
    nn::MixtureOfExperts<float> moe;
    nn::Linear<float> out;
    explicit PmStep(Generator& g)
        : emb(8000, kC, {.init_std = 1.0 / 16}, g), b1(kC, {}, g), b2(kC, {}, g), att(kC, 4, {}, g), ln(kC),
          moe(kC, {.num_experts = 8, .k = 2, .hidden = 1024}, g), out(kC, 8000, {}, g) {}
    template <class V>
    void visit(V& v) {
        v.module("emb", emb);
        v.module("b1", b1);
        v.module("b2", b2);
        v.module("att", att);
        v.module("ln", ln);
        v.module("moe", moe);
        v.module("out", out);
    }
    Var<float> loss(const Tensor<std::int64_t>& tok, const Tensor<std::int64_t>& tgt) const {
        Var<float> h = b2(b1(emb(tok)));
        h = ln(add(h, att(h)));
        auto m = moe(h);
        h = add(h, m.y);
        return add(cross_entropy(reshape(out(h), {-1, 8000}), tgt.reshape({-1})), m.aux_loss);
    }
};

#if POLYMATH_BENCH_HAVE_TORCH
// ---- LibTorch side -------------------------------------------------------------
torch::Tensor tparam(const Tensor<float>& t) { return to_torch(t).set_requires_grad(true); }

struct TConvStep {
    torch::Tensor dw, pw, pb, lw, lb;  // dw [C, 1, K]
    std::int64_t k, d;
    TConvStep(const nn::ConvStep<float>& s, std::int64_t k_, std::int64_t d_) : k(k_), d(d_) {
        dw = tparam(s.conv.depthwise.value().t().contiguous().reshape({kC, 1, k_}));
        pw = tparam(s.conv.pointwise.weight.value());
        pb = tparam(s.conv.pointwise.bias.value());
        lw = tparam(s.norm.weight.value());
        lb = tparam(s.norm.bias.value());
    }
    torch::Tensor operator()(const torch::Tensor& x) const {  // x [N, L, C]
        auto h = torch::relu(x).transpose(1, 2);
        h = torch::conv1d(h, dw, {}, 1, d * (k - 1) / 2, d, x.size(2)).transpose(1, 2);
        return torch::layer_norm(torch::linear(h, pw, pb), {x.size(2)}, lw, lb);
    }
    std::vector<torch::Tensor> params() const { return {dw, pw, pb, lw, lb}; }
};

struct TConvBlock {
    std::vector<TConvStep> s;
    explicit TConvBlock(const nn::ConvBlock<float>& b) {
        const std::int64_t ks[4] = {3, 3, 15, 15}, ds[4] = {1, 1, 1, 8};
        for (int i = 0; i < 4; ++i) s.emplace_back(b.steps[std::size_t(i)], ks[i], ds[i]);
    }
    torch::Tensor operator()(const torch::Tensor& x, bool train) const {
        auto h1 = s[0](x);
        auto h2 = x + s[1](h1);
        auto h3 = s[2](h2);
        auto h4 = x + s[3](h3);
        return torch::dropout(h4, 0.4, train);
    }
    void collect(std::vector<torch::Tensor>& p) const {
        for (auto& st : s)
            for (auto& t : st.params()) p.push_back(t);
    }
};

struct TMoe {
    torch::Tensor wg, wn, w1, b1, w2, b2;
    std::int64_t E, k;
    explicit TMoe(const nn::MixtureOfExperts<float>& m) : E(m.options().num_experts), k(m.options().k) {
        wg = tparam(m.w_gate.value());
        wn = tparam(m.w_noise.value());
        w1 = tparam(m.w1.value());
        b1 = tparam(m.b1.value());
        w2 = tparam(m.w2.value());
        b2 = tparam(m.b2.value());
    }
    static torch::Tensor cv2(const torch::Tensor& v) { return v.var(false) / (v.mean().pow(2) + 1e-10); }
    // x [S, d] -> (y, aux loss), training with noisy gating.
    std::pair<torch::Tensor, torch::Tensor> operator()(const torch::Tensor& x) const {
        auto clean = x.mm(wg);
        auto std_ = torch::softplus(x.mm(wn)) + 1e-2;
        auto noisy = clean + torch::randn_like(clean) * std_;
        auto top = noisy.topk(k + 1, 1);
        auto vals = std::get<0>(top), idx = std::get<1>(top);
        auto gates_k = torch::softmax(vals.narrow(1, 0, k), 1);
        auto gates = torch::zeros_like(noisy).scatter(1, idx.narrow(1, 0, k), gates_k);
        // load: smooth estimator
        auto th_in = vals.narrow(1, k, 1), th_out = vals.narrow(1, k - 1, 1);
        auto is_in = noisy > th_in;
        auto normal_cdf = [](const torch::Tensor& z) { return 0.5 * torch::erfc(-z / std::sqrt(2.0)); };
        auto prob = torch::where(is_in, normal_cdf((clean - th_in) / std_), normal_cdf((clean - th_out) / std_));
        auto aux = 1e-2 * cv2(gates.sum(0)) + 1e-2 * cv2(prob.sum(0));
        // SparseDispatcher
        auto nz = torch::nonzero(gates);  // [A, 2] (token, expert)
        auto sorted = nz.select(1, 1).sort(0);
        auto order = std::get<1>(sorted);
        auto batch_index = nz.select(1, 0).index_select(0, order);
        auto expert_index = nz.select(1, 1).index_select(0, order);
        auto part = (gates > 0).sum(0).to(torch::kCPU);
        auto inp = x.index_select(0, batch_index);
        auto g = gates.index({batch_index, expert_index}).unsqueeze(1);
        std::vector<torch::Tensor> outs;
        std::int64_t off = 0;
        auto pa = part.accessor<std::int64_t, 1>();
        for (std::int64_t e = 0; e < E; ++e) {
            const std::int64_t n = pa[e];
            if (n == 0) continue;
            auto xe = inp.narrow(0, off, n);
            outs.push_back(torch::relu(xe.mm(w1[e]) + b1[e]).mm(w2[e]) + b2[e]);
            off += n;
        }
        auto stitched = torch::cat(outs, 0) * g;
        auto y = torch::zeros_like(x).index_add(0, batch_index, stitched);
        return {y, aux};
    }
    std::vector<torch::Tensor> params() const { return {wg, wn, w1, b1, w2, b2}; }
};

struct TStep {
    torch::Tensor emb, lnw, lnb, ow, ob;
    TConvBlock c1, c2;
    torch::nn::MultiheadAttention att{nullptr};
    TMoe moe;
    std::vector<torch::Tensor> params;
    explicit TStep(const PmStep& p) : c1(p.b1), c2(p.b2), moe(p.moe) {
        emb = tparam(p.emb.weight.value());
        lnw = tparam(p.ln.weight.value());
        lnb = tparam(p.ln.bias.value());
        ow = tparam(p.out.weight.value());
        ob = tparam(p.out.bias.value());
        att = torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(kC, 4));
        params = {emb, lnw, lnb, ow, ob};
        c1.collect(params);
        c2.collect(params);
        for (auto& t : moe.params()) params.push_back(t);
        for (auto& t : att->parameters()) params.push_back(t);
    }
    torch::Tensor loss(const torch::Tensor& tok, const torch::Tensor& tgt) {
        auto h = c2(c1(torch::embedding(emb, tok), true), true);
        auto hl = h.transpose(0, 1);  // [L, N, C]
        auto a = std::get<0>(att->forward(hl, hl, hl, {}, false)).transpose(0, 1);
        h = torch::layer_norm(h + a, {kC}, lnw, lnb);
        auto [y, aux] = moe(h.reshape({-1, kC}));
        h = h + y.reshape(h.sizes());
        auto logits = torch::linear(h, ow, ob).reshape({-1, 8000});
        return torch::cross_entropy_loss(logits, tgt.reshape({-1})) + aux;
    }
};
#endif

void clear_grads(std::vector<Var<float>>& ps) {
    for (auto& p : ps) p.zero_grad();
}

void bench_layers(const Options& o, int th) {
#if POLYMATH_BENCH_HAVE_TORCH
    Generator g(1);
    const std::string shp = "8x128x256";
    Tensor<float> x = Tensor<float>::randn({kN, kL, kC}, g);
    Tensor<float> gy = Tensor<float>::randn({kN, kL, kC}, g);
    torch::Tensor tx = to_torch(x), tgy = to_torch(gy);
    for (auto [k, d] : {std::pair<std::int64_t, std::int64_t>{3, 1}, {15, 8}}) {
        nn::ConvStep<float> step(kC, kC, k, {.dilation = d}, true, g);
        TConvStep ts(step, k, d);
        auto ps = step.parameters();
        const std::string name = "convstep_k" + std::to_string(k) + (d > 1 ? "_d" + std::to_string(d) : "");
        compare(o, name + "_fwd", shp, th,
                [&] { NoGradGuard ng; g_sink = g_sink + step(Var<float>(x)).value().data()[0]; },
                [&] { torch::NoGradGuard ng; g_sink = g_sink + ts(tx).data_ptr<float>()[0]; });
        compare(o, name + "_fwdbwd", shp, th,
                [&] { clear_grads(ps); step(Var<float>(x)).backward(gy); },
                [&] {
                    for (auto& p : ts.params()) p.mutable_grad().reset();
                    ts(tx).backward(tgy);
                });
    }
    {
        nn::MultiheadAttention<float> mha(kC, 4, {}, g);
        torch::nn::MultiheadAttention tm(torch::nn::MultiheadAttentionOptions(kC, 4));
        {
            torch::NoGradGuard ng;
            tm->in_proj_weight.copy_(to_torch(mha.in_proj_weight.value()));
            tm->out_proj->weight.copy_(to_torch(mha.out_proj.weight.value()));
        }
        auto ps = mha.parameters();
        torch::Tensor txl = tx.transpose(0, 1).contiguous(), tgyl = tgy.transpose(0, 1).contiguous();
        compare(o, "mha_fwd", shp + "_h4", th,
                [&] { NoGradGuard ng; g_sink = g_sink + mha(Var<float>(x)).value().data()[0]; },
                [&] {
                    torch::NoGradGuard ng;
                    g_sink = g_sink + std::get<0>(tm->forward(txl, txl, txl, {}, false)).data_ptr<float>()[0];
                });
        compare(o, "mha_fwdbwd", shp + "_h4", th, [&] { clear_grads(ps); mha(Var<float>(x)).backward(gy); },
                [&] {
                    tm->zero_grad();
                    std::get<0>(tm->forward(txl, txl, txl, {}, false)).backward(tgyl);
                });
    }
    {
        nn::MixtureOfExperts<float> moe(kC, {.num_experts = 16, .k = 2, .hidden = 1024}, g);
        Tensor<float>(moe.w_gate.value()).copy_(Tensor<float>::randn({kC, 16}, g) * 0.1f);
        TMoe tm(moe);
        Tensor<float> xm = Tensor<float>::randn({1024, kC}, g), gm = Tensor<float>::randn({1024, kC}, g);
        torch::Tensor txm = to_torch(xm), tgm = to_torch(gm);
        auto ps = moe.parameters();
        compare(o, "moe_fwd", "1024x256_e16_h1024_k2", th,
                [&] { NoGradGuard ng; g_sink = g_sink + moe(Var<float>(xm)).y.value().data()[0]; },
                [&] { torch::NoGradGuard ng; g_sink = g_sink + tm(txm).first.data_ptr<float>()[0]; });
        compare(o, "moe_fwdbwd", "1024x256_e16_h1024_k2", th,
                [&] {
                    clear_grads(ps);
                    auto r = moe(Var<float>(xm));
                    add(sum(mul(r.y, Var<float>(gm))), r.aux_loss).backward();
                },
                [&] {
                    for (auto& p : tm.params()) p.mutable_grad().reset();
                    auto [y, aux] = tm(txm);
                    ((y * tgm).sum() + aux).backward();
                });
    }
#else
    (void)o;
    (void)th;
#endif
}

struct StepData {
    Tensor<std::int64_t> tok, tgt;
};
StepData step_data() {
    Generator g(2);
    StepData d{Tensor<std::int64_t>::empty({kN, kL}), Tensor<std::int64_t>::empty({kN, kL})};
    Tensor<float> r = Tensor<float>::rand({2, kN, kL}, g);
    for (std::int64_t i = 0; i < kN * kL; ++i) {
        d.tok.data()[i] = std::int64_t(r.data()[i] * 8000) % 8000;
        d.tgt.data()[i] = std::int64_t(r.data()[kN * kL + i] * 8000) % 8000;
    }
    return d;
}

void bench_step(const Options& o, int th) {
#if POLYMATH_BENCH_HAVE_TORCH
    Generator g(3);
    PmStep model(g);
    TStep tmodel(model);
    optim::Adam<float> opt(model.named_parameters(), {.lr = 1e-4});
    torch::optim::Adam topt(tmodel.params, torch::optim::AdamOptions(1e-4));
    const StepData d = step_data();
    torch::Tensor ttok = to_torch(d.tok.to<float>()).to(torch::kLong), ttgt = to_torch(d.tgt.to<float>()).to(torch::kLong);
    compare(o, "train_step", "8x128_v8000_d256", th,
            [&] {
                opt.zero_grad();
                Var<float> l = model.loss(d.tok, d.tgt);
                l.backward();
                opt.step();
                g_sink = g_sink + l.item();
            },
            [&] {
                topt.zero_grad();
                auto l = tmodel.loss(ttok, ttgt);
                l.backward();
                topt.step();
                g_sink = g_sink + l.item<float>();
            });
#else
    (void)o;
    (void)th;
#endif
}

long peak_rss_kb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

int rss_mode(const std::string& side, int steps, int th) {
    set_num_threads(th);
    const StepData d = step_data();
    Generator g(3);
    PmStep model(g);
    if (side == "polymath") {
        optim::Adam<float> opt(model.named_parameters(), {.lr = 1e-4});
        AllocatorStats before{};
        for (int i = 0; i < steps; ++i) {
            if (i == steps - 1) before = CpuAllocator::instance().stats();
            opt.zero_grad();
            Var<float> l = model.loss(d.tok, d.tgt);
            l.backward();
            opt.step();
            g_sink = g_sink + l.item();
        }
        const AllocatorStats after = CpuAllocator::instance().stats();
        std::printf("polymath: peak RSS %.1f MiB after %d steps; last step: %zu allocations, %zu cache hits, "
                    "%zu system allocations, %zu system frees; cached %.1f MiB, peak in use %.1f MiB\n",
                    double(peak_rss_kb()) / 1024.0, steps, after.allocations - before.allocations,
                    after.cache_hits - before.cache_hits, after.system_allocations - before.system_allocations,
                    after.system_frees - before.system_frees, double(after.bytes_cached) / 1048576.0,
                    double(after.peak_bytes_in_use) / 1048576.0);
        return 0;
    }
#if POLYMATH_BENCH_HAVE_TORCH
    if (side == "libtorch") {
        torch::set_num_threads(th);
        TStep tmodel(model);
        torch::optim::Adam topt(tmodel.params, torch::optim::AdamOptions(1e-4));
        torch::Tensor ttok = to_torch(d.tok.to<float>()).to(torch::kLong),
                      ttgt = to_torch(d.tgt.to<float>()).to(torch::kLong);
        for (int i = 0; i < steps; ++i) {
            topt.zero_grad();
            auto l = tmodel.loss(ttok, ttgt);
            l.backward();
            topt.step();
            g_sink = g_sink + l.item<float>();
        }
        std::printf("libtorch: peak RSS %.1f MiB after %d steps (includes the polymath model it copies from)\n",
                    double(peak_rss_kb()) / 1024.0, steps);
        return 0;
    }
#endif
    std::cerr << "nn_cpu: --rss takes polymath or libtorch (libtorch needs a LibTorch build)\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    // --rss SIDE [--steps N] [--threads T]
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--rss") == 0 && i + 1 < argc) {
            int steps = 5, th = 1;
            for (int j = 1; j + 1 < argc; ++j) {
                if (std::strcmp(argv[j], "--steps") == 0) steps = std::atoi(argv[j + 1]);
                if (std::strcmp(argv[j], "--threads") == 0) th = std::atoi(argv[j + 1]);
            }
            return rss_mode(argv[i + 1], steps, th);
        }
    const Options o = parse(argc, argv, "nn_cpu");
#if !POLYMATH_BENCH_HAVE_TORCH
    std::cerr << "nn_cpu: built without LibTorch (install libtorch-dev): nothing to compare against\n";
#endif
    std::printf("case,shape,threads,polymath_ms,peer_ms,ratio,polymath_min_ms,peer_min_ms\n");
    for (int th : o.threads) {
        set_num_threads(th);
#if POLYMATH_BENCH_HAVE_TORCH
        torch::set_num_threads(th);
#endif
        bench_layers(o, th);
        bench_step(o, th);
    }
    return 0;
}
