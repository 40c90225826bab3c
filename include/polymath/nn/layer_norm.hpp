// polymath/nn/layer_norm.hpp — torch.nn.LayerNorm over the trailing dims.
//
//   nn::LayerNorm<float> ln(256);                 // weight ones, bias zeros, eps 1e-5
//   Var<float> y = ln(x);                         // x [..., 256]
//   nn::LayerNorm<float> ln2({4, 8}, {.eps = 1e-6, .affine = false});
#pragma once
#include <cstdint>

#include "polymath/autograd/layer_norm.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

struct LayerNormOptions {
    double eps = 1e-5;
    bool affine = true;
};

template <class T>
class LayerNorm : public Module<LayerNorm<T>, T> {
public:
    LayerNorm() = default;
    explicit LayerNorm(std::int64_t dim, LayerNormOptions opt = {}) : LayerNorm(Shape{dim}, opt) {}
    LayerNorm(const Shape& normalized_shape, LayerNormOptions opt) : shape_(normalized_shape), eps_(opt.eps) {
        POLYMATH_CHECK(shape_.size() >= 1 && numel_of(shape_) > 0, "nn::LayerNorm", "bad normalized shape ", shape_);
        if (opt.affine) {
            weight = Var<T>(Tensor<T>::ones(shape_), true);
            bias = Var<T>(Tensor<T>::zeros(shape_), true);
        }
    }

    Var<T> forward(const Var<T>& x) const { return layer_norm(x, shape_, weight, bias, eps_); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    const Shape& normalized_shape() const noexcept { return shape_; }
    double eps() const noexcept { return eps_; }

    template <class V>
    void visit(V& v) {
        v.parameter("weight", weight);
        v.parameter("bias", bias);
    }

    Var<T> weight, bias;

private:
    Shape shape_;
    double eps_ = 1e-5;
};

}  // namespace polymath::nn
