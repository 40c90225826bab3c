// polymath/nn/dropout.hpp — inverted dropout that follows train()/eval().
//
//   nn::Dropout<float> drop(0.4);        // draws from default_generator()
//   nn::Dropout<float> drop(0.4, &gen);  // or from a Generator the caller owns
//   Var<float> y = drop(x);              // identity in eval() mode
#pragma once
#include "polymath/autograd/dropout.hpp"
#include "polymath/nn/module.hpp"

namespace polymath::nn {

template <class T>
class Dropout : public Module<Dropout<T>, T> {
public:
    explicit Dropout(double p = 0.5, Generator* gen = nullptr) : p_(p), gen_(gen) {
        ops::detail::check_dropout_p(p, "nn::Dropout");
    }
    Var<T> forward(const Var<T>& x) const {
        return dropout(x, p_, this->is_training(), gen_ ? *gen_ : default_generator());
    }
    Var<T> operator()(const Var<T>& x) const { return forward(x); }
    double p() const noexcept { return p_; }
    void set_generator(Generator* g) noexcept { gen_ = g; }

    template <class V>
    void visit(V&) {}

private:
    double p_;
    Generator* gen_;
};

}  // namespace polymath::nn
