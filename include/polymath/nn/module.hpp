// polymath/nn/module.hpp — what every layer is: a small value type that lists
// its parameters and sub-modules.
//
// A layer derives from nn::Module<Itself, T, D> and writes ONE function that
// names what it owns:
//
//   template <class T>
//   struct Affine : nn::Module<Affine<T>, T> {
//       Var<T> scale, shift;
//       nn::LayerNorm<T> norm{16};
//       template <class V> void visit(V& v) {
//           v.parameter("scale", scale);   // a Var leaf (undefined Vars are skipped)
//           v.parameter("shift", shift);
//           v.module("norm", norm);        // a sub-module: names become "norm.weight", ...
//       }
//   };
//
// From that one function the base gives parameters(), named_parameters()
// (stable dotted names: checkpoints, optimizers and the evolutionary masks key
// on them), train()/eval() (propagated to every sub-module), freeze()/
// unfreeze(), zero_grad(), num_parameters(), state_dict()/load_state_dict()
// and clone().
//
// Copying a module copies handles: the copy SHARES its parameters with the
// original (as two references to one PyTorch module would). clone() is the
// deep copy — fresh leaves with copied values, same requires_grad flags.
//
// Extensions (hook points for peft/): any module can carry a list of named
// Extension objects attached from outside (an adapter, a feature tap, a
// prompt). Their parameters appear in named_parameters()/state_dict() under
// "<module>.<extension name>.<parameter>", train()/eval() reach them, copies
// share them (like parameters) and clone() deep-copies them. A layer runs its
// extensions' apply() on its output by ending operator() with
// `return this->run_output_hooks(forward(x));` and announces that with
// `static constexpr bool runs_output_hooks = true;` (Linear and
// MultiheadAttention do; peft refuses to attach output hooks to a layer
// without the flag, since they would silently never run). for_each_module()
// walks the named sub-modules (dotted names as in named_parameters()).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "polymath/autograd/var.hpp"
#include "polymath/core/error.hpp"

namespace polymath::nn {

// Something attached to a module from outside (see the file comment).
template <class T, class D = Cpu>
class Extension {
public:
    using ParamFn = std::function<void(const std::string&, Var<T, D>&)>;
    virtual ~Extension() = default;
    // Transforms the output of the layer it is attached to (identity by default).
    virtual Var<T, D> apply(const Var<T, D>& y) { return y; }
    // Calls f(name, Var&) for each of its parameters (names relative to it).
    virtual void for_each_parameter(const ParamFn& f) { (void)f; }
    virtual void train(bool on) { (void)on; }
    // An independent deep copy (fresh parameter leaves).
    virtual std::shared_ptr<Extension> clone() const = 0;
};

template <class T, class D = Cpu>
struct NamedExtension {
    std::string name;
    std::shared_ptr<Extension<T, D>> ext;
};

template <class T, class D = Cpu>
struct NamedParameter {
    std::string name;
    Var<T, D> var;
};

// name -> tensor, ordered as visit() lists them.
template <class T, class D = Cpu>
using StateDict = std::vector<std::pair<std::string, Tensor<T, D>>>;

namespace detail {

// A visitor that calls on_param(full_name, Var&) for every defined parameter
// and descends into sub-modules with a longer prefix.
template <class F>
struct ParamWalker {
    std::string prefix;
    F* on_param;
    template <class Var_>
    void parameter(const std::string& name, Var_& v) {
        if (v.defined()) (*on_param)(prefix + name, v);
    }
    template <class M>
    void module(const std::string& name, M& m) {
        ParamWalker sub{prefix + name + ".", on_param};
        m.visit(sub);
        m.for_each_extension_parameter(sub.prefix, *on_param);
    }
};

// A visitor that calls on_module(dotted_name, Module&) for every sub-module,
// pre-order (a module before its children).
template <class F>
struct ModuleWalker {
    std::string prefix;
    F* on_module;
    template <class Var_>
    void parameter(const std::string&, Var_&) {}
    template <class M>
    void module(const std::string& name, M& m) {
        const std::string full = prefix + name;
        (*on_module)(full, m);
        ModuleWalker sub{full + ".", on_module};
        m.visit(sub);
    }
};

// Collects the names a module's visit() gives its direct parameters and children.
struct LocalNames {
    std::set<std::string> names;
    template <class Var_>
    void parameter(const std::string& n, Var_&) {
        names.insert(n);
    }
    template <class M>
    void module(const std::string& n, M&) {
        names.insert(n);
    }
};

// A visitor that calls on_module(Module&) for every direct sub-module.
template <class F>
struct ChildWalker {
    F* on_module;
    template <class Var_>
    void parameter(const std::string&, Var_&) {}
    template <class M>
    void module(const std::string&, M& m) {
        (*on_module)(m);
    }
};

}  // namespace detail

template <class Derived, class T, class D = Cpu>
class Module {
public:
    using value_type = T;
    using device_type = D;

    // Calls f(dotted_name, Var&) for every defined parameter, in visit() order.
    template <class F>
    void for_each_parameter(F&& f) {
        detail::ParamWalker<std::remove_reference_t<F>> w{"", &f};
        derived().visit(w);
        for_each_extension_parameter("", f);
    }

    // Calls f(dotted_name, sub_module&) for every sub-module below this one
    // (not this one), pre-order, names as in named_parameters(). f is called
    // with each concrete module type, so it is usually a generic lambda.
    template <class F>
    void for_each_module(F&& f) {
        detail::ModuleWalker<std::remove_reference_t<F>> w{"", &f};
        derived().visit(w);
    }

    // ---- extensions (see the file comment) ----
    const std::vector<NamedExtension<T, D>>& extensions() const noexcept { return extensions_; }
    // Attaches `ext` under `name`, after the ones already there (output hooks
    // run in attachment order). The name must be a new, non-empty, dot-free
    // name among this module's parameters, children and extensions.
    void add_extension(const std::string& name, std::shared_ptr<Extension<T, D>> ext) {
        POLYMATH_CHECK(ext != nullptr, "Module::add_extension", "extension '", name, "' is null");
        POLYMATH_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module::add_extension",
                       "extension name '", name, "' must be non-empty and contain no '.'");
        detail::LocalNames local;
        derived().visit(local);
        for (const auto& e : extensions_) local.names.insert(e.name);
        POLYMATH_CHECK(local.names.count(name) == 0, "Module::add_extension", "name '", name,
                       "' is already used by a parameter, sub-module or extension of this module");
        extensions_.push_back({name, std::move(ext)});
    }
    // Detaches the extension called `name`; false when there is none.
    bool remove_extension(const std::string& name) {
        for (auto it = extensions_.begin(); it != extensions_.end(); ++it)
            if (it->name == name) {
                extensions_.erase(it);
                return true;
            }
        return false;
    }
    // The output after every extension's apply(), in attachment order. With
    // no extensions this is y itself (the same Var, no op recorded).
    Var<T, D> run_output_hooks(Var<T, D> y) const {
        for (const auto& e : extensions_) y = e.ext->apply(y);
        return y;
    }
    // Calls f(prefix + extension name + "." + parameter name, Var&) for the
    // defined parameters of this module's own extensions (used by the walkers).
    template <class F>
    void for_each_extension_parameter(const std::string& prefix, F& f) {
        for (auto& e : extensions_)
            e.ext->for_each_parameter([&](const std::string& n, Var<T, D>& v) {
                if (v.defined()) f(prefix + e.name + "." + n, v);
            });
    }
    // Replaces every extension, here and in all sub-modules, by a deep copy
    // (clone() uses it so that the clone stops sharing them).
    void deep_copy_extensions() {
        for (auto& e : extensions_) e.ext = e.ext->clone();
        auto f = [](auto& child) { child.deep_copy_extensions(); };
        detail::ChildWalker<decltype(f)> w{&f};
        derived().visit(w);
    }

    std::vector<NamedParameter<T, D>> named_parameters(bool trainable_only = false) const {
        std::vector<NamedParameter<T, D>> out;
        mut().for_each_parameter([&](const std::string& n, Var<T, D>& v) {
            if (!trainable_only || v.requires_grad()) out.push_back({n, v});
        });
        return out;
    }
    // The parameter handles (sharing storage with the module): an optimizer
    // that updates their values in place updates the module.
    std::vector<Var<T, D>> parameters(bool trainable_only = false) const {
        std::vector<Var<T, D>> out;
        mut().for_each_parameter([&](const std::string&, Var<T, D>& v) {
            if (!trainable_only || v.requires_grad()) out.push_back(v);
        });
        return out;
    }
    std::int64_t num_parameters(bool trainable_only = false) const {
        std::int64_t n = 0;
        for (const auto& v : parameters(trainable_only)) n += v.numel();
        return n;
    }

    // Training mode (dropout on, MoE noise on) for this module and all below.
    Derived& train(bool on = true) {
        training_ = on;
        for (auto& e : extensions_) e.ext->train(on);
        auto f = [on](auto& child) { child.train(on); };
        detail::ChildWalker<decltype(f)> w{&f};
        derived().visit(w);
        return derived();
    }
    Derived& eval() { return train(false); }
    bool is_training() const noexcept { return training_; }

    // Stops (or restarts) gradient flow into every parameter.
    Derived& freeze() { return set_requires_grad(false); }
    Derived& unfreeze() { return set_requires_grad(true); }
    Derived& set_requires_grad(bool r) {
        for_each_parameter([r](const std::string&, Var<T, D>& v) { v.set_requires_grad(r); });
        return derived();
    }
    void zero_grad() {
        for_each_parameter([](const std::string&, Var<T, D>& v) { v.zero_grad(); });
    }

    // Values by name. The tensors share storage with the parameters.
    StateDict<T, D> state_dict() const {
        StateDict<T, D> out;
        mut().for_each_parameter([&](const std::string& n, Var<T, D>& v) { out.emplace_back(n, v.value()); });
        return out;
    }

    // Copies values into the parameters. Every name must match and every
    // shape agree; otherwise throws one Error listing all mismatches (missing,
    // unexpected, wrong shape) and changes nothing.
    void load_state_dict(const StateDict<T, D>& state) {
        std::map<std::string, const Tensor<T, D>*> given;
        for (const auto& [n, t] : state) given[n] = &t;
        std::ostringstream problems;
        int count = 0;
        std::vector<std::pair<Var<T, D>, const Tensor<T, D>*>> plan;
        for_each_parameter([&](const std::string& n, Var<T, D>& v) {
            auto it = given.find(n);
            if (it == given.end()) {
                problems << "\n  missing: '" << n << "' (expected shape " << v.shape() << ")";
                ++count;
                return;
            }
            if (it->second->shape() != v.shape()) {
                problems << "\n  shape mismatch: '" << n << "' model " << v.shape() << " vs given "
                         << it->second->shape();
                ++count;
            } else {
                plan.emplace_back(v, it->second);
            }
            given.erase(it);
        });
        for (const auto& [n, t] : given) {
            problems << "\n  unexpected: '" << n << "' (shape " << t->shape() << ")";
            ++count;
        }
        POLYMATH_CHECK(count == 0, "load_state_dict", count, " mismatch(es) between the model and the state:",
                       problems.str());
        for (auto& [v, t] : plan) {
            Tensor<T, D> dst = v.value();
            dst.copy_(*t);
        }
    }

    // Deep copy: same structure and values, independent parameters.
    Derived clone() const {
        Derived copy = derived();
        copy.deep_copy_extensions();
        copy.for_each_parameter([](const std::string&, Var<T, D>& v) {
            v = Var<T, D>(v.value().clone(), v.requires_grad());
        });
        return copy;
    }

protected:
    Module() = default;
    bool training_ = true;
    std::vector<NamedExtension<T, D>> extensions_;

private:
    Derived& derived() { return static_cast<Derived&>(*this); }
    const Derived& derived() const { return static_cast<const Derived&>(*this); }
    // The walkers take the module by non-const reference because visit() is
    // one function for reading and writing; the const members above only read.
    Derived& mut() const { return const_cast<Derived&>(derived()); }
};

// A run-time sized list of one module type; children are named "0", "1", ...
template <class M>
class ModuleList : public Module<ModuleList<M>, typename M::value_type, typename M::device_type> {
public:
    ModuleList() = default;
    explicit ModuleList(std::vector<M> items) : items_(std::move(items)) {}
    void push_back(M m) { items_.push_back(std::move(m)); }
    std::size_t size() const noexcept { return items_.size(); }
    bool empty() const noexcept { return items_.empty(); }
    M& operator[](std::size_t i) { return items_[i]; }
    const M& operator[](std::size_t i) const { return items_[i]; }
    M& at(std::size_t i) {
        POLYMATH_CHECK(i < items_.size(), "ModuleList", "index ", i, " out of range for ", items_.size(), " items");
        return items_[i];
    }
    auto begin() { return items_.begin(); }
    auto end() { return items_.end(); }
    auto begin() const { return items_.begin(); }
    auto end() const { return items_.end(); }

    template <class V>
    void visit(V& v) {
        for (std::size_t i = 0; i < items_.size(); ++i) v.module(std::to_string(i), items_[i]);
    }

private:
    std::vector<M> items_;
};

}  // namespace polymath::nn
