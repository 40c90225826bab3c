// polymath/autograd/grad_check.hpp — analytic vs finite-difference gradients.
//
// grad_check(f, inputs) evaluates y = f(inputs), backpropagates a fixed random
// weighting w (so non-scalar outputs are checked in every direction at once),
// and compares each input's gradient with the central difference
//   (L(x + eps) - L(x - eps)) / (2 eps),   L(x) = sum(f(x) * w),
// in double precision. An element fails when
//   |analytic - numeric| > atol + rtol * |numeric|.
#pragma once
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "polymath/autograd/var.hpp"

namespace polymath {

struct GradCheckResult {
    bool ok = true;
    double max_abs_error = 0;
    std::int64_t checked = 0;
    std::string report;  // first mismatches, one per line
    explicit operator bool() const noexcept { return ok; }
};

struct GradCheckOptions {
    double eps = 1e-6;
    double atol = 1e-6;
    double rtol = 1e-4;
    std::uint64_t seed = 1234;
    int max_report = 8;
};

inline GradCheckResult grad_check(const std::function<Var<double>(const std::vector<Var<double>>&)>& f,
                                  std::vector<Var<double>> inputs, const GradCheckOptions& opt = {}) {
    for (auto& v : inputs) {
        POLYMATH_CHECK(v.defined() && v.is_leaf(), "grad_check", "inputs must be defined leaf Vars");
        v.zero_grad();
        v.set_requires_grad(true);
    }
    Var<double> y = f(inputs);
    Generator gen(opt.seed);
    const Tensor<double> w = Tensor<double>::rand(y.shape(), gen);
    auto weighted = [&](const Tensor<double>& t) {
        const Tensor<double> c = t.contiguous();
        const Tensor<double> wc = w.contiguous();
        double acc = 0;
        for (std::int64_t i = 0; i < c.numel(); ++i) acc += c.data()[i] * wc.data()[i];
        return acc;
    };
    y.backward(w);

    GradCheckResult res;
    std::ostringstream rep;
    int reported = 0;
    NoGradGuard ng;
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        const Tensor<double>& x = inputs[k].value();
        const Tensor<double> analytic =
            inputs[k].grad().defined() ? inputs[k].grad().contiguous() : Tensor<double>::zeros(x.shape());
        std::int64_t j = 0;
        double* base = x.storage()->data();
        x.for_each_offset([&](std::int64_t off) {
            const double orig = base[off];
            base[off] = orig + opt.eps;
            const double lp = weighted(f(inputs).value());
            base[off] = orig - opt.eps;
            const double lm = weighted(f(inputs).value());
            base[off] = orig;
            const double num = (lp - lm) / (2 * opt.eps);
            const double ana = analytic.data()[j];
            const double err = std::fabs(ana - num);
            res.max_abs_error = std::max(res.max_abs_error, err);
            ++res.checked;
            if (!(err <= opt.atol + opt.rtol * std::fabs(num))) {
                res.ok = false;
                if (reported++ < opt.max_report)
                    rep << "input " << k << " element " << j << ": analytic " << ana << " vs numeric " << num << '\n';
            }
            ++j;
        });
    }
    res.report = rep.str();
    return res;
}

}  // namespace polymath
