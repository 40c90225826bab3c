// polymath/optim/schedule.hpp — learning-rate schedules: small value types,
// lr = schedule(step), with `step` the number of optimizer steps already taken
// (opt.step_count() before the step() it is used for: 0 for the first update).
//
//   ConstantLR{base}:                         lr = base
//   LinearWarmupRsqrtDecay{base, warmup}:     tensor2tensor's
//       "constant*linear_warmup*rsqrt_decay" (utils/learning_rate.py, with
//       learning_rate_constant = base, learning_rate_warmup_steps = warmup):
//         linear_warmup = min(1, step / warmup)
//         rsqrt_decay   = 1 / sqrt(max(step, warmup))
//         lr = base * min(1, step / warmup) / sqrt(max(step, warmup))
//       tensor2tensor evaluates it at the global step BEFORE the update (0 on
//       the first one), so the first update has lr 0; passing step_count()
//       reproduces that. The peak, at step = warmup, is base / sqrt(warmup).
//   ExponentialDecay{base, gamma, steps_per_epoch}:
//         epoch = floor(step / steps_per_epoch);  lr = base * gamma^epoch
//       (torch ExponentialLR stepped once per epoch).
//   CosineSchedule{base, t_max, eta_min = 0, warmup = 0}:
//         step < warmup:  lr = base * step / warmup   (linear from 0)
//         otherwise, with s = step - warmup (torch CosineAnnealingLR closed form):
//           lr = eta_min + (base - eta_min) * (1 + cos(pi * s / t_max)) / 2
//       (past s = t_max the closed form rises again, as torch's does; keep
//       t_max >= the number of post-warmup steps.)
//
//   optim::LinearWarmupRsqrtDecay sched{.base = 0.2, .warmup = 4000};
//   for (...) { optim::apply_schedule(opt, sched); loss.backward(); opt.step(); opt.zero_grad(); }
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "polymath/core/error.hpp"
#include "polymath/optim/optimizer.hpp"

namespace polymath::optim {

struct ConstantLR {
    double base = 1e-3;
    double operator()(std::int64_t /*step*/) const { return base; }
};

struct LinearWarmupRsqrtDecay {
    double base = 1.0;
    std::int64_t warmup = 1;
    double operator()(std::int64_t step) const {
        POLYMATH_CHECK(warmup > 0, "LinearWarmupRsqrtDecay", "warmup must be > 0, got ", warmup);
        POLYMATH_CHECK(step >= 0, "LinearWarmupRsqrtDecay", "step must be >= 0, got ", step);
        const double s = double(step), w = double(warmup);
        return base * std::min(1.0, s / w) / std::sqrt(std::max(s, w));
    }
};

struct ExponentialDecay {
    double base = 1e-3;
    double gamma = 1.0;
    std::int64_t steps_per_epoch = 1;
    double operator()(std::int64_t step) const {
        POLYMATH_CHECK(steps_per_epoch > 0, "ExponentialDecay", "steps_per_epoch must be > 0, got ",
                       steps_per_epoch);
        POLYMATH_CHECK(step >= 0, "ExponentialDecay", "step must be >= 0, got ", step);
        return base * std::pow(gamma, double(step / steps_per_epoch));
    }
};

struct CosineSchedule {
    double base = 1e-3;
    std::int64_t t_max = 1;  // length of the cosine phase, in steps
    double eta_min = 0.0;
    std::int64_t warmup = 0;
    double operator()(std::int64_t step) const {
        POLYMATH_CHECK(t_max > 0, "CosineSchedule", "t_max must be > 0, got ", t_max);
        POLYMATH_CHECK(warmup >= 0 && step >= 0, "CosineSchedule", "warmup and step must be >= 0, got warmup=",
                       warmup, " step=", step);
        if (step < warmup) return base * double(step) / double(warmup);
        const double s = double(step - warmup);
        return eta_min + (base - eta_min) * (1.0 + std::cos(std::numbers::pi * s / double(t_max))) / 2.0;
    }
};

// Sets opt's learning rate to sched(step) and returns it.
template <class T, class S>
double apply_schedule(Optimizer<T>& opt, const S& sched, std::int64_t step) {
    const double lr = sched(step);
    opt.set_lr(lr);
    return lr;
}
// Same at step = opt.step_count() (the number of steps already taken).
template <class T, class S>
double apply_schedule(Optimizer<T>& opt, const S& sched) {
    return apply_schedule(opt, sched, opt.step_count());
}

}  // namespace polymath::optim
