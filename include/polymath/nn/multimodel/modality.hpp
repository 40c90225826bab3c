// polymath/nn/multimodel/modality.hpp — the per-task modality nets of a
// MultiModel: they map a task's input into the body's [B, L, hidden]
// sequence space and the body's output into the task's output space.
//
//   ImageModality       [B, C, H, W] floats -> [B, L, hidden]
//       Xception entry flow, scaled down: two strided 3x3 Conv2d + ReLU
//       (32 and 64 channels, stride 2 each: H x W -> H/4 x W/4), the feature
//       map read row-major as a sequence of H/4 * W/4 tokens, then one ConvRes
//       block (SepConv, ReLU, SepConv, max-pool 3/2, strided 1x1 skip) to
//       `hidden` channels (halves the length). Deviation from the paper: the
//       ConvRes blocks are 1-D over the raster sequence (nn::ConvRes is
//       channels-last 1-D), not 2-D.
//   AudioModality       [B, frames, n_mels] log-mel -> [B, frames / 4, hidden]
//       two ConvRes blocks over time (mel bins are the channels), as the paper's
//       audio modality runs ConvRes blocks over the spectrogram.
//   LanguageModality    ids [B, L] -> [B, L, hidden] (embedding * sqrt(hidden),
//       init std hidden^-0.5 as tensor2tensor) and [B, L, hidden] -> logits
//       [B, L, vocab] through the same weights when tied.
//   CategoricalModality [B, L, hidden] -> logits [B, classes]
//       Xception exit flow, scaled down: ConvRes, SepConv + ReLU twice, then
//       ClassPooling::mean (the paper's global average pool) or
//       ClassPooling::flatten (all positions into the Linear; needs a fixed
//       length, as image and audio tasks have). Why flatten exists: with a
//       small CPU budget the average-pooled head learns slowly — on MNIST, the
//       image stem + this head reached a training loss of 0.9 after 150 Adam
//       steps (batch 32) with mean pooling, 0.2 with flatten.
#pragma once
#include <cmath>
#include <cstdint>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/reduce.hpp"
#include "polymath/autograd/unary.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/conv.hpp"
#include "polymath/nn/conv_block.hpp"
#include "polymath/nn/embedding.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

template <class T>
class ImageModality : public Module<ImageModality<T>, T> {
public:
    ImageModality() = default;
    ImageModality(std::int64_t channels, std::int64_t hidden, Generator& gen = default_generator())
        : channels_(channels),
          conv1(channels, 32, Int2{3, 3}, {.stride = 2, .padding = 1}, gen),
          conv2(32, 64, Int2{3, 3}, {.stride = 2, .padding = 1}, gen),
          res(64, hidden, gen) {}

    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(x.dim() == 4 && x.size(1) == channels_, "nn::ImageModality", "input ", x.shape(),
                       " must be [B, ", channels_, ", H, W]");
        Var<T> h = relu(conv2(relu(conv1(x))));               // [B, 64, H/4, W/4]
        const std::int64_t B = h.size(0), C = h.size(1), L = h.size(2) * h.size(3);
        Var<T> seq = transpose(reshape(h, {B, C, L}), 1, 2);  // [B, L, 64]
        return res(contiguous(seq));
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    template <class V>
    void visit(V& v) {
        v.module("conv1", conv1);
        v.module("conv2", conv2);
        v.module("res", res);
    }

private:
    std::int64_t channels_ = 0;

public:
    Conv2d<T> conv1, conv2;
    ConvRes<T> res;
};

template <class T>
class AudioModality : public Module<AudioModality<T>, T> {
public:
    AudioModality() = default;
    AudioModality(std::int64_t n_mels, std::int64_t hidden, Generator& gen = default_generator())
        : n_mels_(n_mels), res1(n_mels, hidden, gen), res2(hidden, hidden, gen) {}

    Var<T> forward(const Var<T>& x) const {
        POLYMATH_CHECK(x.dim() == 3 && x.size(2) == n_mels_, "nn::AudioModality", "input ", x.shape(),
                       " must be [B, frames, n_mels=", n_mels_, "]");
        return res2(res1(x));
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }

    template <class V>
    void visit(V& v) {
        v.module("res1", res1);
        v.module("res2", res2);
    }

private:
    std::int64_t n_mels_ = 0;

public:
    ConvRes<T> res1, res2;
};

template <class T>
class LanguageModality : public Module<LanguageModality<T>, T> {
public:
    LanguageModality() = default;
    LanguageModality(std::int64_t vocab, std::int64_t hidden, bool tied, Generator& gen = default_generator())
        : embedding(vocab, hidden,
                    {.padding_idx = 0, .init_std = 1.0 / std::sqrt(double(hidden)), .scale_by_sqrt_dim = true}, gen) {
        if (!tied) output = Linear<T>(hidden, vocab, {.bias = false}, gen);
    }
    // ids [B, L] (0 = padding) -> [B, L, hidden]
    Var<T> embed(const Tensor<std::int64_t>& ids) const { return embedding(ids); }
    // h [B, L, hidden] -> logits [B, L, vocab]
    Var<T> logits(const Var<T>& h) const { return output.weight.defined() ? output(h) : embedding.project(h); }
    std::int64_t vocab_size() const { return embedding.weight.size(0); }

    template <class V>
    void visit(V& v) {
        v.module("embedding", embedding);
        v.module("output", output);
    }

    Embedding<T> embedding;
    Linear<T> output;  // undefined when tied
};

enum class ClassPooling { mean, flatten };

template <class T>
class CategoricalModality : public Module<CategoricalModality<T>, T> {
public:
    CategoricalModality() = default;
    // `length`: the body's sequence length for this task (needed by flatten).
    CategoricalModality(std::int64_t hidden, std::int64_t classes, ClassPooling pooling = ClassPooling::mean,
                        std::int64_t length = 0, Generator& gen = default_generator())
        : pooling_(pooling), pooled_len_((length + 1) / 2), res(hidden, hidden, gen),
          sep1(hidden, hidden, 3, {}, gen), sep2(hidden, hidden, 3, {}, gen),
          fc(pooling == ClassPooling::flatten ? pooled_len_ * hidden : hidden, classes, {}, gen) {
        POLYMATH_CHECK(pooling == ClassPooling::mean || length >= 1, "nn::CategoricalModality",
                       "flatten pooling needs the sequence length, got ", length);
    }

    // h [B, L, hidden] -> logits [B, classes].
    Var<T> forward(const Var<T>& h) const {
        POLYMATH_CHECK(h.dim() == 3, "nn::CategoricalModality", "input ", h.shape(), " must be [B, L, hidden]");
        Var<T> x = relu(sep2(relu(sep1(res(h)))));  // [B, ceil(L/2), hidden]
        if (pooling_ == ClassPooling::mean) return fc(mean(x, {1}));
        POLYMATH_CHECK(x.size(1) == pooled_len_, "nn::CategoricalModality", "flatten pooling was built for ",
                       2 * pooled_len_, " positions (±1), got input ", h.shape());
        return fc(reshape(x, {x.size(0), -1}));
    }
    Var<T> operator()(const Var<T>& h) const { return forward(h); }

    template <class V>
    void visit(V& v) {
        v.module("res", res);
        v.module("sep1", sep1);
        v.module("sep2", sep2);
        v.module("fc", fc);
    }

private:
    ClassPooling pooling_ = ClassPooling::mean;
    std::int64_t pooled_len_ = 0;

public:
    ConvRes<T> res;
    SepConv1d<T> sep1, sep2;
    Linear<T> fc;
};

}  // namespace polymath::nn
