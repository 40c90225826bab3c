// polymath/nn/attention.hpp — multi-head dot-product attention and the
// sinusoidal timing signal of tensor2tensor / "Attention Is All You Need".
//
//   nn::MultiheadAttention<float> mha(256, 4);        // embed_dim 256, 4 heads, batch-first
//   Var<float> y = mha(x);                            // self-attention, x [B, L, 256]
//   Var<float> y = mha(x, {.causal = true});          // decoder self-attention
//   Var<float> y = mha(x, memory, {.key_padding_mask = pad});   // over an encoder's output
//
// Parameters as torch.nn.MultiheadAttention: in_proj_weight [3E, E] (rows
// Q | K | V), in_proj_bias [3E], out_proj (Linear E -> E). Self-attention runs
// ONE [B·L, E] x [E, 3E] product for Q, K and V; attention over a memory runs
// one for Q and one for K|V. The attention itself is the fused kernel of
// ops/attention.hpp (no head permutes; probabilities kept for backward).
//
// Masks: key_padding_mask uint8 [B, Lk], nonzero = padding (the key is
// ignored); causal masks key j for query i when j > i + (Lk - Lq). A query
// whose keys are all masked gets a zero output.
//
// LoRA (peft/lora.hpp): add_lora(slice, opts) with slice 0 = Q, 1 = K, 2 = V
// gives that slice of in_proj_weight (rows slice·E .. slice·E+E) its own
// delta: parameters "lora_q_A" [r, E], "lora_q_B" [E, r] (and k, v). It is
// added to that slice's projection output after the bias, exactly as in
// nn::Linear (same init, scale alpha/r, dropout, merge/unmerge semantics);
// out_proj is an ordinary nn::Linear and takes its own LoRA. operator() runs
// the module's output hooks on the attention output (after out_proj).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/attention.hpp"
#include "polymath/autograd/dropout.hpp"
#include "polymath/autograd/join.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

// The [length, channels] sinusoidal signal of tensor2tensor's
// get_timing_signal_1d: with n = channels / 2 timescales,
//   inv_timescale_i = min_timescale · exp(−i · log(max_timescale / min_timescale) / max(n − 1, 1)),
//   signal[t] = [sin((t + start) · inv_timescale_0..n−1), cos(... same ...)],
// zero-padded by one column when channels is odd.
template <class T>
Tensor<T> timing_signal_1d(std::int64_t length, std::int64_t channels, double min_timescale = 1.0,
                           double max_timescale = 1.0e4, std::int64_t start_index = 0) {
    POLYMATH_CHECK(length >= 0 && channels >= 1, "timing_signal_1d", "bad size length=", length,
                   " channels=", channels);
    Tensor<T> s = Tensor<T>::zeros({length, channels});
    const std::int64_t n = channels / 2;
    const double inc = std::log(max_timescale / min_timescale) / double(std::max<std::int64_t>(n - 1, 1));
    T* p = s.data();
    for (std::int64_t t = 0; t < length; ++t)
        for (std::int64_t i = 0; i < n; ++i) {
            const double a = double(t + start_index) * min_timescale * std::exp(-double(i) * inc);
            p[t * channels + i] = T(std::sin(a));
            p[t * channels + n + i] = T(std::cos(a));
        }
    return s;
}

// x [B, L, C] + timing_signal_1d(L, C) (broadcast over the batch).
template <class T>
Var<T> add_timing_signal_1d(const Var<T>& x, double min_timescale = 1.0, double max_timescale = 1.0e4) {
    POLYMATH_CHECK(x.dim() == 3, "add_timing_signal_1d", "expects [B, L, C], got ", x.shape());
    return add(x, Var<T>(timing_signal_1d<T>(x.size(1), x.size(2), min_timescale, max_timescale)));
}

struct AttentionMask {
    Tensor<std::uint8_t> key_padding_mask{};  // [B, Lk], nonzero = ignore that key
    bool causal = false;
};

struct MultiheadAttentionOptions {
    bool bias = true;
    double scale = 0;  // 0: 1/sqrt(head_dim)
};

template <class T>
class MultiheadAttention : public Module<MultiheadAttention<T>, T> {
public:
    MultiheadAttention() = default;
    MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads, MultiheadAttentionOptions opt = {},
                       Generator& gen = default_generator())
        : embed_(embed_dim), heads_(num_heads), scale_(opt.scale) {
        POLYMATH_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0, "nn::MultiheadAttention",
                       "embed_dim=", embed_dim, " must be a positive multiple of num_heads=", num_heads);
        // torch: xavier_uniform over the whole [3E, E] in_proj, zero biases.
        in_proj_weight = Var<T>(init::xavier_uniform<T>({3 * embed_dim, embed_dim}, 1.0, gen), true);
        if (opt.bias) in_proj_bias = Var<T>(Tensor<T>::zeros({3 * embed_dim}), true);
        out_proj = Linear<T>(embed_dim, embed_dim, {.bias = opt.bias}, gen);
        if (opt.bias) Tensor<T>(out_proj.bias.value()).fill_(T(0));
    }

    // Self-attention.
    Var<T> forward(const Var<T>& x, const AttentionMask& mask = {}) const {
        check_input(x, "query");
        Var<T> qkv = project(x, 0, 3);  // [B, L, 3E]
        const std::int64_t E = embed_;
        return attend(narrow(qkv, 2, 0, E), narrow(qkv, 2, E, E), narrow(qkv, 2, 2 * E, E), mask);
    }
    // Attention of x over a separate memory (encoder-decoder).
    Var<T> forward(const Var<T>& x, const Var<T>& memory, const AttentionMask& mask = {}) const {
        check_input(x, "query");
        check_input(memory, "memory");
        POLYMATH_CHECK(memory.size(0) == x.size(0), "nn::MultiheadAttention", "batch of query ", x.shape(),
                       " and memory ", memory.shape(), " differ");
        Var<T> q = project(x, 0, 1);
        Var<T> kv = project(memory, 1, 2);
        return attend(q, narrow(kv, 2, 0, embed_), narrow(kv, 2, embed_, embed_), mask);
    }
    static constexpr bool runs_output_hooks = true;
    Var<T> operator()(const Var<T>& x, const AttentionMask& mask = {}) const {
        return this->run_output_hooks(forward(x, mask));
    }
    Var<T> operator()(const Var<T>& x, const Var<T>& memory, const AttentionMask& mask = {}) const {
        return this->run_output_hooks(forward(x, memory, mask));
    }

    std::int64_t embed_dim() const noexcept { return embed_; }
    std::int64_t num_heads() const noexcept { return heads_; }

    // ---- LoRA on the Q (0), K (1) or V (2) slice of in_proj (see the file comment) ----
    void add_lora(int slice, const LoraOptions& o, Generator& gen = default_generator()) {
        check_slice(slice, "add_lora");
        POLYMATH_CHECK(in_proj_weight.defined(), "nn::MultiheadAttention::add_lora", "used before construction");
        POLYMATH_CHECK(!lora_A[slice].defined(), "nn::MultiheadAttention::add_lora", "slice ", slice_name(slice),
                       " already has a LoRA delta");
        detail::check_lora_rank(o, embed_, embed_, std::string("nn::MultiheadAttention slice ") + slice_name(slice));
        const double bound = 1.0 / std::sqrt(double(embed_));
        lora_A[slice] = Var<T>(init::uniform<T>({o.rank, embed_}, -bound, bound, gen), true);
        lora_B[slice] = Var<T>(Tensor<T>::zeros({embed_, o.rank}), true);
        lora_opt_[slice] = o;
        lora_merged_[slice] = false;
    }
    void remove_lora(int slice) {
        check_slice(slice, "remove_lora");
        if (lora_merged_[slice]) unmerge_lora(slice);
        lora_A[slice] = Var<T>();
        lora_B[slice] = Var<T>();
    }
    bool has_lora(int slice) const { return check_slice(slice, "has_lora"), lora_A[slice].defined(); }
    bool lora_merged(int slice) const { return check_slice(slice, "lora_merged"), lora_merged_[slice]; }
    double lora_scale(int slice) const { return lora_opt_[slice].alpha / double(lora_opt_[slice].rank); }
    void merge_lora(int slice) {
        check_has_lora(slice, "merge_lora");
        if (!lora_merged_[slice]) fold(slice, T(lora_scale(slice)));
        lora_merged_[slice] = true;
    }
    void unmerge_lora(int slice) {
        check_has_lora(slice, "unmerge_lora");
        if (lora_merged_[slice]) fold(slice, T(-lora_scale(slice)));
        lora_merged_[slice] = false;
    }
    static const char* slice_name(int slice) { return slice == 0 ? "q" : slice == 1 ? "k" : "v"; }

    template <class V>
    void visit(V& v) {
        v.parameter("in_proj_weight", in_proj_weight);
        v.parameter("in_proj_bias", in_proj_bias);
        v.module("out_proj", out_proj);
        v.parameter("lora_q_A", lora_A[0]);
        v.parameter("lora_q_B", lora_B[0]);
        v.parameter("lora_k_A", lora_A[1]);
        v.parameter("lora_k_B", lora_B[1]);
        v.parameter("lora_v_A", lora_A[2]);
        v.parameter("lora_v_B", lora_B[2]);
    }

    Var<T> in_proj_weight;  // [3E, E]: rows Q | K | V
    Var<T> in_proj_bias;    // [3E]
    Linear<T> out_proj;
    std::array<Var<T>, 3> lora_A;  // per slice [r, E], undefined unless add_lora
    std::array<Var<T>, 3> lora_B;  // per slice [E, r]

private:
    void check_input(const Var<T>& x, const char* what) const {
        POLYMATH_CHECK(in_proj_weight.defined(), "nn::MultiheadAttention", "used before construction");
        POLYMATH_CHECK(x.dim() == 3 && x.size(2) == embed_, "nn::MultiheadAttention", what, " of shape ", x.shape(),
                       " must be [B, L, embed_dim=", embed_, "]");
    }
    // x W[first·E : (first+count)·E]ᵀ + b[...]: one GEMM for `count` projections.
    Var<T> project(const Var<T>& x, std::int64_t first, std::int64_t count) const {
        Var<T> w = narrow(in_proj_weight, 0, first * embed_, count * embed_);
        Var<T> y = matmul(x, transpose(w, 0, 1));
        if (in_proj_bias.defined()) y = add(y, narrow(in_proj_bias, 0, first * embed_, count * embed_));
        bool any = false;
        for (std::int64_t s = first; s < first + count; ++s) any = any || lora_active(int(s));
        if (!any) return y;
        // Per slice: that slice's columns of y, plus its low-rank delta when active.
        std::vector<Var<T>> parts;
        for (std::int64_t s = first; s < first + count; ++s) {
            Var<T> part = count == 1 ? y : narrow(y, 2, (s - first) * embed_, embed_);
            if (lora_active(int(s))) {
                const LoraOptions& o = lora_opt_[s];
                const Var<T> xin =
                    o.dropout > 0
                        ? dropout(x, o.dropout, this->is_training(), o.dropout_gen ? *o.dropout_gen : default_generator())
                        : x;
                Var<T> d = matmul(matmul(xin, transpose(lora_A[s], 0, 1)), transpose(lora_B[s], 0, 1));
                part = add(part, d * T(lora_scale(int(s))));
            }
            parts.push_back(part);
        }
        return count == 1 ? parts[0] : concat(parts, 2);
    }
    bool lora_active(int s) const { return lora_A[s].defined() && !lora_merged_[s]; }
    int check_slice(int slice, const char* op) const {
        POLYMATH_CHECK(slice >= 0 && slice < 3, std::string("nn::MultiheadAttention::") + op, "slice ", slice,
                       " must be 0 (q), 1 (k) or 2 (v)");
        return slice;
    }
    void check_has_lora(int slice, const char* op) const {
        check_slice(slice, op);
        POLYMATH_CHECK(lora_A[slice].defined(), std::string("nn::MultiheadAttention::") + op, "slice ",
                       slice_name(slice), " has no LoRA delta");
    }
    void fold(int slice, T s) {
        Tensor<T> rows = in_proj_weight.value().narrow(0, slice * embed_, embed_);
        ops::add_(rows, ops::matmul(lora_B[slice].value(), lora_A[slice].value()), s);
    }
    Var<T> attend(const Var<T>& q, const Var<T>& k, const Var<T>& v, const AttentionMask& mask) const {
        Var<T> o = scaled_dot_product_attention(q, k, v, {.num_heads = heads_, .causal = mask.causal, .scale = scale_},
                                                mask.key_padding_mask);
        return out_proj(o);
    }

    std::int64_t embed_ = 0, heads_ = 1;
    double scale_ = 0;
    std::array<LoraOptions, 3> lora_opt_{};
    std::array<bool, 3> lora_merged_{};
};

}  // namespace polymath::nn
