// polymath/autograd/engine.hpp — reverse-mode traversal of the recorded graph.
//
// backward() orders the graph once (iterative DFS, visit marks by epoch, no
// hashing), seeds the root, then runs each node's closure in reverse
// topological order so that a node runs only after all gradient contributions
// to its output have been summed.
#pragma once
#include <utility>
#include <vector>

#include "polymath/autograd/var.hpp"

namespace polymath {
namespace autograd {
namespace detail {

template <class T, class D>
void accumulate(Tensor<T, D>& dst, bool& owned, Tensor<T, D>&& g) {
    if (!dst.defined()) {
        dst = std::move(g);
        owned = false;  // may alias another gradient or a saved tensor
        return;
    }
    static_assert(std::is_same_v<D, Cpu>, "autograd accumulate: only the CPU path is built here");
    if (!owned) {
        dst = dst.clone();  // contiguous, private
        owned = true;
    }
    const Tensor<T, D> src = g.contiguous();
    T* d = dst.data();
    const T* s = src.data();
    parallel_for(0, dst.numel(), kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) d[i] += s[i];
    });
}

}  // namespace detail

template <class T, class D>
void GradSink<T, D>::add(std::size_t i, Tensor<T, D> g) {
    if (!needs(i)) return;
    VarImpl<T, D>& in = *inputs_[i];
    POLYMATH_CHECK(g.shape() == in.value.shape(), op_, "backward produced a gradient of shape ", g.shape(),
                   " for input ", i, " of shape ", in.value.shape(), " (internal error)");
    if (in.node == nullptr) {  // leaf: the user-visible gradient
        autograd::detail::accumulate(in.grad, in.grad_owned, std::move(g));
        return;
    }
    if (in.retain_grad) autograd::detail::accumulate(in.grad, in.grad_owned, Tensor<T, D>(g));
    autograd::detail::accumulate(in.pending, in.pending_owned, std::move(g));
}

}  // namespace autograd

template <class T, class D>
void Var<T, D>::backward(const Tensor<T, D>& seed, bool retain_graph) {
    using namespace autograd;
    Impl* root = checked().get();
    POLYMATH_CHECK(root->requires_grad, "backward", "this Var (op '", op_name(),
                   "') does not require grad: no input of the graph has requires_grad set");
    POLYMATH_CHECK(seed.defined() && seed.shape() == shape(), "backward", "seed gradient of shape ",
                   seed.defined() ? seed.shape() : Shape{}, " does not match the output shape ", shape());
    if (root->node == nullptr) {  // backward on a leaf: its gradient is the seed
        Tensor<T, D> s = seed;
        autograd::detail::accumulate(root->grad, root->grad_owned, std::move(s));
        return;
    }
    // Reverse topological order: post-order DFS, then walk backwards.
    const std::uint64_t epoch = autograd::detail::next_epoch();
    std::vector<Impl*> order;
    std::vector<std::pair<Impl*, std::size_t>> stack;
    stack.emplace_back(root, 0);
    root->visit_epoch = epoch;
    while (!stack.empty()) {
        auto& [v, next] = stack.back();
        Node<T, D>* n = v->node.get();
        if (n && next < n->inputs.size()) {
            Impl* in = n->inputs[next++].get();
            if (in && in->node && in->visit_epoch != epoch) {
                in->visit_epoch = epoch;
                stack.emplace_back(in, 0);
            }
            continue;
        }
        order.push_back(v);
        stack.pop_back();
    }
    {
        Tensor<T, D> s = seed;
        root->pending = Tensor<T, D>();
        root->pending_owned = false;
        autograd::detail::accumulate(root->pending, root->pending_owned, std::move(s));
        if (root->retain_grad) {
            Tensor<T, D> s2 = seed;
            autograd::detail::accumulate(root->grad, root->grad_owned, std::move(s2));
        }
    }
    NoGradGuard no_grad;  // backward closures compute with plain tensors
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Impl* v = *it;
        Node<T, D>& n = *v->node;
        if (!v->pending.defined()) continue;  // no gradient reached this value
        POLYMATH_CHECK(!n.freed, "backward", "the graph through op '", n.name,
                       "' was already freed by an earlier backward(); call backward(..., retain_graph=true) "
                       "the first time to backpropagate twice");
        Tensor<T, D> g = std::move(v->pending);
        v->pending = Tensor<T, D>();
        v->pending_owned = false;
        GradSink<T, D> sink(n.name, n.inputs);
        n.backward(g, sink);
        if (!retain_graph) {
            n.backward = nullptr;  // drops saved tensors
            n.freed = true;
        }
    }
}

}  // namespace polymath
