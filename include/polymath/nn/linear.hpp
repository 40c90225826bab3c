// polymath/nn/linear.hpp — y = x W^T + b over the last axis (torch.nn.Linear).
//
//   nn::Linear<float> fc(512, 10);            // weight [10, 512], bias [10]
//   Var<float> y = fc(x);                     // x [..., 512] -> y [..., 10]
//
// Init as torch.nn.Linear: weight and bias U(-1/sqrt(in), 1/sqrt(in)) (which
// is kaiming_uniform with a = sqrt(5)), drawn from the given Generator.
//
// Optional LoRA delta (peft/lora.hpp attaches it by name):
//   fc.add_lora({.rank = 4, .alpha = 8});   // lora_A [r, in] ~ U(±1/sqrt(in)), lora_B [out, r] = 0
//   y = x Wᵀ + b + (alpha / r) · (dropout(x) lora_Aᵀ) lora_Bᵀ
// The two factors are parameters "lora_A"/"lora_B" (visited only once
// defined, so a plain Linear's names are unchanged). merge_lora() folds the
// delta into W (W += scale · B·A) so that inference costs one GEMM;
// unmerge_lora() subtracts the same product again. Both products are computed
// identically, so unmerge restores W up to one rounding of each element
// (|ΔW| <= ulp(|W| + |scale·B·A|)), not bit for bit. While merged, forward()
// uses only W (A and B receive no gradient). operator() additionally runs the
// module's output hooks (nn/module.hpp); forward() does not.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/dropout.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

struct LinearOptions {
    bool bias = true;
};

// A low-rank delta W + (alpha / rank) · B·A (LoRA, arXiv 2106.09685).
struct LoraOptions {
    std::int64_t rank = 4;
    double alpha = 8;            // scale = alpha / rank
    double dropout = 0;          // on the input of the low-rank path, training mode only
    Generator* dropout_gen = nullptr;  // nullptr: default_generator()
};

namespace detail {
// Checks rank against a [out, in] matrix; `what` names the layer in the error.
inline void check_lora_rank(const LoraOptions& o, std::int64_t out, std::int64_t in, const std::string& what) {
    POLYMATH_CHECK(o.rank >= 1 && o.rank <= std::min(in, out), "add_lora", what, ": rank ", o.rank,
                   " must be in [1, min(in, out)] for a weight of shape [", out, ", ", in, "]");
    POLYMATH_CHECK(o.dropout >= 0 && o.dropout < 1, "add_lora", what, ": dropout ", o.dropout, " not in [0, 1)");
}
}  // namespace detail

template <class T>
class Linear : public Module<Linear<T>, T> {
public:
    Linear() = default;
    Linear(std::int64_t in_features, std::int64_t out_features, LinearOptions opt = {},
           Generator& gen = default_generator())
        : in_(in_features), out_(out_features) {
        POLYMATH_CHECK(in_features > 0 && out_features > 0, "nn::Linear",
                       "features must be positive, got in=", in_features, " out=", out_features);
        const double bound = 1.0 / std::sqrt(double(in_features));
        weight = Var<T>(init::uniform<T>({out_features, in_features}, -bound, bound, gen), true);
        if (opt.bias) bias = Var<T>(init::uniform<T>({out_features}, -bound, bound, gen), true);
    }

    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(weight.defined(), "nn::Linear", "used before construction (default-constructed layer)");
        POLYMATH_CHECK(x.dim() >= 1 && x.size(-1) == in_, "nn::Linear", "input shape ", x.shape(),
                       " does not end in in_features=", in_);
        Var<T> y = matmul(x, transpose(weight, 0, 1));
        if (bias.defined()) y = add(y, bias);
        if (lora_A.defined() && !lora_merged_) {
            // Added after the bias so that a zero B leaves y exactly as without LoRA.
            const Var<T> xin = lora_.dropout > 0 ? dropout(x, lora_.dropout, this->is_training(),
                                                           lora_.dropout_gen ? *lora_.dropout_gen : default_generator())
                                                 : x;
            Var<T> d = matmul(matmul(xin, transpose(lora_A, 0, 1)), transpose(lora_B, 0, 1));
            y = add(y, d * T(lora_scale()));
        }
        return y;
    }
    static constexpr bool runs_output_hooks = true;
    Var<T> operator()(const Var<T>& x) const { return this->run_output_hooks(forward(x)); }

    std::int64_t in_features() const noexcept { return in_; }
    std::int64_t out_features() const noexcept { return out_; }

    // ---- LoRA (see the file comment) ----
    void add_lora(const LoraOptions& o, Generator& gen = default_generator()) {
        POLYMATH_CHECK(weight.defined(), "nn::Linear::add_lora", "layer used before construction");
        POLYMATH_CHECK(!lora_A.defined(), "nn::Linear::add_lora", "this layer [", out_, ", ", in_,
                       "] already has a LoRA delta");
        detail::check_lora_rank(o, out_, in_, "nn::Linear");
        const double bound = 1.0 / std::sqrt(double(in_));
        lora_A = Var<T>(init::uniform<T>({o.rank, in_}, -bound, bound, gen), true);
        lora_B = Var<T>(Tensor<T>::zeros({out_, o.rank}), true);
        lora_ = o;
        lora_merged_ = false;
    }
    // Drops the delta (unmerging first if merged).
    void remove_lora() {
        if (lora_merged_) unmerge_lora();
        lora_A = Var<T>();
        lora_B = Var<T>();
    }
    bool has_lora() const noexcept { return lora_A.defined(); }
    bool lora_merged() const noexcept { return lora_merged_; }
    double lora_scale() const noexcept { return lora_.alpha / double(lora_.rank); }
    const LoraOptions& lora_options() const noexcept { return lora_; }
    void merge_lora() {
        POLYMATH_CHECK(lora_A.defined(), "nn::Linear::merge_lora", "layer has no LoRA delta");
        if (!lora_merged_) fold(T(lora_scale()));
        lora_merged_ = true;
    }
    void unmerge_lora() {
        POLYMATH_CHECK(lora_A.defined(), "nn::Linear::unmerge_lora", "layer has no LoRA delta");
        if (lora_merged_) fold(T(-lora_scale()));
        lora_merged_ = false;
    }

    template <class V>
    void visit(V& v) {
        v.parameter("weight", weight);
        v.parameter("bias", bias);
        v.parameter("lora_A", lora_A);
        v.parameter("lora_B", lora_B);
    }

    Var<T> weight;  // [out, in]
    Var<T> bias;    // [out], undefined when LinearOptions::bias is false
    Var<T> lora_A;  // [r, in], undefined unless add_lora()
    Var<T> lora_B;  // [out, r]

private:
    // W += s · B·A, in place (the parameter handle keeps its storage).
    void fold(T s) {
        Tensor<T> delta = ops::matmul(lora_B.value(), lora_A.value());
        ops::add_(weight.value(), delta, s);
    }

    std::int64_t in_ = 0, out_ = 0;
    LoraOptions lora_{};
    bool lora_merged_ = false;
};

}  // namespace polymath::nn
