// polymath/autograd/var.hpp — Var<T, D>: a tensor that records how it was made.
//
// A Var is a handle to (value, grad, node). Ops on Vars compute their value
// with the tensor kernels of ops/ and, when grad mode is on and an input
// requires grad, record one Node holding a backward closure. backward() walks
// the nodes in reverse topological order, accumulating gradients: leaves keep
// theirs in grad() (summed over backward calls until zero_grad()),
// intermediate results hand theirs on and drop them.
//
// After backward() the graph's saved tensors are released (unless
// retain_graph); a second backward through it throws polymath::Error.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "polymath/autograd/grad_mode.hpp"
#include "polymath/core/error.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath {

template <class T, class D>
class Var;

namespace autograd {

template <class T, class D>
struct VarImpl;

// Passed to a backward closure: where the input gradients go.
template <class T, class D>
class GradSink {
public:
    GradSink(const char* op, std::vector<std::shared_ptr<VarImpl<T, D>>>& inputs) : op_(op), inputs_(inputs) {}
    // Whether input i needs a gradient (skip computing it otherwise).
    bool needs(std::size_t i) const { return i < inputs_.size() && inputs_[i] && inputs_[i]->requires_grad; }
    // Adds g to input i's gradient. g must have input i's shape.
    void add(std::size_t i, Tensor<T, D> g);

private:
    const char* op_;
    std::vector<std::shared_ptr<VarImpl<T, D>>>& inputs_;
};

template <class T, class D>
using BackwardFn = std::function<void(const Tensor<T, D>& grad_out, GradSink<T, D>& sink)>;

template <class T, class D>
struct Node {
    const char* name;
    std::vector<std::shared_ptr<VarImpl<T, D>>> inputs;  // null where an input needs no grad
    BackwardFn<T, D> backward;
    bool freed = false;
};

template <class T, class D>
struct VarImpl {
    Tensor<T, D> value;
    Tensor<T, D> grad;     // leaves: the accumulated gradient
    Tensor<T, D> pending;  // non-leaves: gradient being summed during one backward
    bool grad_owned = false;
    bool pending_owned = false;
    bool requires_grad = false;
    bool retain_grad = false;
    std::shared_ptr<Node<T, D>> node;  // null for leaves
    std::uint64_t visit_epoch = 0;
};

namespace detail {
inline std::uint64_t next_epoch() {
    static thread_local std::uint64_t epoch = 0;
    return ++epoch;
}

// dst (+)= g, copying only when dst is shared with someone else.
template <class T, class D>
void accumulate(Tensor<T, D>& dst, bool& owned, Tensor<T, D>&& g);
}  // namespace detail

}  // namespace autograd

template <class T, class D = Cpu>
class Var {
public:
    using value_type = T;
    using device_type = D;
    using Impl = autograd::VarImpl<T, D>;

    Var() = default;
    // A leaf holding `value`.
    explicit Var(Tensor<T, D> value, bool requires_grad = false) : impl_(std::make_shared<Impl>()) {
        value.check_defined("Var");
        impl_->value = std::move(value);
        impl_->requires_grad = requires_grad;
    }
    // Wraps an existing impl (used by ops).
    explicit Var(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

    bool defined() const noexcept { return impl_ != nullptr; }
    const Tensor<T, D>& value() const { return checked()->value; }
    // Gradient after backward() (undefined before, or if none flowed here).
    const Tensor<T, D>& grad() const { return checked()->grad; }
    bool requires_grad() const { return checked()->requires_grad; }
    bool is_leaf() const { return checked()->node == nullptr; }
    // Name of the op that made this Var, or "leaf".
    std::string op_name() const { return is_leaf() ? "leaf" : checked()->node->name; }

    Var& set_requires_grad(bool r = true) {
        POLYMATH_CHECK(is_leaf(), "set_requires_grad",
                       "only leaves can change requires_grad; this Var was made by op '", op_name(),
                       "' (use detach() first)");
        impl_->requires_grad = r;
        return *this;
    }
    // Keep the gradient of a non-leaf in grad() after backward.
    Var& retain_grad() {
        checked()->retain_grad = true;
        return *this;
    }
    void zero_grad() {
        checked()->grad = Tensor<T, D>();
        impl_->grad_owned = false;
    }
    // A leaf sharing this value, cut from the graph.
    Var detach() const { return Var(value(), false); }

    const Shape& shape() const { return value().shape(); }
    int dim() const { return value().dim(); }
    std::int64_t numel() const { return value().numel(); }
    std::int64_t size(std::int64_t d) const { return value().size(d); }
    T item() const { return value().item(); }

    // Backpropagates from this scalar (seed 1).
    void backward(bool retain_graph = false) {
        POLYMATH_CHECK(numel() == 1, "backward",
                       "called on a non-scalar output of shape ", shape(), " (op '", op_name(),
                       "') without a seed gradient; pass a gradient tensor of that shape");
        backward(Tensor<T, D>::ones(shape()), retain_graph);
    }
    // Backpropagates `seed` (same shape as this Var).
    void backward(const Tensor<T, D>& seed, bool retain_graph = false);

    const std::shared_ptr<Impl>& impl() const { return impl_; }

private:
    const std::shared_ptr<Impl>& checked() const {
        POLYMATH_CHECK(impl_ != nullptr, "Var", "use of an undefined Var");
        return impl_;
    }
    std::shared_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------
namespace autograd {

namespace detail {
// The one recording path behind both make_result overloads: `input(i)` gives
// the i-th input Var (pointer), i < n.
template <class T, class D, class Input, class F>
Var<T, D> record(const char* name, Tensor<T, D> value, std::size_t n, Input&& input, F&& backward) {
    auto impl = std::make_shared<VarImpl<T, D>>();
    impl->value = std::move(value);
    if (GradMode::is_enabled()) {
        bool any = false;
        for (std::size_t i = 0; i < n; ++i) any = any || (input(i)->defined() && input(i)->requires_grad());
        if (any) {
            auto node = std::make_shared<Node<T, D>>();
            node->name = name;
            node->inputs.reserve(n);
            for (std::size_t i = 0; i < n; ++i) {
                const Var<T, D>* v = input(i);
                node->inputs.push_back(v->defined() && v->requires_grad() ? v->impl() : nullptr);
            }
            node->backward = std::forward<F>(backward);
            impl->node = std::move(node);
            impl->requires_grad = true;
        }
    }
    return Var<T, D>(std::move(impl));
}
}  // namespace detail

// Builds an op result. Records a node only when grad mode is on and some
// input requires grad; `backward` is then called once per backward pass.
template <class T, class D, class F>
Var<T, D> make_result(const char* name, Tensor<T, D> value, std::initializer_list<const Var<T, D>*> inputs,
                      F&& backward) {
    const Var<T, D>* const* in = inputs.begin();
    return detail::record(name, std::move(value), inputs.size(), [in](std::size_t i) { return in[i]; },
                          std::forward<F>(backward));
}

// Same, for ops with a run-time number of inputs (concat, stack).
template <class T, class D, class F>
Var<T, D> make_result(const char* name, Tensor<T, D> value, const std::vector<Var<T, D>>& inputs, F&& backward) {
    return detail::record(name, std::move(value), inputs.size(), [&inputs](std::size_t i) { return &inputs[i]; },
                          std::forward<F>(backward));
}

}  // namespace autograd

}  // namespace polymath

#include "polymath/autograd/engine.hpp"
