// polymath/nn/pool.hpp — parameter-free pooling modules (torch.nn.MaxPool1d/2d,
// AvgPool1d/2d, AdaptiveAvgPool(1)-style global average, and the channels-last
// length-axis max pool of ConvRes).
//
//   nn::MaxPool2d<float> mp(2);                    // 2x2 windows, stride 2
//   nn::AvgPool2d<float> ap(3, 1, 1);              // kernel 3, stride 1, padding 1 (count_include_pad)
//   nn::MaxPool1d<float> m1(3, 2, 1);              // x [N, C, L]
//   nn::GlobalAvgPool<float> gap;                  // [N, C, ...] -> [N, C]
//   nn::MaxPool1dChannelsLast<float> p(3, 2);      // x [N, L, C], TensorFlow SAME
//   Var<float> y = mp(x);
//
// A stride of 0 (the default) means "= kernel". Semantics: ops/pool.hpp.
// A non-square kernel alone is spelled Int2{kh, kw} (MaxPool2d<float>(Int2{2, 3})):
// a bare {2, 3} as the only argument would also match the copy constructor.
#pragma once
#include <cstdint>

#include "polymath/autograd/pool.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

template <class T>
class MaxPool2d : public Module<MaxPool2d<T>, T> {
public:
    MaxPool2d() = default;
    explicit MaxPool2d(Int2 kernel, Int2 stride = Int2(), Int2 padding = 0)
        : kernel_(kernel), stride_(stride), padding_(padding) {}
    Var<T> forward(const Var<T>& x) const { return max_pool2d(x, kernel_, stride_, padding_); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    template <class V>
    void visit(V&) {}

private:
    Int2 kernel_, stride_, padding_;
};

template <class T>
class AvgPool2d : public Module<AvgPool2d<T>, T> {
public:
    AvgPool2d() = default;
    explicit AvgPool2d(Int2 kernel, Int2 stride = Int2(), Int2 padding = 0)
        : kernel_(kernel), stride_(stride), padding_(padding) {}
    Var<T> forward(const Var<T>& x) const { return avg_pool2d(x, kernel_, stride_, padding_); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    template <class V>
    void visit(V&) {}

private:
    Int2 kernel_, stride_, padding_;
};

template <class T>
class MaxPool1d : public Module<MaxPool1d<T>, T> {
public:
    MaxPool1d() = default;
    explicit MaxPool1d(std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0)
        : kernel_(kernel), stride_(stride), padding_(padding) {}
    Var<T> forward(const Var<T>& x) const { return max_pool1d(x, kernel_, stride_, padding_); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    template <class V>
    void visit(V&) {}

private:
    std::int64_t kernel_ = 0, stride_ = 0, padding_ = 0;
};

template <class T>
class AvgPool1d : public Module<AvgPool1d<T>, T> {
public:
    AvgPool1d() = default;
    explicit AvgPool1d(std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0)
        : kernel_(kernel), stride_(stride), padding_(padding) {}
    Var<T> forward(const Var<T>& x) const { return avg_pool1d(x, kernel_, stride_, padding_); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    template <class V>
    void visit(V&) {}

private:
    std::int64_t kernel_ = 0, stride_ = 0, padding_ = 0;
};

template <class T>
class GlobalAvgPool : public Module<GlobalAvgPool<T>, T> {
public:
    GlobalAvgPool() = default;
    Var<T> forward(const Var<T>& x) const { return global_avg_pool(x); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    template <class V>
    void visit(V&) {}
};

template <class T>
class MaxPool1dChannelsLast : public Module<MaxPool1dChannelsLast<T>, T> {
public:
    MaxPool1dChannelsLast() = default;
    explicit MaxPool1dChannelsLast(std::int64_t kernel, std::int64_t stride = 0, PaddingMode padding = PaddingMode::Same)
        : kernel_(kernel), stride_(stride), padding_(padding) {}
    Var<T> forward(const Var<T>& x) const { return max_pool1d_channels_last(x, kernel_, stride_, padding_); }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    template <class V>
    void visit(V&) {}

private:
    std::int64_t kernel_ = 0, stride_ = 0;
    PaddingMode padding_ = PaddingMode::Same;
};

}  // namespace polymath::nn
