// polymath/peft/lora.hpp — LoRA by name: W x + (alpha / r) · B A x on chosen layers.
//
//   peft::add_lora(model, "encoder.*.attention", {.rank = 4, .alpha = 8});  // Q and V slices
//   peft::add_lora(model, "encoder.*.attention.k", {.rank = 2});            // only K
//   peft::add_lora(model, "**.fc", {.rank = 8}, gen);                       // every Linear named fc
//   peft::freeze_base(model);            // peft/freeze.hpp: only the lora_* factors train
//   peft::merge_lora(model);             // inference: deltas folded into W
//
// Targets (patterns as in peft/match.hpp):
//   - an nn::Linear: its weight gets the delta (parameters "<name>.lora_A" [r, in]
//     and "<name>.lora_B" [out, r]);
//   - an nn::MultiheadAttention named X: matching X gives the slices in
//     LoraConfig::attention_slices (default "qv", the LoRA paper's choice);
//     matching "X.q", "X.k" or "X.v" (and not X itself) gives that slice of
//     in_proj_weight ("X.lora_q_A", "X.lora_q_B", ...). "X.out_proj" is an
//     ordinary Linear.
// Other matched module types are skipped (so "encoder.**" means "every Linear
// and attention under encoder"). A is drawn U(±1/sqrt(in)) from `gen`, B is
// zero, so the wrapped model starts exactly equal to the original.
//
// Errors, raised before any layer is changed: nothing to wrap (the message
// lists the model's module and parameter names), rank outside [1, min(out, in)]
// (naming the layer and its weight shape), a layer that already has LoRA.
// Merge/unmerge semantics (and their rounding) are nn::Linear's; see nn/linear.hpp.
#pragma once
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "polymath/nn/attention.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/peft/match.hpp"

namespace polymath::peft {

struct LoraConfig {
    std::int64_t rank = 4;
    double alpha = 8;
    double dropout = 0;
    Generator* dropout_gen = nullptr;
    std::string attention_slices = "qv";  // used when a pattern names a whole MultiheadAttention
};

namespace detail {
template <class M>
struct is_linear : std::false_type {};
template <class T>
struct is_linear<nn::Linear<T>> : std::true_type {};
template <class M>
struct is_attention : std::false_type {};
template <class T>
struct is_attention<nn::MultiheadAttention<T>> : std::true_type {};

inline int slice_index(char c) { return c == 'q' ? 0 : c == 'k' ? 1 : c == 'v' ? 2 : -1; }
}  // namespace detail

// Adds LoRA to every Linear / attention slice that `pattern` names; returns
// the wrapped targets' names ("enc.0.fc", "enc.0.attention.q", ...).
template <class Model>
std::vector<std::string> add_lora(Model& model, const std::string& pattern, const LoraConfig& cfg,
                                  Generator& gen = default_generator()) {
    const nn::LoraOptions opt{cfg.rank, cfg.alpha, cfg.dropout, cfg.dropout_gen};
    for (char c : cfg.attention_slices)
        POLYMATH_CHECK(detail::slice_index(c) >= 0, "peft::add_lora", "attention_slices '", cfg.attention_slices,
                       "' may only contain q, k, v");
    // Pass 1 validates and records what to do; pass 2 (below) changes layers,
    // so that an Error leaves the model untouched.
    std::vector<std::function<void()>> actions;
    std::vector<std::string> names, wrong;
    model.for_each_module([&](const std::string& n, auto& m) {
        using M = std::remove_reference_t<decltype(m)>;
        if constexpr (detail::is_linear<M>::value) {
            if (!glob_match_any(pattern, n)) return;
            POLYMATH_CHECK(!m.has_lora(), "peft::add_lora", "layer '", n, "' already has LoRA");
            nn::detail::check_lora_rank(opt, m.out_features(), m.in_features(), "layer '" + n + "'");
            names.push_back(n);
            actions.push_back([&m, opt, &gen] { m.add_lora(opt, gen); });
        } else if constexpr (detail::is_attention<M>::value) {
            // The module's own name gives the default slices; "X.q" etc. count only
            // when the pattern does not name X itself (so "**" means the defaults).
            std::string slices;
            if (glob_match_any(pattern, n))
                slices = cfg.attention_slices;
            else
                for (char c : std::string("qkv"))
                    if (glob_match_any(pattern, n + "." + c)) slices += c;
            for (char c : slices) {
                const int s = detail::slice_index(c);
                const std::string target = n + "." + c;
                POLYMATH_CHECK(!m.has_lora(s), "peft::add_lora", "attention slice '", target, "' already has LoRA");
                nn::detail::check_lora_rank(opt, m.embed_dim(), m.embed_dim(), "attention slice '" + target + "'");
                names.push_back(target);
                actions.push_back([&m, s, opt, &gen] { m.add_lora(s, opt, gen); });
            }
        } else {
            if (glob_match_any(pattern, n)) wrong.push_back(n);
        }
    });
    if (names.empty()) throw_no_target(model, "peft::add_lora", pattern, "nn::Linear or nn::MultiheadAttention", wrong);
    for (auto& a : actions) a();
    return names;
}

// Shorthand: add_lora(model, pattern, rank, alpha).
template <class Model>
std::vector<std::string> add_lora(Model& model, const std::string& pattern, std::int64_t rank, double alpha,
                                  Generator& gen = default_generator()) {
    return add_lora(model, pattern, LoraConfig{.rank = rank, .alpha = alpha}, gen);
}

namespace detail {
// Calls f(layer) for the Linear layers with LoRA and f(attention, slice) for
// attention slices with LoRA; returns how many.
template <class Model, class FL, class FA>
int for_each_lora(Model& model, FL&& on_linear, FA&& on_slice) {
    int n = 0;
    auto visit = [&](auto& m) {
        using M = std::remove_reference_t<decltype(m)>;
        if constexpr (is_linear<M>::value) {
            if (m.has_lora()) on_linear(m), ++n;
        } else if constexpr (is_attention<M>::value) {
            for (int s = 0; s < 3; ++s)
                if (m.has_lora(s)) on_slice(m, s), ++n;
        }
    };
    visit(model);
    model.for_each_module([&](const std::string&, auto& m) { visit(m); });
    return n;
}
}  // namespace detail

// Folds every LoRA delta of the model into its weight (no-op where merged);
// returns the number of deltas.
template <class Model>
int merge_lora(Model& model) {
    return detail::for_each_lora(model, [](auto& l) { l.merge_lora(); }, [](auto& a, int s) { a.merge_lora(s); });
}
// Takes every merged delta out of its weight again.
template <class Model>
int unmerge_lora(Model& model) {
    return detail::for_each_lora(model, [](auto& l) { l.unmerge_lora(); }, [](auto& a, int s) { a.unmerge_lora(s); });
}
// Drops every LoRA delta (unmerging first).
template <class Model>
int remove_lora(Model& model) {
    return detail::for_each_lora(model, [](auto& l) { l.remove_lora(); }, [](auto& a, int s) { a.remove_lora(s); });
}

}  // namespace polymath::peft
