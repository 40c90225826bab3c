// polymath/optim/sgd.hpp — stochastic gradient descent with momentum,
// dampening, Nesterov momentum and (L2) weight decay, exactly as
// torch.optim.SGD computes it. Per parameter p with gradient g, at its t-th
// update (t = 1, 2, ...):
//
//   d = g + weight_decay * p                          (if weight_decay != 0)
//   if momentum != 0:
//       b = d                                         (t == 1)
//       b = momentum * b + (1 - dampening) * d        (t > 1)
//       d = d + momentum * b   if nesterov, else  d = b
//   p = p - lr * d
//
// Slot: "momentum_buffer" (only when momentum != 0). Nesterov needs
// momentum > 0 and dampening == 0 (as torch checks).
//
//   optim::SGD<float> opt(model.named_parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
//   loss.backward(); opt.step(); opt.zero_grad();
#pragma once
#include "polymath/optim/optimizer.hpp"

namespace polymath::optim {

struct SGDOptions {
    double lr = 1e-3;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};

template <class T>
class SGD : public Optimizer<T> {
    using Base = Optimizer<T>;

public:
    SGD(std::vector<nn::NamedParameter<T>> params, SGDOptions o = {}) : Base(std::move(params), o.lr), o_(o) {
        check(o_, "SGD");
    }
    SGD(const std::vector<Var<T>>& params, SGDOptions o = {}) : Base(params, o.lr), o_(o) { check(o_, "SGD"); }

    std::string name() const override { return "SGD"; }
    // The hyper-parameters (lr as set at construction; see lr() for the current one).
    const SGDOptions& options() const noexcept { return o_; }

protected:
    std::vector<SlotSpec> slot_specs(const Shape& s) const override { return specs(o_, s); }

    void update(const Tensor<T>& pt, const Tensor<T>& gt, std::vector<Tensor<T>>& slots, std::int64_t t) override {
        const T lr = T(this->lr()), wd = T(o_.weight_decay), mom = T(o_.momentum), damp1 = T(1.0 - o_.dampening);
        const bool use_wd = o_.weight_decay != 0.0, use_mom = o_.momentum != 0.0, nest = o_.nesterov;
        T* p = pt.data();
        const T* g = gt.data();
        T* buf = use_mom ? slots[0].data() : nullptr;
        detail::for_chunks(pt.numel(), [&](std::int64_t b, std::int64_t e) {
            detail::ArrayMap<T> P(p + b, e - b);
            const detail::CArrayMap<T> G(g + b, e - b);
            // d as an expression, read before P is written (coefficient-wise).
            auto run = [&](const auto& d) {
                if (!use_mom) {
                    P = P - lr * d;
                    return;
                }
                detail::ArrayMap<T> B(buf + b, e - b);
                if (t == 1)
                    B = d;
                else
                    B = mom * B + damp1 * d;
                if (nest)
                    P = P - lr * (d + mom * B);
                else
                    P = P - lr * B;
            };
            if (use_wd)
                run(G + wd * P);
            else
                run(G);
        });
    }

    void save_hyper(std::map<std::string, std::string>& out) const override {
        this->write_double(out, "momentum", o_.momentum);
        this->write_double(out, "dampening", o_.dampening);
        this->write_double(out, "weight_decay", o_.weight_decay);
        this->write_bool(out, "nesterov", o_.nesterov);
    }
    typename Base::Staged stage_hyper(const std::map<std::string, std::string>& in,
                                      std::vector<std::string>& problems) override {
        SGDOptions o = o_;
        this->read_double(in, "momentum", o.momentum, problems);
        this->read_double(in, "dampening", o.dampening, problems);
        this->read_double(in, "weight_decay", o.weight_decay, problems);
        this->read_bool(in, "nesterov", o.nesterov, problems);
        try {
            check(o, "SGD::load_state");
        } catch (const Error& err) {
            problems.push_back(std::string("bad hyper-parameters: ") + err.what());
        }
        return {[o](const Shape& s) { return specs(o, s); }, [this, o] { o_ = o; }};
    }

private:
    static std::vector<SlotSpec> specs(const SGDOptions& o, const Shape& s) {
        if (o.momentum == 0.0) return {};
        return {SlotSpec{"momentum_buffer", s}};
    }
    static void check(const SGDOptions& o, const char* op) {
        POLYMATH_CHECK(std::isfinite(o.lr) && o.lr >= 0, op, "lr must be finite and >= 0, got ", o.lr);
        POLYMATH_CHECK(std::isfinite(o.momentum) && o.momentum >= 0, op, "momentum must be >= 0, got ", o.momentum);
        POLYMATH_CHECK(std::isfinite(o.dampening), op, "dampening must be finite, got ", o.dampening);
        POLYMATH_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, op, "weight_decay must be >= 0, got ",
                       o.weight_decay);
        POLYMATH_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), op,
                       "Nesterov momentum requires momentum > 0 and dampening == 0, got momentum=", o.momentum,
                       " dampening=", o.dampening);
    }

    SGDOptions o_;
};

}  // namespace polymath::optim
