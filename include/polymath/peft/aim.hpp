// polymath/peft/aim.hpp — AIM-style spatial, temporal and joint adaptation of
// an image model to video (Yang et al. 2023, arXiv 2302.03024).
//
//   peft::AxisAdapter<float> t(peft::Axis::Temporal, 256, 32);
//   Var<float> y = t(x, [&](const Var<float>& s) { return attention(s); });   // x [B, T, N, 256]
//
// Input x is [B, T, N, d]: B clips, T frames, N tokens per frame. A sublayer f
// that works on sequences [B', L, d] (typically the frozen pretrained
// attention) is applied along one axis, then a bottleneck adapter
// (peft::Adapter: residual, zero-initialised up-projection):
//   Spatial:  x → [B·T, N, d] (each frame's tokens are one sequence)
//   Temporal: x → [B·N, T, d] (each token position across frames; permute T and N)
//   Joint:    x → [B, T·N, d] (all tokens of a clip)
// then y = adapter(f(view)) is reshaped back to [B, T, N, d]. Without f the
// adapter alone runs (per token, so the axis does not matter). As in AIM the
// residual around the whole sublayer belongs to the caller's block:
//   x = x + temporal(x, attn);  x = x + spatial(x, attn);  x = x + mlp(x) + joint(x)
#pragma once
#include <functional>

#include "polymath/autograd/view_ops.hpp"
#include "polymath/peft/adapter.hpp"

namespace polymath::peft {

enum class Axis { Spatial, Temporal, Joint };

// x [B, T, N, d] -> the axis' sequence layout (see the file comment).
template <class T>
Var<T> to_axis(const Var<T>& x, Axis axis) {
    POLYMATH_CHECK(x.dim() == 4, "peft::to_axis", "expects [B, T, N, d], got ", x.shape());
    const std::int64_t B = x.size(0), Tn = x.size(1), N = x.size(2), d = x.size(3);
    switch (axis) {
        case Axis::Spatial: return reshape(x, Shape{B * Tn, N, d});
        case Axis::Temporal: return reshape(permute(x, {0, 2, 1, 3}), Shape{B * N, Tn, d});
        case Axis::Joint: return reshape(x, Shape{B, Tn * N, d});
    }
    return x;
}
// The inverse of to_axis for a clip shape [B, T, N, d].
template <class T>
Var<T> from_axis(const Var<T>& y, Axis axis, const Shape& clip) {
    const std::int64_t B = clip[0], Tn = clip[1], N = clip[2], d = clip[3];
    switch (axis) {
        case Axis::Spatial:
        case Axis::Joint: return reshape(y, clip);
        case Axis::Temporal: return permute(reshape(y, Shape{B, N, Tn, d}), {0, 2, 1, 3});
    }
    return y;
}

template <class T>
class AxisAdapter : public nn::Module<AxisAdapter<T>, T> {
public:
    AxisAdapter() = default;
    AxisAdapter(Axis axis, std::int64_t features, std::int64_t bottleneck, Generator& gen = default_generator())
        : adapter(features, bottleneck, Activation::GELU, 1.0, gen), axis_(axis) {}

    Var<T> forward(const Var<T>& x, const std::function<Var<T>(const Var<T>&)>& sublayer = {}) const {
        const Var<T> s = to_axis(x, axis_);
        const Var<T> h = sublayer ? sublayer(s) : s;
        POLYMATH_CHECK(h.shape() == s.shape(), "peft::AxisAdapter", "sublayer changed the shape ", s.shape(), " to ",
                       h.shape());
        return from_axis(adapter(h), axis_, x.shape());
    }
    Var<T> operator()(const Var<T>& x, const std::function<Var<T>(const Var<T>&)>& sublayer = {}) const {
        return forward(x, sublayer);
    }
    Axis axis() const noexcept { return axis_; }

    template <class V>
    void visit(V& v) {
        v.module("adapter", adapter);
    }

    Adapter<T> adapter;

private:
    Axis axis_ = Axis::Spatial;
};

}  // namespace polymath::peft
