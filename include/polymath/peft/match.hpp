// polymath/peft/match.hpp — finding a model's sub-modules by dotted name.
//
//   peft::glob_match("encoder.*.attention", "encoder.3.attention")   // true
//   peft::glob_match("encoder.**", "encoder.3.attention.out_proj")   // true
//   peft::for_each_target(model, "encoder.*.fc", "add_adapters", f); // f(name, module&)
//
// Names are the ones named_parameters() uses (nn::Module::for_each_module).
// In a pattern, '*' matches any run of characters inside one dotted component
// (no '.'), '**' any run including dots, everything else itself; '|'
// separates alternatives ("embed|blocks.*.fc"). The model
// itself (the root, name "") is never a target: wrap the layer you want.
//
// The PEFT wrappers (add_lora, add_adapters, add_prompts, tap_features) all
// resolve patterns here, so they share one rule: every matched module whose
// type can take the wrapper gets it, other matched modules are skipped, and
// when nothing can take it an Error names the pattern, the matched modules of
// the wrong type, and every module and parameter name of the model.
#pragma once
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::peft {

// Whether `name` matches `pattern` (see the file comment).
inline bool glob_match(std::string_view pat, std::string_view name) {
    if (pat.empty()) return name.empty();
    if (pat.size() >= 2 && pat[0] == '*' && pat[1] == '*') {
        for (std::size_t i = 0; i <= name.size(); ++i)
            if (glob_match(pat.substr(2), name.substr(i))) return true;
        return false;
    }
    if (pat[0] == '*') {
        for (std::size_t i = 0; i <= name.size(); ++i) {
            if (glob_match(pat.substr(1), name.substr(i))) return true;
            if (i < name.size() && name[i] == '.') return false;
        }
        return false;
    }
    return !name.empty() && pat[0] == name[0] && glob_match(pat.substr(1), name.substr(1));
}

// Whether `name` matches one of the '|'-separated alternatives of `pattern`.
inline bool glob_match_any(const std::string& pattern, const std::string& name) {
    std::size_t start = 0;
    while (true) {
        const std::size_t bar = pattern.find('|', start);
        if (glob_match(pattern.substr(start, bar == std::string::npos ? std::string::npos : bar - start), name))
            return true;
        if (bar == std::string::npos) return false;
        start = bar + 1;
    }
}

// Whether layer type M runs its output hooks (nn/module.hpp).
template <class M>
constexpr bool runs_output_hooks() {
    if constexpr (requires { M::runs_output_hooks; })
        return bool(M::runs_output_hooks);
    else
        return false;
}

// Every sub-module name, pre-order.
template <class Model>
std::vector<std::string> module_names(Model& model) {
    std::vector<std::string> out;
    model.for_each_module([&](const std::string& n, auto&) { out.push_back(n); });
    return out;
}

namespace detail {
template <class Model>
std::string describe_names(Model& model) {
    std::ostringstream os;
    os << "\n  modules:";
    const auto mods = module_names(model);
    if (mods.empty()) os << " (none)";
    for (const auto& n : mods) os << ' ' << n;
    os << "\n  parameters:";
    for (const auto& p : model.named_parameters()) os << ' ' << p.name;
    return os.str();
}
}  // namespace detail

// Throws the "nothing to wrap" Error for `op` (see the file comment).
template <class Model>
[[noreturn]] void throw_no_target(Model& model, const std::string& op, const std::string& pattern,
                                  const std::string& wanted, const std::vector<std::string>& wrong_type) {
    std::ostringstream os;
    os << "pattern '" << pattern << "' matches no " << wanted << " of the model";
    if (!wrong_type.empty()) {
        os << " (matched but of another type:";
        for (const auto& n : wrong_type) os << ' ' << n;
        os << ")";
    }
    os << detail::describe_names(model);
    POLYMATH_THROW(op, os.str());
}

// Calls accept(name, module&) for every sub-module whose name matches; accept
// returns whether that module's type can take the wrapper. Throws the
// no-target Error when none could.
template <class Model, class F>
std::vector<std::string> for_each_target(Model& model, const std::string& pattern, const std::string& op,
                                         const std::string& wanted, F&& accept) {
    std::vector<std::string> taken, wrong;
    model.for_each_module([&](const std::string& n, auto& m) {
        if (!glob_match_any(pattern, n)) return;
        if (accept(n, m))
            taken.push_back(n);
        else
            wrong.push_back(n);
    });
    if (taken.empty()) throw_no_target(model, op, pattern, wanted, wrong);
    return taken;
}

// Removes the extension called `name` from the model and every sub-module;
// returns how many were removed.
template <class Model>
int remove_extensions(Model& model, const std::string& name) {
    int n = model.remove_extension(name) ? 1 : 0;
    model.for_each_module([&](const std::string&, auto& m) { n += m.remove_extension(name) ? 1 : 0; });
    return n;
}

}  // namespace polymath::peft
