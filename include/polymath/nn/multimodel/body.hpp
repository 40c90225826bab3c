// polymath/nn/multimodel/body.hpp — the shared body of a MultiModel: encoder,
// I-O mixer and autoregressive decoder ("One Model To Learn Them All",
// Kaiser et al. 2017, section 2.4).
//
// All three work on [B, L, hidden] sequences; `mask` is [B, L, 1] (1 = real
// position) or undefined when nothing is padded, `key_padding` the matching
// [B, L] uint8 (nonzero = padding) for attention and the MoE router.
//
//   Encoder   x + timing signal -> ConvBlock x ceil(layers/2) -> attention
//             block -> MoE block -> ConvBlock x floor(layers/2)
//             ("6 repeated convolutional blocks with a mixture-of-experts layer
//             in the middle"; the attention block makes it the issue's
//             "ConvBlocks + attention + MoE").
//   Mixer     the shifted target embeddings, whose first position is the
//             task's embedding (the task token starts the decoder input),
//             + timing signal -> causal ConvBlock -> attention to the encoder
//             -> causal ConvBlock ("an attention block and 2 convolutional blocks").
//   Decoder   `layers` x (causal ConvBlock -> attention to the encoder), a MoE
//             block after the middle one ("4 blocks of convolutions and
//             attention with a mixture-of-experts layer in the middle").
//
// Blocks: attention block  x <- LayerNorm(x + Dropout(Attention(x[, memory])));
//         MoE block        x <- LayerNorm(x + Dropout(MoE(x)))  (t2t residual_fn2).
// Convolutions in the mixer and decoder are causal (left-padded), so position t
// never sees targets after t: decoding one token at a time gives the same
// logits as the teacher-forced forward pass (tested).
#pragma once
#include <cstdint>
#include <vector>

#include "polymath/autograd/arith.hpp"
#include "polymath/nn/attention.hpp"
#include "polymath/nn/conv_block.hpp"
#include "polymath/nn/dropout.hpp"
#include "polymath/nn/layer_norm.hpp"
#include "polymath/nn/moe.hpp"
#include "polymath/nn/module.hpp"
#include "polymath/nn/multimodel/config.hpp"

namespace polymath::nn {

namespace detail {

inline ConvBlockOptions multimodel_block(const MultiModelConfig& c, bool causal) {
    ConvBlockOptions o;
    o.steps = {{3, 1, false}, {3, 1, true}, {c.large_kernel, 1, false}, {c.large_kernel, c.dilation, true}};
    o.dropout = c.dropout;
    o.causal = causal;
    return o;
}

inline MoeOptions multimodel_moe(const MultiModelConfig& c) {
    MoeOptions o;
    o.num_experts = c.experts;
    o.k = c.k;
    o.hidden = c.filter;
    o.capacity_factor = c.capacity_factor;
    o.importance_weight = c.moe_loss_coef;
    o.load_weight = c.moe_loss_coef;
    return o;
}

}  // namespace detail

// x <- LayerNorm(x + Dropout(Attention(x, memory?)))
template <class T>
class AttentionBlock : public Module<AttentionBlock<T>, T> {
public:
    AttentionBlock() = default;
    AttentionBlock(std::int64_t hidden, std::int64_t heads, double dropout, Generator& gen = default_generator())
        : attention(hidden, heads, {}, gen), norm(hidden), drop(dropout) {}
    Var<T> forward(const Var<T>& x, const AttentionMask& mask) const {
        return norm(add(x, drop(attention(x, mask))));
    }
    Var<T> forward(const Var<T>& x, const Var<T>& memory, const AttentionMask& mask) const {
        return norm(add(x, drop(attention(x, memory, mask))));
    }
    void set_generator(Generator* g) { drop.set_generator(g); }
    template <class V>
    void visit(V& v) {
        v.module("attention", attention);
        v.module("norm", norm);
        v.module("dropout", drop);
    }
    MultiheadAttention<T> attention;
    LayerNorm<T> norm;
    Dropout<T> drop{0.0};
};

// x <- LayerNorm(x + Dropout(MoE(x))), keeping the MoE's losses and statistics.
template <class T>
class MoeBlock : public Module<MoeBlock<T>, T> {
public:
    MoeBlock() = default;
    MoeBlock(std::int64_t hidden, const MoeOptions& opt, double dropout, Generator& gen = default_generator())
        : moe(hidden, opt, gen), norm(hidden), drop(dropout) {}
    std::pair<Var<T>, MoeOutput<T>> forward(const Var<T>& x, const Tensor<std::uint8_t>& key_padding) const {
        MoeOutput<T> m = moe(x, key_padding);
        return {norm(add(x, drop(m.y))), m};
    }
    void set_generator(Generator* g) {
        moe.set_generator(g);
        drop.set_generator(g);
    }
    template <class V>
    void visit(V& v) {
        v.module("moe", moe);
        v.module("norm", norm);
        v.module("dropout", drop);
    }
    MixtureOfExperts<T> moe;
    LayerNorm<T> norm;
    Dropout<T> drop{0.0};
};

// What the body's MoE layers report for one forward pass.
template <class T>
struct BodyAux {
    Var<T> loss;                  // sum of the MoE balance losses (scalar), undefined if no MoE ran
    std::vector<MoeStats> stats;  // one per MoE layer that ran (encoder first)

    void add_moe(const MoeOutput<T>& m) {
        loss = loss.defined() ? add(loss, m.aux_loss) : m.aux_loss;
        stats.push_back(m.stats);
    }
};

template <class T>
class Encoder : public Module<Encoder<T>, T> {
public:
    Encoder() = default;
    Encoder(const MultiModelConfig& c, Generator& gen = default_generator())
        : attention(c.hidden, c.heads, c.dropout, gen), moe(c.hidden, detail::multimodel_moe(c), c.dropout, gen) {
        first_ = (c.layers + 1) / 2;
        for (std::int64_t i = 0; i < c.layers; ++i)
            blocks.push_back(ConvBlock<T>(c.hidden, detail::multimodel_block(c, false), gen));
    }

    Var<T> forward(const Var<T>& x_in, const Var<T>& mask, const Tensor<std::uint8_t>& key_padding,
                   BodyAux<T>& aux) const {
        Var<T> x = add_timing_signal_1d(x_in);
        if (mask.defined()) x = mul(x, mask);
        for (std::int64_t i = 0; i < first_; ++i) x = blocks[std::size_t(i)](x, mask);
        x = attention.forward(x, AttentionMask{key_padding, false});
        auto [y, m] = moe.forward(x, key_padding);
        aux.add_moe(m);
        x = y;
        for (std::size_t i = std::size_t(first_); i < blocks.size(); ++i) x = blocks[i](x, mask);
        return mask.defined() ? mul(x, mask) : x;
    }

    void set_generator(Generator* g) {
        for (auto& b : blocks) b.set_generator(g);
        attention.set_generator(g);
        moe.set_generator(g);
    }
    template <class V>
    void visit(V& v) {
        v.module("blocks", blocks);
        v.module("attention", attention);
        v.module("moe", moe);
    }

    ModuleList<ConvBlock<T>> blocks;
    AttentionBlock<T> attention;
    MoeBlock<T> moe;

private:
    std::int64_t first_ = 0;
};

template <class T>
class Mixer : public Module<Mixer<T>, T> {
public:
    Mixer() = default;
    Mixer(const MultiModelConfig& c, Generator& gen = default_generator())
        : conv1(c.hidden, detail::multimodel_block(c, true), gen),
          attention(c.hidden, c.heads, c.dropout, gen),
          conv2(c.hidden, detail::multimodel_block(c, true), gen) {}

    // targets_in [B, Lt, hidden]: the shifted targets (task embedding first).
    Var<T> forward(const Var<T>& targets_in, const Var<T>& encoded, const Tensor<std::uint8_t>& enc_padding) const {
        Var<T> x = conv1(add_timing_signal_1d(targets_in));
        x = attention.forward(x, encoded, AttentionMask{enc_padding, false});
        return conv2(x);
    }
    void set_generator(Generator* g) {
        conv1.set_generator(g);
        attention.set_generator(g);
        conv2.set_generator(g);
    }
    template <class V>
    void visit(V& v) {
        v.module("conv1", conv1);
        v.module("attention", attention);
        v.module("conv2", conv2);
    }
    ConvBlock<T> conv1;
    AttentionBlock<T> attention;
    ConvBlock<T> conv2;
};

template <class T>
class Decoder : public Module<Decoder<T>, T> {
public:
    Decoder() = default;
    Decoder(const MultiModelConfig& c, Generator& gen = default_generator())
        : moe(c.hidden, detail::multimodel_moe(c), c.dropout, gen) {
        moe_after_ = (c.layers - 1) / 2;
        for (std::int64_t i = 0; i < c.layers; ++i) {
            blocks.push_back(ConvBlock<T>(c.hidden, detail::multimodel_block(c, true), gen));
            attention.push_back(AttentionBlock<T>(c.hidden, c.heads, c.dropout, gen));
        }
    }

    // x [B, Lt, hidden] from the mixer; dec_padding [B, Lt] for the MoE router.
    Var<T> forward(const Var<T>& x_in, const Var<T>& encoded, const Tensor<std::uint8_t>& enc_padding,
                   const Tensor<std::uint8_t>& dec_padding, BodyAux<T>& aux) const {
        Var<T> x = x_in;
        for (std::size_t i = 0; i < blocks.size(); ++i) {
            x = blocks[i](x);
            x = attention[i].forward(x, encoded, AttentionMask{enc_padding, false});
            if (std::int64_t(i) == moe_after_) {
                auto [y, m] = moe.forward(x, dec_padding);
                aux.add_moe(m);
                x = y;
            }
        }
        return x;
    }
    void set_generator(Generator* g) {
        for (auto& b : blocks) b.set_generator(g);
        for (auto& a : attention) a.set_generator(g);
        moe.set_generator(g);
    }
    template <class V>
    void visit(V& v) {
        v.module("blocks", blocks);
        v.module("attention", attention);
        v.module("moe", moe);
    }
    ModuleList<ConvBlock<T>> blocks;
    ModuleList<AttentionBlock<T>> attention;
    MoeBlock<T> moe;

private:
    std::int64_t moe_after_ = 0;
};

}  // namespace polymath::nn
