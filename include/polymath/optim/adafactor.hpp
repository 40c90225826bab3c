// polymath/optim/adafactor.hpp — Adafactor (Shazeer & Stern 2018, "Adafactor:
// Adaptive Learning Rates with Sublinear Memory Cost"), as tensor2tensor's
// AdafactorOptimizer (used for MultiModel / Transformer) computes it, with the
// parameter-count-free relative step of the paper.
//
// Per parameter X with gradient G, at its t-th update (t = 1, 2, ...):
//
//   beta2_t = 1 - t^(-decay_exponent)                 (decay_exponent = 0.8)
//   Q       = G^2 + eps1                              (eps1 = 1e-30, elementwise)
//   factored (X has >= 2 dims and `factored`): over the last two dims [.., R, C]
//       vr = beta2_t * vr + (1 - beta2_t) * mean_over_C(Q)        shape [.., R]
//       vc = beta2_t * vc + (1 - beta2_t) * mean_over_R(Q)        shape [.., C]
//       V^ = vr * vc / mean_over_R(vr)       (rank-1 reconstruction, per leading index)
//       U  = G / sqrt(V^)   evaluated as  G * (1/sqrt(vr / mean(vr))) * (1/sqrt(vc))
//   otherwise (1-D, or factored = false):
//       v  = beta2_t * v + (1 - beta2_t) * Q
//       U  = G / sqrt(v)
//   update clipping (clip_threshold d = 1; d <= 0 turns it off):
//       U = U / max(1, RMS(U) / d)                    RMS(x) = sqrt(mean(x^2))
//   step size:
//       rho_t = relative_step ? min(1e-2, 1 / sqrt(t)) : lr
//       a_t   = multiply_by_parameter_scale ? max(eps2, RMS(X)) * rho_t : rho_t
//                                             (eps2 = 1e-3; RMS of X before this update)
//   weight decay (off by default, HF transformers' form):  X = X - weight_decay * a_t * X
//   momentum (beta1 > 0; off by default):  m = beta1 * m + (1 - beta1) * a_t * U;  X = X - m
//   otherwise:                             X = X - a_t * U
//
// Slots: "vr" and "vc" for factored parameters, "v" otherwise, plus "m" when
// beta1 > 0. Reductions are done in double, in a fixed order.
//
// Notes against the references:
//  - tensor2tensor counts t = global_step + 1 (one counter for the whole model);
//    here t is the parameter's own update count, as HF transformers and fairseq
//    keep it; both are equal when every parameter gets a gradient each step.
//  - tensor2tensor's default learning rate multiplies rho_t by 0.05 when
//    multiply_by_parameter_scale is off; here rho_t is the paper's / HF's
//    min(1e-2, 1/sqrt(t)) either way (pass relative_step = false and your own
//    lr to get any other scale).
//  - tensor2tensor adds grad_squared_mean * 1e-30 to the decay and step size
//    (an XLA-fusion hack, numerically nothing); it is not reproduced.
//  - With relative_step (the default) lr() is not used by the update.
//
//   optim::Adafactor<float> opt(model.named_parameters());            // paper defaults
//   optim::Adafactor<float> opt2(params, {.lr = 1e-3, .relative_step = false,
//                                         .multiply_by_parameter_scale = false, .beta1 = 0.9});
#pragma once
#include <algorithm>
#include <cmath>

#include "polymath/optim/optimizer.hpp"

namespace polymath::optim {

struct AdafactorOptions {
    double lr = 1e-3;                       // used only when relative_step is false
    bool relative_step = true;              // rho_t = min(1e-2, 1/sqrt(t))
    bool multiply_by_parameter_scale = true;
    double beta1 = 0.0;                     // momentum; 0 = off (no "m" slot)
    double decay_exponent = 0.8;            // beta2_t = 1 - t^(-decay_exponent)
    double eps1 = 1e-30;
    double eps2 = 1e-3;
    double clip_threshold = 1.0;            // <= 0: no update clipping
    bool factored = true;
    double weight_decay = 0.0;
};

template <class T>
class Adafactor : public Optimizer<T> {
    using Base = Optimizer<T>;

public:
    Adafactor(std::vector<nn::NamedParameter<T>> params, AdafactorOptions o = {})
        : Base(std::move(params), o.lr), o_(o) {
        check(o_, "Adafactor");
    }
    Adafactor(const std::vector<Var<T>>& params, AdafactorOptions o = {}) : Base(params, o.lr), o_(o) {
        check(o_, "Adafactor");
    }

    std::string name() const override { return "Adafactor"; }
    const AdafactorOptions& options() const noexcept { return o_; }

protected:
    std::vector<SlotSpec> slot_specs(const Shape& s) const override { return specs(o_, s); }

    void update(const Tensor<T>& pt, const Tensor<T>& gt, std::vector<Tensor<T>>& slots, std::int64_t t) override {
        const std::int64_t n = pt.numel();
        T* p = pt.data();
        const T* g = gt.data();
        const double beta2t = 1.0 - std::pow(double(t), -o_.decay_exponent);
        const double mix = 1.0 - beta2t;
        const T e1 = T(o_.eps1);
        // Step size, from X before any change.
        double a = o_.relative_step ? std::min(1e-2, 1.0 / std::sqrt(double(t))) : this->lr();
        if (o_.multiply_by_parameter_scale) a *= std::max(o_.eps2, detail::rms(p, n));

        Tensor<T> ut = Tensor<T>::empty(pt.shape());  // U
        T* u = ut.data();
        std::size_t next_slot = 0;
        if (factored(o_, pt.shape())) {
            const std::int64_t C = pt.size(-1), R = pt.size(-2), B = n / std::max<std::int64_t>(1, R * C);
            T* vr = slots[0].data();
            T* vc = slots[1].data();
            next_slot = 2;
            if (n > 0) {
                const std::int64_t rows = B * R;
                // vr: one mean per row, rows in parallel.
                detail::parallel_units(0, rows, std::max<std::int64_t>(1, kElementwiseGrain / C), [&](std::int64_t r0, std::int64_t r1) {
                    for (std::int64_t r = r0; r < r1; ++r) {
                        const double s = (detail::CArrayMap<T>(g + r * C, C).square() + e1).template cast<double>().sum();
                        vr[r] = T(beta2t * double(vr[r]) + mix * (s / double(C)));
                    }
                });
                // vc: column means, in parallel over (leading index, block of columns); rows summed in order.
                constexpr std::int64_t kCols = 256;
                const std::int64_t cblocks = (C + kCols - 1) / kCols;
                detail::parallel_units(0, B * cblocks, std::max<std::int64_t>(1, kElementwiseGrain / (R * kCols)),
                             [&](std::int64_t k0, std::int64_t k1) {
                                 Eigen::ArrayXd acc(kCols);
                                 for (std::int64_t k = k0; k < k1; ++k) {
                                     const std::int64_t bi = k / cblocks, c0 = (k % cblocks) * kCols;
                                     const std::int64_t w = std::min(kCols, C - c0);
                                     acc.head(w).setZero();
                                     for (std::int64_t r = 0; r < R; ++r)
                                         acc.head(w) += (detail::CArrayMap<T>(g + (bi * R + r) * C + c0, w).square() + e1)
                                                            .template cast<double>();
                                     detail::ArrayMap<T> VC(vc + bi * C + c0, w);
                                     VC = (beta2t * VC.template cast<double>() + mix * (acc.head(w) / double(R)))
                                              .template cast<T>();
                                 }
                             });
                // Factors: 1/sqrt(vr / mean(vr)) per row, 1/sqrt(vc) per column. Eigen's packet
                // sqrt (EIGEN_FAST_MATH) is not correctly rounded, so which elements take the
                // packet path must not vary from run to run: buffers written by Eigen come from
                // the (64-byte aligned) tensor allocator, never from std::vector.
                std::vector<T> rowfac(static_cast<std::size_t>(rows));
                Tensor<T> colfac_t = Tensor<T>::empty({B * C});
                T* colfac = colfac_t.data();
                for (std::int64_t bi = 0; bi < B; ++bi) {
                    double vr_sum = 0.0;
                    for (std::int64_t r = 0; r < R; ++r) vr_sum += double(vr[bi * R + r]);
                    const double vr_mean = vr_sum / double(R);
                    for (std::int64_t r = 0; r < R; ++r)
                        rowfac[std::size_t(bi * R + r)] = T(1.0 / std::sqrt(double(vr[bi * R + r]) / vr_mean));
                }
                detail::for_chunks(B * C, [&](std::int64_t b, std::int64_t e) {
                    detail::ArrayMap<T>(colfac + b, e - b) = T(1) / detail::CArrayMap<T>(vc + b, e - b).sqrt();
                });
                // U = G * rowfac * colfac, rows in parallel.
                detail::parallel_units(0, rows, std::max<std::int64_t>(1, kElementwiseGrain / C), [&](std::int64_t r0, std::int64_t r1) {
                    for (std::int64_t r = r0; r < r1; ++r) {
                        const std::int64_t bi = r / R;
                        detail::ArrayMap<T>(u + r * C, C) = detail::CArrayMap<T>(g + r * C, C) * rowfac[std::size_t(r)] *
                                                            detail::CArrayMap<T>(colfac + bi * C, C);
                    }
                });
            }
        } else {
            T* v = slots[0].data();
            next_slot = 1;
            const T tb = T(beta2t), tm = T(mix);
            detail::for_chunks(n, [&](std::int64_t b, std::int64_t e) {
                detail::ArrayMap<T> V(v + b, e - b), U(u + b, e - b);
                const detail::CArrayMap<T> G(g + b, e - b);
                V = tb * V + tm * (G.square() + e1);
                U = G / V.sqrt();
            });
        }
        if (o_.clip_threshold > 0) {
            const double denom = std::max(1.0, detail::rms(u, n) / o_.clip_threshold);
            if (denom > 1.0) {
                const T d = T(denom);
                detail::for_chunks(n, [&](std::int64_t b, std::int64_t e) {
                    detail::ArrayMap<T> U(u + b, e - b);
                    U = U / d;
                });
            }
        }
        const T ta = T(a), wda = T(o_.weight_decay * a);
        const bool use_wd = o_.weight_decay != 0.0;
        T* m = o_.beta1 > 0 ? slots[next_slot].data() : nullptr;
        const T b1 = T(o_.beta1), c1 = T(1.0 - o_.beta1);
        detail::for_chunks(n, [&](std::int64_t b, std::int64_t e) {
            detail::ArrayMap<T> P(p + b, e - b);
            const detail::CArrayMap<T> U(u + b, e - b);
            if (use_wd) P = P - wda * P;
            if (m) {
                detail::ArrayMap<T> M(m + b, e - b);
                M = b1 * M + c1 * (ta * U);
                P = P - M;
            } else {
                P = P - ta * U;
            }
        });
    }

    void save_hyper(std::map<std::string, std::string>& out) const override {
        this->write_bool(out, "relative_step", o_.relative_step);
        this->write_bool(out, "multiply_by_parameter_scale", o_.multiply_by_parameter_scale);
        this->write_double(out, "beta1", o_.beta1);
        this->write_double(out, "decay_exponent", o_.decay_exponent);
        this->write_double(out, "eps1", o_.eps1);
        this->write_double(out, "eps2", o_.eps2);
        this->write_double(out, "clip_threshold", o_.clip_threshold);
        this->write_bool(out, "factored", o_.factored);
        this->write_double(out, "weight_decay", o_.weight_decay);
    }
    typename Base::Staged stage_hyper(const std::map<std::string, std::string>& in,
                                      std::vector<std::string>& problems) override {
        AdafactorOptions o = o_;
        this->read_bool(in, "relative_step", o.relative_step, problems);
        this->read_bool(in, "multiply_by_parameter_scale", o.multiply_by_parameter_scale, problems);
        this->read_double(in, "beta1", o.beta1, problems);
        this->read_double(in, "decay_exponent", o.decay_exponent, problems);
        this->read_double(in, "eps1", o.eps1, problems);
        this->read_double(in, "eps2", o.eps2, problems);
        this->read_double(in, "clip_threshold", o.clip_threshold, problems);
        this->read_bool(in, "factored", o.factored, problems);
        this->read_double(in, "weight_decay", o.weight_decay, problems);
        try {
            check(o, "load_state");
        } catch (const Error& err) {
            problems.push_back(std::string("bad hyper-parameters: ") + err.what());
        }
        return {[o](const Shape& s) { return specs(o, s); }, [this, o] { o_ = o; }};
    }

private:
    static bool factored(const AdafactorOptions& o, const Shape& s) { return o.factored && s.size() >= 2; }
    static std::vector<SlotSpec> specs(const AdafactorOptions& o, const Shape& s) {
        std::vector<SlotSpec> out;
        if (factored(o, s)) {
            Shape row = s, col = s;
            row.erase(s.size() - 1);  // [.., R]
            col.erase(s.size() - 2);  // [.., C]
            out.push_back({"vr", row});
            out.push_back({"vc", col});
        } else {
            out.push_back({"v", s});
        }
        if (o.beta1 > 0) out.push_back({"m", s});
        return out;
    }
    static void check(const AdafactorOptions& o, const char* op) {
        POLYMATH_CHECK(std::isfinite(o.lr) && o.lr >= 0, op, "lr must be finite and >= 0, got ", o.lr);
        POLYMATH_CHECK(o.beta1 >= 0 && o.beta1 < 1, op, "beta1 must be in [0, 1), got ", o.beta1);
        POLYMATH_CHECK(std::isfinite(o.decay_exponent) && o.decay_exponent > 0, op,
                       "decay_exponent must be > 0, got ", o.decay_exponent);
        POLYMATH_CHECK(std::isfinite(o.eps1) && o.eps1 > 0, op, "eps1 must be > 0, got ", o.eps1);
        POLYMATH_CHECK(std::isfinite(o.eps2) && o.eps2 >= 0, op, "eps2 must be >= 0, got ", o.eps2);
        POLYMATH_CHECK(!std::isnan(o.clip_threshold), op, "clip_threshold must not be NaN");
        POLYMATH_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, op, "weight_decay must be >= 0, got ",
                       o.weight_decay);
    }

    AdafactorOptions o_;
};

}  // namespace polymath::optim
