// polymath/peft/prompt.hpp — learnable prompt tokens: prompt tuning, CoOp
// context, VPT shallow and deep.
//
//   peft::Prompt<float> p(/*tokens=*/8, /*dim=*/256);
//   Var<float> z = p.prepend(x, /*max_length=*/128);   // x [B, L, 256] -> [B, 8 + L, 256]
//   Var<float> z2 = p2.replace(z);                     // VPT-deep: positions 0..7 become p2's tokens
//
//   peft::add_prompts(model, "embed", {.tokens = 8, .max_length = 128});             // VPT shallow
//   peft::add_prompts(model, "embed|blocks.*", {.tokens = 8, .deep = true, ...});     // see below
//
// Semantics. prepend: concat([tokens broadcast over the batch, x], axis 1).
// replace: x's first P positions (the previous layer's outputs at the prompt
// positions) are dropped and this prompt's tokens put there; the length stays
// the same — VPT-deep's "new prompts at every layer". CoOp's learnable context
// is the same primitive (prepend the context to the class-name tokens).
//
// add_prompts attaches a Prompt as an output hook (extension "prompt") to each
// matched module that runs output hooks, in walk order. Shallow: each target
// prepends. Deep: the FIRST target prepends (the input, usually the
// embedding's output) and every later target replaces (put the prompt of
// layer i+1 on the output of layer i). max_length (0 = unchecked) is the model's maximum sequence length:
// prepending to a sequence of L tokens throws when L + P > max_length, naming
// both. Tokens are initialised U(±sqrt(6 / (P + d))) (VPT's xavier-uniform).
#pragma once
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "polymath/autograd/join.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/peft/adapter.hpp"
#include "polymath/peft/extension.hpp"
#include "polymath/peft/match.hpp"

namespace polymath::peft {

enum class PromptMode { Prepend, Replace };

template <class T>
class Prompt : public nn::Module<Prompt<T>, T> {
public:
    Prompt() = default;
    Prompt(std::int64_t num_tokens, std::int64_t dim, Generator& gen = default_generator(),
           PromptMode mode = PromptMode::Prepend, std::int64_t max_length = 0)
        : mode_(mode), max_length_(max_length) {
        POLYMATH_CHECK(num_tokens > 0 && dim > 0, "peft::Prompt", "num_tokens=", num_tokens, " and dim=", dim,
                       " must be positive");
        const double bound = std::sqrt(6.0 / double(num_tokens + dim));
        tokens = Var<T>(nn::init::uniform<T>({num_tokens, dim}, -bound, bound, gen), true);
    }

    // x [B, L, d] -> [B, P + L, d].
    Var<T> prepend(const Var<T>& x, std::int64_t max_length = 0) const {
        check(x, "prepend");
        if (max_length > 0)
            POLYMATH_CHECK(x.size(1) + num_tokens() <= max_length, "peft::Prompt::prepend", "sequence of ",
                           x.size(1), " tokens (input ", x.shape(), ") plus ", num_tokens(),
                           " prompt tokens exceeds the model's maximum length ", max_length);
        return concat({batch_tokens(x.size(0)), x}, 1);
    }
    // x [B, L, d] with L >= P -> [B, L, d], positions [0, P) replaced.
    Var<T> replace(const Var<T>& x) const {
        check(x, "replace");
        const std::int64_t P = num_tokens();
        POLYMATH_CHECK(x.size(1) >= P, "peft::Prompt::replace", "input ", x.shape(), " is shorter than the ", P,
                       " prompt positions it should replace (was a prompt prepended before this layer?)");
        if (x.size(1) == P) return batch_tokens(x.size(0));
        return concat({batch_tokens(x.size(0)), narrow(x, 1, P, x.size(1) - P)}, 1);
    }
    // As an output hook: prepend or replace, by the mode given at construction.
    Var<T> forward(const Var<T>& x) const { return mode_ == PromptMode::Prepend ? prepend(x, max_length_) : replace(x); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    std::int64_t num_tokens() const { return tokens.size(0); }
    std::int64_t dim() const { return tokens.size(1); }
    PromptMode mode() const noexcept { return mode_; }

    template <class V>
    void visit(V& v) {
        v.parameter("tokens", tokens);
    }

    Var<T> tokens;  // [P, d]

private:
    Var<T> batch_tokens(std::int64_t B) const {
        return expand(unsqueeze(tokens, 0), Shape{B, num_tokens(), dim()});
    }
    void check(const Var<T>& x, const char* what) const {
        POLYMATH_CHECK(tokens.defined(), "peft::Prompt", "used before construction");
        POLYMATH_CHECK(x.dim() == 3 && x.size(2) == dim(), std::string("peft::Prompt::") + what, "input ", x.shape(),
                       " must be [B, L, dim=", dim(), "]");
    }
    PromptMode mode_ = PromptMode::Prepend;
    std::int64_t max_length_ = 0;
};

struct PromptOptions {
    std::int64_t tokens = 8;
    std::int64_t max_length = 0;  // 0: no check
    bool deep = false;            // VPT-deep (see the file comment)
    std::int64_t features = 0;    // 0: infer from the layer
    std::string name = "prompt";
};

// Attaches prompts (see the file comment); returns the targets' names in order.
template <class Model>
std::vector<std::string> add_prompts(Model& model, const std::string& pattern, const PromptOptions& opt,
                                     Generator& gen = default_generator()) {
    using T = typename Model::value_type;
    POLYMATH_CHECK(opt.tokens > 0, "peft::add_prompts", "tokens=", opt.tokens, " must be positive");
    std::vector<std::function<void()>> actions;
    std::vector<std::string> names, wrong;
    model.for_each_module([&](const std::string& n, auto& m) {
        if (!glob_match_any(pattern, n)) return;
        using M = std::remove_reference_t<decltype(m)>;
        if constexpr (runs_output_hooks<M>()) {
            const std::int64_t d = opt.features > 0 ? opt.features : detail::output_features(m);
            POLYMATH_CHECK(d > 0, "peft::add_prompts", "cannot tell the feature size of '", n,
                           "'; set PromptOptions::features");
            if (opt.max_length > 0)
                POLYMATH_CHECK(opt.tokens < opt.max_length, "peft::add_prompts", opt.tokens,
                               " prompt tokens leave no room under the maximum length ", opt.max_length);
            for (const auto& e : m.extensions())
                POLYMATH_CHECK(e.name != opt.name, "peft::add_prompts", "module '", n,
                               "' already has an extension named '", opt.name, "'");
            const PromptMode mode = (!opt.deep || names.empty()) ? PromptMode::Prepend : PromptMode::Replace;
            names.push_back(n);
            actions.push_back([&m, d, mode, &opt, &gen] {
                m.add_extension(opt.name, std::make_shared<ModuleExtension<Prompt<T>>>(
                                              Prompt<T>(opt.tokens, d, gen, mode, opt.max_length)));
            });
        } else {
            wrong.push_back(n);
        }
    });
    if (names.empty()) throw_no_target(model, "peft::add_prompts", pattern, "module that runs output hooks", wrong);
    for (auto& a : actions) a();
    return names;
}

}  // namespace polymath::peft
