// Shared pieces of the peft tests: a small transformer-ish model whose names
// exercise the pattern matching, and exact tensor comparisons.
#pragma once
#include <cmath>
#include <cstring>

#include "polymath/nn.hpp"
#include "polymath/peft.hpp"

namespace peft_test {
using namespace polymath;

// Exact equality of values (the "bit for bit" checks; -0 == +0 is the only
// difference == would hide, and none of these computations produce -0 where
// the reference has +0 or vice versa in a way that matters).
template <class T>
bool same_values(const Tensor<T>& a, const Tensor<T>& b) {
    if (a.shape() != b.shape()) return false;
    const Tensor<T> ac = a.contiguous(), bc = b.contiguous();
    for (std::int64_t i = 0; i < ac.numel(); ++i)
        if (!(ac.data()[i] == bc.data()[i])) return false;
    return true;
}
// Identical bytes (frozen parameters after training).
template <class T>
bool same_bytes(const Tensor<T>& a, const Tensor<T>& b) {
    if (a.shape() != b.shape()) return false;
    const Tensor<T> ac = a.contiguous(), bc = b.contiguous();
    return std::memcmp(ac.data(), bc.data(), sizeof(T) * std::size_t(ac.numel())) == 0;
}
template <class T>
double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
    const Tensor<T> ac = a.contiguous(), bc = b.contiguous();
    double m = 0;
    for (std::int64_t i = 0; i < ac.numel(); ++i) m = std::max(m, std::fabs(double(ac.data()[i]) - double(bc.data()[i])));
    return m;
}

// Pre-norm-free residual block: h = x + attention(x); y = h + fc(h).
template <class T>
struct Block : nn::Module<Block<T>, T> {
    nn::MultiheadAttention<T> attention;
    nn::Linear<T> fc;
    Block(std::int64_t d, Generator& g) : attention(d, 2, {}, g), fc(d, d, {}, g) {}
    Var<T> operator()(const Var<T>& x) const {
        const Var<T> h = add(x, attention(x));
        return add(h, fc(h));
    }
    template <class V>
    void visit(V& v) {
        v.module("attention", attention);
        v.module("fc", fc);
    }
};

// embed (Linear in -> d, per token) -> blocks -> mean over tokens -> head.
template <class T>
struct Encoder : nn::Module<Encoder<T>, T> {
    nn::Linear<T> embed;
    nn::ModuleList<Block<T>> blocks;
    nn::Linear<T> head;
    Encoder(std::int64_t in, std::int64_t d, std::int64_t classes, int depth, Generator& g)
        : embed(in, d, {}, g), head(d, classes, {}, g) {
        for (int i = 0; i < depth; ++i) blocks.push_back(Block<T>(d, g));
    }
    // Token features before pooling: [B, L(+P), d].
    Var<T> tokens(const Var<T>& x) const {
        Var<T> h = embed(x);
        for (const auto& b : blocks) h = b(h);
        return h;
    }
    Var<T> operator()(const Var<T>& x) const { return head(mean(tokens(x), {1})); }
    template <class V>
    void visit(V& v) {
        v.module("embed", embed);
        v.module("blocks", blocks);
        v.module("head", head);
    }
};

}  // namespace peft_test
