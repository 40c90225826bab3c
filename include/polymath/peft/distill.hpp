// polymath/peft/distill.hpp — knowledge distillation with soft targets
// (Hinton et al. 2015).
//
//   Var<float> kd = peft::distillation_kl(student_logits, teacher_logits, /*temperature=*/4.0);
//   Var<float> loss = peft::distillation_loss(student_logits, teacher_logits, labels,
//                                             {.temperature = 4.0, .alpha = 0.9});
//
// distillation_kl = T² · (1/B) Σ_b KL(softmax(t_b / T) || softmax(s_b / T))
//                 = T² · (1/B) Σ_b Σ_k p_bk (log p_bk − log q_bk),
// p = teacher probabilities (a constant: no gradient reaches the teacher),
// q = student probabilities. The T² keeps the gradient's size independent of
// T, as in the paper. distillation_loss = alpha · that + (1 − alpha) ·
// cross_entropy(student, labels) (temperature 1 for the hard labels).
// Logits are [B, K]; terms with p = 0 contribute 0.
#pragma once
#include <cmath>
#include <cstdint>

#include "polymath/autograd/arith.hpp"
#include "polymath/autograd/loss.hpp"
#include "polymath/autograd/reduce.hpp"
#include "polymath/autograd/softmax.hpp"
#include "polymath/ops/softmax.hpp"

namespace polymath::peft {

template <class T>
Var<T> distillation_kl(const Var<T>& student_logits, const Tensor<T>& teacher_logits, double temperature) {
    POLYMATH_CHECK(student_logits.dim() == 2 && teacher_logits.shape() == student_logits.shape(),
                   "peft::distillation_kl", "student ", student_logits.shape(), " and teacher ", teacher_logits.shape(),
                   " logits must both be [B, K]");
    POLYMATH_CHECK(temperature > 0, "peft::distillation_kl", "temperature ", temperature, " must be positive");
    const std::int64_t B = student_logits.size(0);
    POLYMATH_CHECK(B > 0, "peft::distillation_kl", "empty batch ", student_logits.shape());
    const Tensor<T> p = ops::softmax(ops::mul_scalar(teacher_logits, T(1.0 / temperature)), -1).contiguous();
    double neg_entropy = 0;  // Σ p log p, the constant part of the KL
    for (std::int64_t i = 0; i < p.numel(); ++i)
        if (p.data()[i] > T(0)) neg_entropy += double(p.data()[i]) * std::log(double(p.data()[i]));
    const Var<T> log_q = log_softmax(student_logits * T(1.0 / temperature), -1);
    const Var<T> cross = sum(mul(Var<T>(p), log_q));  // Σ p log q
    const double t2 = temperature * temperature;
    return affine(cross, T(-t2 / double(B)), T(t2 * neg_entropy / double(B)));
}

struct DistillOptions {
    double temperature = 4.0;
    double alpha = 0.5;  // weight of the soft-target term
};

template <class T>
Var<T> distillation_loss(const Var<T>& student_logits, const Tensor<T>& teacher_logits,
                         const Tensor<std::int64_t>& labels, const DistillOptions& opt = {}) {
    POLYMATH_CHECK(opt.alpha >= 0 && opt.alpha <= 1, "peft::distillation_loss", "alpha ", opt.alpha, " not in [0, 1]");
    const Var<T> soft = distillation_kl(student_logits, teacher_logits, opt.temperature);
    const Var<T> hard = cross_entropy(student_logits, labels);
    return add(soft * T(opt.alpha), hard * T(1.0 - opt.alpha));
}

}  // namespace polymath::peft
