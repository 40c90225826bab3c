// polymath/nn/conv_block.hpp — the convolutional vocabulary of MultiModel
// ("One Model To Learn Them All", Kaiser et al. 2017, section 2.1), on
// channels-last sequences x [N, L, C] as tensor2tensor lays them out.
//
//   SepConv1d_{d,k}:  depthwise conv (one k-tap filter per channel, dilation d,
//                     "same" or causal padding, no bias) then a pointwise
//                     C -> C_out projection with bias (TF's separable_conv).
//   ConvStep_{d,k}(W, x) = LayerNorm(SepConv_{d,k}(W, ReLU(x)))
//   ConvBlock (paper default, ConvBlockOptions{}):
//       h1 = ConvStep_{1,3}(x)
//       h2 = x + ConvStep_{1,3}(h1)
//       h3 = ConvStep_{1,15}(h2)
//       h4 = x + ConvStep_{8,15}(h3)
//       out = Dropout(h4, 0.4)            (training only)
//     Any stack of steps {kernel, dilation, residual} can be given instead;
//     a residual step adds the BLOCK input x, as in the paper.
//   ConvRes (Xception-style residual, the paper's image modality / t2t's
//   conv_res_step): c1 = LN(SepConv_3(x)), c2 = LN(SepConv_3(ReLU(c1))),
//       p = MaxPool_{3, stride 2, same}(c2), out = p + Pointwise_{stride 2}(x)
//     (C -> C_out, length L -> ceil(L / 2)).
// Causal padding (ConvBlockOptions::causal) makes every step use only past
// positions, as the decoder needs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/conv.hpp"
#include "polymath/autograd/pool.hpp"
#include "polymath/autograd/unary.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/dropout.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/layer_norm.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/nn/module.hpp"
#include "polymath/ops/conv.hpp"

namespace polymath::nn {

struct SepConvOptions {
    std::int64_t dilation = 1;
    bool causal = false;
};

template <class T>
class SepConv1d : public Module<SepConv1d<T>, T> {
public:
    SepConv1d() = default;
    SepConv1d(std::int64_t channels, std::int64_t out_channels, std::int64_t kernel, SepConvOptions opt = {},
              Generator& gen = default_generator())
        : kernel_(kernel), opt_(opt) {
        POLYMATH_CHECK(channels > 0 && out_channels > 0 && kernel > 0 && opt.dilation > 0, "nn::SepConv1d",
                       "bad sizes: channels=", channels, " out=", out_channels, " kernel=", kernel,
                       " dilation=", opt.dilation);
        // Depthwise filters: fan_in = kernel (one input channel per filter).
        const double b = 1.0 / std::sqrt(double(kernel));
        depthwise = Var<T>(init::uniform<T>({kernel, channels}, -b, b, gen), true);
        pointwise = Linear<T>(channels, out_channels, {}, gen);
    }
    // x [N, L, C] -> [N, L, C_out].
    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(depthwise.defined(), "nn::SepConv1d", "used before construction");
        Var<T> d = depthwise_conv1d(x, depthwise, Var<T>(), opt_.dilation,
                                    opt_.causal ? ops::PaddingMode::Causal : ops::PaddingMode::Same);
        return pointwise(d);
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    template <class V>
    void visit(V& v) {
        v.parameter("depthwise", depthwise);
        v.module("pointwise", pointwise);
    }

    Var<T> depthwise;  // [kernel, C]
    Linear<T> pointwise;

private:
    std::int64_t kernel_ = 0;
    SepConvOptions opt_;
};

template <class T>
class ConvStep : public Module<ConvStep<T>, T> {
public:
    ConvStep() = default;
    ConvStep(std::int64_t channels, std::int64_t out_channels, std::int64_t kernel, SepConvOptions opt = {},
             bool first_relu = true, Generator& gen = default_generator())
        : conv(channels, out_channels, kernel, opt, gen), norm(out_channels), first_relu_(first_relu) {}
    Var<T> forward(const Var<T>& x) const { return norm(conv(first_relu_ ? relu(x) : x)); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    template <class V>
    void visit(V& v) {
        v.module("conv", conv);
        v.module("norm", norm);
    }

    SepConv1d<T> conv;
    LayerNorm<T> norm;

private:
    bool first_relu_ = true;
};

struct ConvStepSpec {
    std::int64_t kernel = 3;
    std::int64_t dilation = 1;
    bool residual = false;  // add the block input to this step's output
};

struct ConvBlockOptions {
    // The paper's block: 3x1, 3x1 (+x), 15x1, 15x1 dilation 8 (+x).
    std::vector<ConvStepSpec> steps = {{3, 1, false}, {3, 1, true}, {15, 1, false}, {15, 8, true}};
    double dropout = 0.4;
    bool causal = false;
};

template <class T>
class ConvBlock : public Module<ConvBlock<T>, T> {
public:
    ConvBlock() : drop_(0.0) {}
    ConvBlock(std::int64_t channels, ConvBlockOptions opt = {}, Generator& gen = default_generator())
        : specs_(opt.steps), drop_(opt.dropout) {
        POLYMATH_CHECK(!opt.steps.empty(), "nn::ConvBlock", "needs at least one step");
        for (const auto& s : opt.steps)
            steps.push_back(ConvStep<T>(channels, channels, s.kernel, {.dilation = s.dilation, .causal = opt.causal},
                                        true, gen));
    }
    // x [N, L, C] -> [N, L, C].
    Var<T> forward(const Var<T>& x) const {
        Var<T> h = x;
        for (std::size_t i = 0; i < steps.size(); ++i) {
            h = steps[i](h);
            if (specs_[i].residual) h = add(x, h);
        }
        return drop_(h);
    }
    // With a padding mask [N, L, 1] (1 = real position, 0 = padding): every
    // step reads its input with padded positions zeroed, so a real position
    // sees exactly what it would see in an unpadded sequence (the convolution's
    // own zero padding) whatever the batch's padded length; the output is
    // zero at padded positions.
    Var<T> forward(const Var<T>& x, const Var<T>& mask) const {
        if (!mask.defined()) return forward(x);
        POLYMATH_CHECK(mask.dim() == 3 && mask.size(0) == x.size(0) && mask.size(1) == x.size(1) && mask.size(2) == 1,
                       "nn::ConvBlock", "mask ", mask.shape(), " must be [N, L, 1] for input ", x.shape());
        Var<T> x0 = mul(x, mask);
        Var<T> h = x0;
        for (std::size_t i = 0; i < steps.size(); ++i) {
            h = steps[i](mul(h, mask));
            if (specs_[i].residual) h = add(x0, h);
        }
        return mul(drop_(h), mask);
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    Var<T> operator()(const Var<T>& x, const Var<T>& mask) const { return forward(x, mask); }
    void set_generator(Generator* g) { drop_.set_generator(g); }

    template <class V>
    void visit(V& v) {
        v.module("steps", steps);
        v.module("dropout", drop_);
    }

    ModuleList<ConvStep<T>> steps;

private:
    std::vector<ConvStepSpec> specs_;
    Dropout<T> drop_;
};

template <class T>
class ConvRes : public Module<ConvRes<T>, T> {
public:
    ConvRes() = default;
    ConvRes(std::int64_t channels, std::int64_t out_channels, Generator& gen = default_generator())
        : c1(channels, out_channels, 3, {}, /*first_relu=*/false, gen),
          c2(out_channels, out_channels, 3, {}, /*first_relu=*/true, gen),
          skip(channels, out_channels, {}, gen) {}
    // x [N, L, C] -> [N, ceil(L/2), C_out].
    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(x.dim() == 3, "nn::ConvRes", "expects [N, L, C], got ", x.shape());
        Var<T> p = max_pool1d_channels_last(c2(c1(x)), 3, 2, ops::PaddingMode::Same);
        return add(p, skip(slice(x, 1, 0, x.size(1), 2)));
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    template <class V>
    void visit(V& v) {
        v.module("c1", c1);
        v.module("c2", c2);
        v.module("skip", skip);
    }

    ConvStep<T> c1, c2;
    Linear<T> skip;  // the strided 1x1 convolution
};

}  // namespace polymath::nn
