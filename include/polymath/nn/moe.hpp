// polymath/nn/moe.hpp — sparsely-gated mixture-of-experts (Shazeer et al. 2017),
// as MultiModel uses it.
//
//   nn::MixtureOfExperts<float> moe(256, {.num_experts = 16, .k = 2, .hidden = 1024});
//   auto r = moe(x);                       // x [..., 256]; r.y same shape
//   Var<float> loss = add(task_loss, r.aux_loss);
//   auto r = moe(x, padding_mask);         // uint8 [...] (x's leading dims), nonzero = padding
//
// Gating, for the S tokens x (rows of x flattened to [S, d]):
//   clean = x Wg                                       [S, E]
//   noise_std = Softplus(x Wnoise) + noise_epsilon     (training with noisy gating only)
//   H = clean + StandardNormal() ⊙ noise_std          (else H = clean)
//   G = Softmax(KeepTopK(H, k))                        — computed as a softmax over the
//       k largest H of each token (the renormalised top-k gates, [S, k])
// Experts: y_e(x) = act(x W1_e + b1e) W2_e + b2e (2-layer FFN; act ReLU or GELU).
// Output: y(x) = Σ_{j<k} G_j(x) · y_{e_j}(x), via ops/moe.hpp's plan: tokens
//   sorted by expert, ONE grouped GEMM per layer (ops/grouped_gemm.hpp), the
//   gate-weighted combine summing each token's slots in slot order.
// Balance losses, over the non-padding tokens only, accumulated in T (float
// or double, i.e. at least fp32):
//   CV²(v) = Var(v) / (Mean(v)² + 1e-10), population variance over the E
//            experts (tensor2tensor's cv_squared); 0 when E == 1.
//   Importance_e = Σ_x G_e(x)                         L_importance = w_importance · CV²(Importance)
//   Load_e = Σ_x Φ((clean_e(x) − θ_e(x)) / noise_std_e(x)), where θ_e(x) is the
//            k-th largest of H(x) over the experts other than e — i.e. the
//            (k+1)-th largest of H(x) if e is in the top k, else the k-th —
//            the paper's smooth estimator of the number of tokens sent to e
//                                                     L_load = w_load · CV²(Load)
//   Without noise (eval(), noisy_gating = false, or k == E) Load_e counts the
//   tokens routed to e (no gradient), as tensor2tensor does.
//   aux_loss = L_importance + L_load (w_importance = w_load = 0.01 by default).
// Capacity: capacity_factor > 0 gives each expert C = ceil(factor · tokens · k / E)
// slots (tokens = non-padding tokens); overflow assignments are dropped
// (first choices of all tokens admitted before second choices, tokens in
// order). capacity_factor <= 0 is dropless. eval() mode uses
// eval_capacity_factor instead (default 0: dropless at evaluation, as
// GShard/Tutel-style eval capacity factors allow). Padding tokens take no capacity,
// get a zero output and do not count in the losses.
// Deterministic: every reduction has a fixed order on CPU, so results are
// bit-identical across runs and thread counts (`deterministic` selects the
// sorted, atomic-free path on backends where that is a choice).
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/compare.hpp"
#include "polymath/autograd/index.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/autograd/moe.hpp"
#include "polymath/autograd/reduce.hpp"
#include "polymath/autograd/softmax.hpp"
#include "polymath/autograd/topk.hpp"
#include "polymath/autograd/unary.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/module.hpp"
#include "polymath/ops/compare.hpp"

namespace polymath::nn {

enum class Activation { relu, gelu };

struct MoeOptions {
    std::int64_t num_experts = 8;
    std::int64_t k = 2;
    std::int64_t hidden = 0;  // expert FFN width; 0: 4 · d
    Activation activation = Activation::relu;
    bool noisy_gating = true;
    double noise_epsilon = 1e-2;
    double capacity_factor = 0;       // <= 0: dropless
    double eval_capacity_factor = 0;  // the same in eval() mode; default dropless (routing without noise is less even)
    double importance_weight = 1e-2;
    double load_weight = 1e-2;
    bool deterministic = true;
    bool expert_bias = true;
};

struct MoeStats {
    std::vector<std::int64_t> tokens_per_expert;  // kept assignments per expert
    std::int64_t dropped = 0;                     // assignments dropped for capacity
    std::int64_t valid_tokens = 0;
    std::vector<double> importance, load;
    double importance_cv2 = 0, load_cv2 = 0;
};

template <class T>
struct MoeOutput {
    Var<T> y;             // same shape as the input
    Var<T> aux_loss;      // scalar: importance + load losses
    Var<T> importance_loss, load_loss;
    MoeStats stats;
    Tensor<std::int64_t> expert_indices;  // [S, k] chosen experts
    Var<T> gates;                         // [S, k] renormalised top-k gates
};

// CV² of a 1-D Var (population variance), 0 for a single element.
template <class T>
Var<T> cv_squared(const Var<T>& v) {
    if (v.numel() <= 1) return Var<T>(Tensor<T>::zeros({}));
    Var<T> m = mean(v);
    return div(var(v, {}, /*correction=*/0), add(square(m), Var<T>(Tensor<T>::full({}, T(1e-10)))));
}

template <class T>
class MixtureOfExperts : public Module<MixtureOfExperts<T>, T> {
public:
    MixtureOfExperts() = default;
    MixtureOfExperts(std::int64_t dim, MoeOptions opt, Generator& gen = default_generator())
        : opt_(opt), dim_(dim) {
        if (opt_.hidden == 0) opt_.hidden = 4 * dim;
        const std::int64_t E = opt_.num_experts, H = opt_.hidden;
        POLYMATH_CHECK(dim > 0 && E >= 1 && H > 0, "nn::MixtureOfExperts", "bad sizes: dim=", dim, " experts=", E,
                       " hidden=", H);
        POLYMATH_CHECK(opt_.k >= 1 && opt_.k <= E, "nn::MixtureOfExperts", "k=", opt_.k, " must be in [1, ", E, "]");
        // Gates start at zero as in the paper's code: routing begins uniform
        // (plus noise) and is learned.
        w_gate = Var<T>(Tensor<T>::zeros({dim, E}), true);
        if (opt_.noisy_gating) w_noise = Var<T>(Tensor<T>::zeros({dim, E}), true);
        const double bound1 = 1.0 / std::sqrt(double(dim)), bound2 = 1.0 / std::sqrt(double(H));
        w1 = Var<T>(init::uniform<T>({E, dim, H}, -bound1, bound1, gen), true);
        w2 = Var<T>(init::uniform<T>({E, H, dim}, -bound2, bound2, gen), true);
        if (opt_.expert_bias) {
            b1 = Var<T>(init::uniform<T>({E, H}, -bound1, bound1, gen), true);
            b2 = Var<T>(init::uniform<T>({E, dim}, -bound2, bound2, gen), true);
        }
    }

    // Noise draws come from `gen` (default: default_generator()).
    void set_generator(Generator* g) noexcept { gen_ = g; }
    const MoeOptions& options() const noexcept { return opt_; }

    MoeOutput<T> forward(const Var<T>& x, const Tensor<std::uint8_t>& padding_mask = Tensor<std::uint8_t>()) const {
        POLYMATH_CHECK(w_gate.defined(), "nn::MixtureOfExperts", "used before construction");
        POLYMATH_CHECK(x.dim() >= 1 && x.size(-1) == dim_, "nn::MixtureOfExperts", "input of shape ", x.shape(),
                       " must end in dim=", dim_);
        const std::int64_t S = x.numel() / dim_, E = opt_.num_experts, K = opt_.k;
        if (padding_mask.defined())
            POLYMATH_CHECK(padding_mask.numel() == S, "nn::MixtureOfExperts", "padding_mask of shape ",
                           padding_mask.shape(), " must have one entry per token of ", x.shape());
        Var<T> xf = reshape(x, {S, dim_});
        Var<T> clean = matmul(xf, w_gate);
        const bool noisy = opt_.noisy_gating && this->is_training() && K < E;
        Var<T> logits = clean, noise_std;
        if (noisy) {
            noise_std = affine(softplus(matmul(xf, w_noise)), T(1), T(opt_.noise_epsilon));
            Var<T> noise(Tensor<T>::randn({S, E}, gen_ ? *gen_ : default_generator()));
            logits = add(clean, mul(noise, noise_std));
        }
        const std::int64_t m = noisy ? K + 1 : K;
        TopKVar<T> top = topk(logits, m, 1);
        Var<T> top_logits = m == K ? top.values : narrow(top.values, 1, 0, K);
        Tensor<std::int64_t> top_idx = m == K ? top.indices : top.indices.narrow(1, 0, K).contiguous();
        Var<T> gates = softmax(top_logits, 1);

        // Valid-token weights [S, 1] for the balance statistics.
        Tensor<T> valid = Tensor<T>::ones({S, 1});
        if (padding_mask.defined()) {
            const Tensor<std::uint8_t> pm = padding_mask.contiguous();
            for (std::int64_t s = 0; s < S; ++s) valid.data()[s] = pm.data()[s] ? T(0) : T(1);
        }
        const Var<T> valid_v(valid);

        // Dispatch, experts, combine.
        std::int64_t capacity = -1;
        std::int64_t valid_count = 0;
        for (std::int64_t s = 0; s < S; ++s) valid_count += valid.data()[s] != T(0);
        const double factor = this->is_training() ? opt_.capacity_factor : opt_.eval_capacity_factor;
        if (factor > 0) capacity = std::int64_t(std::ceil(factor * double(valid_count) * double(K) / double(E)));
        auto plan = std::make_shared<const ops::MoePlan>(ops::moe_plan(top_idx, E, capacity, padding_mask));
        Var<T> xs = moe_dispatch(xf, plan);
        Var<T> h = grouped_linear(xs, w1, b1, plan->expert_offsets);
        h = opt_.activation == Activation::relu ? relu(h) : gelu(h);
        Var<T> ys = grouped_linear(h, w2, b2, plan->expert_offsets);
        Var<T> y = moe_combine(ys, gates, plan);

        // Balance losses.
        Var<T> gates_valid = mul(gates, valid_v);
        Var<T> importance = sum(scatter_add(Var<T>(Tensor<T>::zeros({S, E})), 1, top_idx, gates_valid), {0});
        Var<T> load;
        if (noisy) {
            Var<T> th_in = narrow(top.values, 1, K, 1), th_out = narrow(top.values, 1, K - 1, 1);
            Tensor<bool> is_in = ops::gt(logits.value(), th_in.value());
            Var<T> p_in = normal_cdf(div(sub(clean, th_in), noise_std));
            Var<T> p_out = normal_cdf(div(sub(clean, th_out), noise_std));
            load = sum(mul(where(is_in, p_in, p_out), valid_v), {0});
        } else {
            Tensor<T> counts = Tensor<T>::zeros({E});
            for (std::int64_t e = 0; e < E; ++e) counts.data()[e] = T(plan->tokens_per_expert[std::size_t(e)]);
            if (capacity >= 0) {  // count routing decisions, not admissions
                counts.fill_(T(0));
                for (std::int64_t s = 0; s < S; ++s)
                    if (valid.data()[s] != T(0))
                        for (std::int64_t j = 0; j < K; ++j) counts.data()[top_idx.data()[s * K + j]] += T(1);
            }
            load = Var<T>(counts);
        }
        MoeOutput<T> out;
        out.importance_loss = affine(cv_squared(importance), T(opt_.importance_weight), T(0));
        out.load_loss = affine(cv_squared(load), T(opt_.load_weight), T(0));
        out.aux_loss = add(out.importance_loss, out.load_loss);
        out.y = reshape(y, x.shape());
        out.expert_indices = top_idx;
        out.gates = gates;
        out.stats.tokens_per_expert = plan->tokens_per_expert;
        out.stats.dropped = plan->dropped;
        out.stats.valid_tokens = plan->valid_tokens;
        for (double v : importance.value().template to<double>().to_vector()) out.stats.importance.push_back(v);
        for (double v : load.value().template to<double>().to_vector()) out.stats.load.push_back(v);
        out.stats.importance_cv2 = double(cv_squared(importance.detach()).item());
        out.stats.load_cv2 = double(cv_squared(load.detach()).item());
        return out;
    }
    MoeOutput<T> operator()(const Var<T>& x, const Tensor<std::uint8_t>& padding_mask = Tensor<std::uint8_t>()) const {
        return forward(x, padding_mask);
    }

    template <class V>
    void visit(V& v) {
        v.parameter("w_gate", w_gate);
        v.parameter("w_noise", w_noise);
        v.parameter("w1", w1);
        v.parameter("b1", b1);
        v.parameter("w2", w2);
        v.parameter("b2", b2);
    }

    Var<T> w_gate, w_noise;  // [d, E]
    Var<T> w1, b1;          // [E, d, H], [E, H]
    Var<T> w2, b2;          // [E, H, d], [E, d]

private:
    MoeOptions opt_;
    std::int64_t dim_ = 0;
    Generator* gen_ = nullptr;
};

}  // namespace polymath::nn
