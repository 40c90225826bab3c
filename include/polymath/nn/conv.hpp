// polymath/nn/conv.hpp — convolution layers (torch.nn.Conv1d / Conv2d) and the
// channels-last depthwise convolution of the MultiModel blocks.
//
//   nn::Conv2d<float> c(3, 16, 3, {.stride = 2, .padding = 1});   // weight [16, 3, 3, 3], bias [16]
//   Var<float> y = c(x);                                          // x [N, 3, H, W] -> [N, 16, Ho, Wo]
//   nn::Conv2d<float> g(8, 8, {3, 1}, {.padding = {1, 0}, .groups = 4, .bias = false});
//   nn::Conv1d<float> c1(4, 8, 5, {.padding = 2, .dilation = 1});  // x [N, 4, L] -> [N, 8, L]
//   nn::DepthwiseConv1d<float> dw(256, 15, {.dilation = 8, .padding = PaddingMode::Causal});
//   Var<float> h = dw(x_cl);                                      // x_cl [N, L, 256] -> [N, L, 256]
//
// Semantics: ops/conv.hpp (PyTorch conv semantics; the depthwise layer is
// channels-last with TensorFlow "SAME" / tensor2tensor "LEFT" (Causal) padding).
// Init as torch: weight kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in =
// in/groups · prod(kernel). The depthwise weight [K, C] is torch's depthwise
// Conv1d(C, C, K, groups=C) weight [C, 1, K] transposed: fan_in = K.
// Parameters are named "weight" and "bias" (absent when bias = false).
#pragma once
#include <cmath>
#include <cstdint>

#include "polymath/autograd/conv.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

struct Conv2dOptions {
    Int2 stride = 1;
    Int2 padding = 0;
    Int2 dilation = 1;
    std::int64_t groups = 1;
    bool bias = true;
};

struct Conv1dOptions {
    std::int64_t stride = 1;
    std::int64_t padding = 0;
    std::int64_t dilation = 1;
    std::int64_t groups = 1;
    bool bias = true;
};

struct DepthwiseConv1dOptions {
    std::int64_t dilation = 1;
    PaddingMode padding = PaddingMode::Same;
    bool bias = true;
};

namespace detail {

inline void check_conv_layer(const char* op, std::int64_t in, std::int64_t out, std::int64_t groups, Int2 kernel) {
    POLYMATH_CHECK(in > 0 && out > 0 && kernel.h > 0 && kernel.w > 0 && groups > 0, op,
                   "channels, kernel and groups must be positive, got in=", in, " out=", out, " kernel=", kernel,
                   " groups=", groups);
    POLYMATH_CHECK(in % groups == 0 && out % groups == 0, op, "in_channels ", in, " and out_channels ", out,
                   " must both be divisible by groups ", groups);
}

// torch's default conv init: weight kaiming_uniform(a = sqrt(5)), bias U(+-1/sqrt(fan_in)).
template <class T>
void init_conv(const Shape& ws, bool with_bias, Generator& gen, Var<T>& weight, Var<T>& bias) {
    weight = Var<T>(init::kaiming_uniform<T>(ws, init::gain_leaky_relu(std::sqrt(5.0)), init::FanMode::fan_in, gen), true);
    if (with_bias) {
        const double b = 1.0 / std::sqrt(init::fans(ws).fan_in);
        bias = Var<T>(init::uniform<T>({ws[0]}, -b, b, gen), true);
    }
}

}  // namespace detail

template <class T>
class Conv2d : public Module<Conv2d<T>, T> {
public:
    Conv2d() = default;
    Conv2d(std::int64_t in_channels, std::int64_t out_channels, Int2 kernel, Conv2dOptions opt = {},
           Generator& gen = default_generator())
        : in_(in_channels), out_(out_channels), kernel_(kernel), opt_(opt) {
        detail::check_conv_layer("nn::Conv2d", in_channels, out_channels, opt.groups, kernel);
        detail::init_conv<T>({out_channels, in_channels / opt.groups, kernel.h, kernel.w}, opt.bias, gen, weight, bias);
    }

    // x [N, in, H, W] -> [N, out, Ho, Wo].
    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(weight.defined(), "nn::Conv2d", "used before construction (default-constructed layer)");
        return conv2d(x, weight, bias, opt_.stride, opt_.padding, opt_.dilation, opt_.groups);
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    std::int64_t in_channels() const noexcept { return in_; }
    std::int64_t out_channels() const noexcept { return out_; }
    Int2 kernel_size() const noexcept { return kernel_; }
    const Conv2dOptions& options() const noexcept { return opt_; }

    template <class V>
    void visit(V& v) {
        v.parameter("weight", weight);
        v.parameter("bias", bias);
    }

    Var<T> weight;  // [out, in/groups, kh, kw]
    Var<T> bias;    // [out], undefined when Conv2dOptions::bias is false

private:
    std::int64_t in_ = 0, out_ = 0;
    Int2 kernel_;
    Conv2dOptions opt_;
};

template <class T>
class Conv1d : public Module<Conv1d<T>, T> {
public:
    Conv1d() = default;
    Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel, Conv1dOptions opt = {},
           Generator& gen = default_generator())
        : in_(in_channels), out_(out_channels), kernel_(kernel), opt_(opt) {
        detail::check_conv_layer("nn::Conv1d", in_channels, out_channels, opt.groups, Int2(kernel));
        detail::init_conv<T>({out_channels, in_channels / opt.groups, kernel}, opt.bias, gen, weight, bias);
    }

    // x [N, in, L] -> [N, out, Lo].
    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(weight.defined(), "nn::Conv1d", "used before construction (default-constructed layer)");
        return conv1d(x, weight, bias, opt_.stride, opt_.padding, opt_.dilation, opt_.groups);
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    std::int64_t in_channels() const noexcept { return in_; }
    std::int64_t out_channels() const noexcept { return out_; }
    std::int64_t kernel_size() const noexcept { return kernel_; }
    const Conv1dOptions& options() const noexcept { return opt_; }

    template <class V>
    void visit(V& v) {
        v.parameter("weight", weight);
        v.parameter("bias", bias);
    }

    Var<T> weight;  // [out, in/groups, k]
    Var<T> bias;    // [out], undefined when Conv1dOptions::bias is false

private:
    std::int64_t in_ = 0, out_ = 0, kernel_ = 0;
    Conv1dOptions opt_;
};

template <class T>
class DepthwiseConv1d : public Module<DepthwiseConv1d<T>, T> {
public:
    DepthwiseConv1d() = default;
    DepthwiseConv1d(std::int64_t channels, std::int64_t kernel, DepthwiseConv1dOptions opt = {},
                    Generator& gen = default_generator())
        : channels_(channels), kernel_(kernel), opt_(opt) {
        POLYMATH_CHECK(channels > 0 && kernel > 0 && opt.dilation > 0, "nn::DepthwiseConv1d",
                       "channels, kernel and dilation must be positive, got channels=", channels, " kernel=", kernel,
                       " dilation=", opt.dilation);
        const double b = 1.0 / std::sqrt(double(kernel));
        weight = Var<T>(init::uniform<T>({kernel, channels}, -b, b, gen), true);
        if (opt.bias) bias = Var<T>(init::uniform<T>({channels}, -b, b, gen), true);
    }

    // x [N, L, C] -> [N, L, C] (Same / Causal) or [N, L - d (K - 1), C] (Valid).
    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(weight.defined(), "nn::DepthwiseConv1d", "used before construction (default-constructed layer)");
        return depthwise_conv1d(x, weight, bias, opt_.dilation, opt_.padding);
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    std::int64_t channels() const noexcept { return channels_; }
    std::int64_t kernel_size() const noexcept { return kernel_; }
    const DepthwiseConv1dOptions& options() const noexcept { return opt_; }

    template <class V>
    void visit(V& v) {
        v.parameter("weight", weight);
        v.parameter("bias", bias);
    }

    Var<T> weight;  // [K, C]
    Var<T> bias;    // [C], undefined when DepthwiseConv1dOptions::bias is false

private:
    std::int64_t channels_ = 0, kernel_ = 0;
    DepthwiseConv1dOptions opt_;
};

}  // namespace polymath::nn
