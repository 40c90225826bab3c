// polymath/nn/embedding.hpp — a lookup table of learned vectors (torch.nn.Embedding),
// optionally weight-tied to the output projection.
//
//   nn::Embedding<float> emb(8000, 256);                 // weight [8000, 256] ~ N(0, 1)
//   Var<float> h = emb(tokens);                          // tokens int64 [B, L] -> [B, L, 256]
//   Var<float> logits = emb.project(h);                  // tied output: h W^T -> [B, L, 8000]
//
// EmbeddingOptions::init_std sets the init scale (tensor2tensor uses
// d^-0.5 with an input multiplier of sqrt(d); `scale_by_sqrt_dim` applies the
// multiplier to the lookup). padding_idx rows get zero gradient and start at 0.
#pragma once
#include <cmath>
#include <cstdint>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/embedding.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

struct EmbeddingOptions {
    std::int64_t padding_idx = -1;
    double init_std = 1.0;
    bool scale_by_sqrt_dim = false;
};

template <class T>
class Embedding : public Module<Embedding<T>, T> {
public:
    Embedding() = default;
    Embedding(std::int64_t num_embeddings, std::int64_t dim, EmbeddingOptions opt = {},
              Generator& gen = default_generator())
        : opt_(opt) {
        POLYMATH_CHECK(num_embeddings > 0 && dim > 0, "nn::Embedding", "sizes must be positive, got ",
                       num_embeddings, " x ", dim);
        POLYMATH_CHECK(opt.padding_idx < num_embeddings && opt.padding_idx >= -1, "nn::Embedding", "padding_idx ",
                       opt.padding_idx, " outside [-1, ", num_embeddings, ")");
        Tensor<T> w = init::normal<T>({num_embeddings, dim}, 0.0, opt.init_std, gen);
        if (opt.padding_idx >= 0) w.select(0, opt.padding_idx).fill_(T(0));
        weight = Var<T>(w, true);
    }

    Var<T> forward(const Tensor<std::int64_t>& indices) const {
        POLYMATH_CHECK(weight.defined(), "nn::Embedding", "used before construction");
        Var<T> e = embedding(weight, indices, opt_.padding_idx);
        if (opt_.scale_by_sqrt_dim) e = affine(e, T(std::sqrt(double(dim()))), T(0));
        return e;
    }
    Var<T> operator()(const Tensor<std::int64_t>& indices) const { return forward(indices); }

    // The tied output projection h W^T: h [..., dim] -> logits [..., num_embeddings].
    Var<T> project(const Var<T>& h) const {
        POLYMATH_CHECK(h.dim() >= 1 && h.size(-1) == dim(), "nn::Embedding::project", "input shape ", h.shape(),
                       " does not end in the embedding dim ", dim());
        return matmul(h, transpose(weight, 0, 1));
    }

    std::int64_t num_embeddings() const { return weight.size(0); }
    std::int64_t dim() const { return weight.size(1); }

    template <class V>
    void visit(V& v) {
        v.parameter("weight", weight);
    }

    Var<T> weight;  // [num_embeddings, dim]

private:
    EmbeddingOptions opt_;
};

}  // namespace polymath::nn
