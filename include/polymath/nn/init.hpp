// polymath/nn/init.hpp — parameter initialisers, deterministic from a Generator.
//
// Same formulas as torch.nn.init (fan_in/fan_out of a [out, in, k...] weight:
// fan_in = in * prod(k), fan_out = out * prod(k)):
//   xavier_uniform: U(-a, a),  a = gain * sqrt(6 / (fan_in + fan_out))
//   xavier_normal:  N(0, s),   s = gain * sqrt(2 / (fan_in + fan_out))
//   kaiming_uniform: U(-b, b), b = gain * sqrt(3 / fan)       (fan = fan_in by default)
//   kaiming_normal:  N(0, s),  s = gain / sqrt(fan)
//   uniform(lo, hi), normal(mean, std), zeros, ones.
// Every draw takes its values from the Generator's Philox stream, so a model
// built twice from Generator(seed) is bit-identical on any thread count.
#pragma once
#include <cmath>
#include <cstdint>

#include "polymath/core/error.hpp"
#include "polymath/core/philox.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::nn::init {

struct Fans {
    double fan_in;
    double fan_out;
};

// Fans of a weight laid out [out, in, k...] (Linear: [out, in]; conv: [out, in/groups, k...]).
inline Fans fans(const Shape& s) {
    POLYMATH_CHECK(s.size() >= 1, "init::fans", "needs a weight of at least 1 dimension, got shape ", s);
    if (s.size() == 1) return {double(s[0]), double(s[0])};
    double receptive = 1;
    for (int i = 2; i < s.size(); ++i) receptive *= double(s[i]);
    return {double(s[1]) * receptive, double(s[0]) * receptive};
}

// Gains as torch.nn.init.calculate_gain names them.
inline double gain_relu() { return std::sqrt(2.0); }
inline double gain_tanh() { return 5.0 / 3.0; }
// Leaky ReLU with slope a: sqrt(2 / (1 + a^2)); kaiming_uniform's default a = sqrt(5).
inline double gain_leaky_relu(double a) { return std::sqrt(2.0 / (1.0 + a * a)); }

template <class T>
Tensor<T> uniform(const Shape& s, double lo, double hi, Generator& g = default_generator()) {
    POLYMATH_CHECK(hi >= lo, "init::uniform", "bounds lo=", lo, " > hi=", hi);
    Tensor<T> t = Tensor<T>::rand(s, g);
    T* p = t.data();
    for (std::int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = T(lo + (hi - lo) * double(p[i]));
    return t;
}

template <class T>
Tensor<T> normal(const Shape& s, double mean, double stddev, Generator& g = default_generator()) {
    POLYMATH_CHECK(stddev >= 0, "init::normal", "negative standard deviation ", stddev);
    Tensor<T> t = Tensor<T>::randn(s, g);
    T* p = t.data();
    for (std::int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = T(mean + stddev * double(p[i]));
    return t;
}

template <class T>
Tensor<T> xavier_uniform(const Shape& s, double gain = 1.0, Generator& g = default_generator()) {
    const Fans f = fans(s);
    const double a = gain * std::sqrt(6.0 / (f.fan_in + f.fan_out));
    return uniform<T>(s, -a, a, g);
}

template <class T>
Tensor<T> xavier_normal(const Shape& s, double gain = 1.0, Generator& g = default_generator()) {
    const Fans f = fans(s);
    return normal<T>(s, 0.0, gain * std::sqrt(2.0 / (f.fan_in + f.fan_out)), g);
}

enum class FanMode { fan_in, fan_out };

template <class T>
Tensor<T> kaiming_uniform(const Shape& s, double gain = std::sqrt(2.0), FanMode mode = FanMode::fan_in,
                          Generator& g = default_generator()) {
    const Fans f = fans(s);
    const double fan = mode == FanMode::fan_in ? f.fan_in : f.fan_out;
    const double b = gain * std::sqrt(3.0 / fan);
    return uniform<T>(s, -b, b, g);
}

template <class T>
Tensor<T> kaiming_normal(const Shape& s, double gain = std::sqrt(2.0), FanMode mode = FanMode::fan_in,
                         Generator& g = default_generator()) {
    const Fans f = fans(s);
    const double fan = mode == FanMode::fan_in ? f.fan_in : f.fan_out;
    return normal<T>(s, 0.0, gain / std::sqrt(fan), g);
}

}  // namespace polymath::nn::init
