// polymath/nn/linear.hpp — y = x W^T + b over the last axis (torch.nn.Linear).
//
//   nn::Linear<float> fc(512, 10);            // weight [10, 512], bias [10]
//   Var<float> y = fc(x);                     // x [..., 512] -> y [..., 10]
//
// Init as torch.nn.Linear: weight and bias U(-1/sqrt(in), 1/sqrt(in)) (which
// is kaiming_uniform with a = sqrt(5)), drawn from the given Generator.
#pragma once
#include <cmath>
#include <cstdint>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/matmul.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

struct LinearOptions {
    bool bias = true;
};

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
        return bias.defined() ? add(y, bias) : y;
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    std::int64_t in_features() const noexcept { return in_; }
    std::int64_t out_features() const noexcept { return out_; }

    template <class V>
    void visit(V& v) {
        v.parameter("weight", weight);
        v.parameter("bias", bias);
    }

    Var<T> weight;  // [out, in]
    Var<T> bias;    // [out], undefined when LinearOptions::bias is false

private:
    std::int64_t in_ = 0, out_ = 0;
};

}  // namespace polymath::nn
