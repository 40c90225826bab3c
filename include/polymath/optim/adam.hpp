// polymath/optim/adam.hpp — Adam and AdamW, as torch.optim.Adam / AdamW
// compute them. Per parameter p with gradient g, at its t-th update:
//
//   AdamW only:  p = p * (1 - lr * weight_decay)          (decoupled decay)
//   Adam only:   g = g + weight_decay * p                 (L2, if weight_decay != 0)
//   m = beta1 * m + (1 - beta1) * g     (evaluated as m + (1 - beta1) * (g - m), torch's lerp)
//   v = beta2 * v + (1 - beta2) * g * g
//   bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t                 (computed in double)
//   amsgrad:     v_max = max(v_max, v);  denom = sqrt(v_max) / sqrt(bc2) + eps
//   otherwise:   denom = sqrt(v) / sqrt(bc2) + eps        (eps outside the sqrt)
//   p = p - (lr / bc1) * (m / denom)
//
// Slots: "exp_avg" (m), "exp_avg_sq" (v), and "max_exp_avg_sq" with amsgrad.
// Defaults as torch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0 for
// Adam and 1e-2 for AdamW.
//
//   optim::AdamW<float> opt(model.named_parameters(), {.lr = 3e-4, .weight_decay = 0.1});
//   loss.backward(); opt.step(); opt.zero_grad();
#pragma once
#include <cmath>

#include "polymath/optim/optimizer.hpp"

namespace polymath::optim {

struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;  // L2 added to the gradient
    bool amsgrad = false;
};

struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay
    bool amsgrad = false;
};

template <class T>
class Adam : public Optimizer<T> {
    using Base = Optimizer<T>;

public:
    Adam(std::vector<nn::NamedParameter<T>> params, AdamOptions o = {}) : Base(std::move(params), o.lr), o_(o) {
        check(o_, "Adam");
    }
    Adam(const std::vector<Var<T>>& params, AdamOptions o = {}) : Base(params, o.lr), o_(o) { check(o_, "Adam"); }

    std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }
    // The hyper-parameters (lr as set at construction; see lr() for the current one).
    const AdamOptions& options() const noexcept { return o_; }

protected:
    // For AdamW.
    template <class P>
    Adam(P&& params, const AdamWOptions& o, bool decoupled)
        : Base(std::forward<P>(params), o.lr),
          o_{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad},
          decoupled_(decoupled) {
        check(o_, "AdamW");
    }

    std::vector<SlotSpec> slot_specs(const Shape& s) const override { return specs(o_, s); }

    void update(const Tensor<T>& pt, const Tensor<T>& gt, std::vector<Tensor<T>>& slots, std::int64_t t) override {
        const double lr = this->lr();
        const double bc1 = 1.0 - std::pow(o_.beta1, double(t));
        const double bc2 = 1.0 - std::pow(o_.beta2, double(t));
        const T step_size = T(lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
        const T b2 = T(o_.beta2), eps = T(o_.eps), wd = T(o_.weight_decay);
        const T c1 = T(1.0 - o_.beta1), c2 = T(1.0 - o_.beta2), decay = T(1.0 - lr * o_.weight_decay);
        const bool use_wd = o_.weight_decay != 0.0, dec = decoupled_, ams = o_.amsgrad;
        T* p = pt.data();
        const T* g = gt.data();
        T* m = slots[0].data();
        T* v = slots[1].data();
        T* vmax = ams ? slots[2].data() : nullptr;
        detail::for_chunks(pt.numel(), [&](std::int64_t b, std::int64_t e) {
            const std::int64_t n = e - b;
            detail::ArrayMap<T> P(p + b, n), M(m + b, n), V(v + b, n);
            const detail::CArrayMap<T> G(g + b, n);
            if (dec && use_wd) P = P * decay;
            auto moments = [&](const auto& gg) {
                M = M + c1 * (gg - M);  // torch: exp_avg.lerp_(g, 1 - beta1)
                V = b2 * V + c2 * (gg * gg);
            };
            if (use_wd && !dec)
                moments(G + wd * P);
            else
                moments(G);
            if (ams) {
                detail::ArrayMap<T> VM(vmax + b, n);
                VM = VM.max(V);
                P = P - step_size * (M / (VM.sqrt() / bc2_sqrt + eps));
            } else {
                P = P - step_size * (M / (V.sqrt() / bc2_sqrt + eps));
            }
        });
    }

    void save_hyper(std::map<std::string, std::string>& out) const override {
        this->write_double(out, "beta1", o_.beta1);
        this->write_double(out, "beta2", o_.beta2);
        this->write_double(out, "eps", o_.eps);
        this->write_double(out, "weight_decay", o_.weight_decay);
        this->write_bool(out, "amsgrad", o_.amsgrad);
    }
    typename Base::Staged stage_hyper(const std::map<std::string, std::string>& in,
                                      std::vector<std::string>& problems) override {
        AdamOptions o = o_;
        this->read_double(in, "beta1", o.beta1, problems);
        this->read_double(in, "beta2", o.beta2, problems);
        this->read_double(in, "eps", o.eps, problems);
        this->read_double(in, "weight_decay", o.weight_decay, problems);
        this->read_bool(in, "amsgrad", o.amsgrad, problems);
        try {
            check(o, "load_state");
        } catch (const Error& err) {
            problems.push_back(std::string("bad hyper-parameters: ") + err.what());
        }
        return {[o](const Shape& s) { return specs(o, s); }, [this, o] { o_ = o; }};
    }

private:
    static std::vector<SlotSpec> specs(const AdamOptions& o, const Shape& s) {
        std::vector<SlotSpec> out{{"exp_avg", s}, {"exp_avg_sq", s}};
        if (o.amsgrad) out.push_back({"max_exp_avg_sq", s});
        return out;
    }
    static void check(const AdamOptions& o, const char* op) {
        POLYMATH_CHECK(std::isfinite(o.lr) && o.lr >= 0, op, "lr must be finite and >= 0, got ", o.lr);
        POLYMATH_CHECK(o.beta1 >= 0 && o.beta1 < 1, op, "beta1 must be in [0, 1), got ", o.beta1);
        POLYMATH_CHECK(o.beta2 >= 0 && o.beta2 < 1, op, "beta2 must be in [0, 1), got ", o.beta2);
        POLYMATH_CHECK(std::isfinite(o.eps) && o.eps >= 0, op, "eps must be finite and >= 0, got ", o.eps);
        POLYMATH_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, op, "weight_decay must be >= 0, got ",
                       o.weight_decay);
    }

    AdamOptions o_;
    bool decoupled_ = false;
};

// Adam with decoupled weight decay (Loshchilov & Hutter), torch.optim.AdamW.
template <class T>
class AdamW : public Adam<T> {
public:
    AdamW(std::vector<nn::NamedParameter<T>> params, AdamWOptions o = {}) : Adam<T>(std::move(params), o, true) {}
    AdamW(const std::vector<Var<T>>& params, AdamWOptions o = {}) : Adam<T>(params, o, true) {}
};

}  // namespace polymath::optim
