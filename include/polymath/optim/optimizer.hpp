// polymath/optim/optimizer.hpp — what every optimizer shares: the parameter
// list, the step loop, per-parameter state slots, and checkpointing of that
// state.
//
//   nn::Linear<float> fc(16, 4);
//   optim::Adam<float> opt(fc.named_parameters(), {.lr = 1e-3});
//   for (...) {
//       opt.zero_grad();
//       Var<float> loss = mean(square(fc(x) - y));
//       loss.backward();
//       opt.step();                       // updates fc's parameters in place
//   }
//   optim::OptimizerState<float> s = opt.state();   // snapshot (copies)
//   optim::Adam<float> resumed(fc.named_parameters(), {});
//   resumed.load_state(s);                // continues bit-identically
//
// step() increments step_count() and, for every parameter that requires grad
// AND has a defined grad(), updates the parameter's value tensor IN PLACE (the
// model sees the new values; no new tensors are attached). Parameters that are
// frozen or got no gradient are skipped and their state is left untouched.
// Each parameter keeps its own step counter t (1 on its first update), as
// torch.optim does, so bias corrections stay right for parameters that are
// skipped on some steps.
//
// State: each parameter owns a fixed list of slot tensors (e.g. Adam's
// "exp_avg", "exp_avg_sq"), created as zeros on its first update. state()
// returns
//   tensors: "<param name>.<slot>"  -> copy of the slot (parameters that were
//            never updated have no entries)
//   scalars: "optimizer" -> class name ("SGD", "Adam", ...), "step" -> step
//            count, "lr" -> learning rate, every hyper-parameter by name, and
//            "<param name>.step" -> that parameter's t (only when t > 0).
//            Doubles are written with "%.17g" so they read back exactly.
// load_state() checks everything first (optimizer type, every scalar, missing /
// unexpected / wrongly-shaped slots, under the hyper-parameters being loaded)
// and throws one polymath::Error listing every problem, changing nothing; on
// success it restores lr, hyper-parameters, counters and copies of the slots.
//
// A subclass implements name(), slot_specs(), update(), save_hyper() and
// stage_hyper(); see sgd.hpp for the smallest example.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "polymath/autograd/var.hpp"
#include "polymath/core/error.hpp"
#include "polymath/core/parallel.hpp"
#include "polymath/nn/module.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::optim {

// A checkpoint of an optimizer (see the file comment for the names).
template <class T>
struct OptimizerState {
    std::vector<std::pair<std::string, Tensor<T>>> tensors;
    std::map<std::string, std::string> scalars;
};

// One state tensor a parameter carries once it has been updated.
struct SlotSpec {
    std::string name;
    Shape shape;
};

namespace detail {

template <class T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using CArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

#if defined(__GNUC__) || defined(__clang__)
#define POLYMATH_OPTIM_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define POLYMATH_OPTIM_NOINLINE __declspec(noinline)
#else
#define POLYMATH_OPTIM_NOINLINE
#endif

// f(b, e) behind one out-of-line call, so that the serial and the threaded
// paths of parallel_for run the same machine code (two inlined copies could
// be optimised, e.g. FMA-contracted, differently).
template <class F>
struct OneCopy {
    const F* f;
    POLYMATH_OPTIM_NOINLINE void operator()(std::int64_t b, std::int64_t e) const { (*f)(b, e); }
};

// parallel_for whose results do not depend on the thread count as long as
// f's work on [b, e) is a loop of independent units (rows, chunks).
template <class F>
void parallel_units(std::int64_t begin, std::int64_t end, std::int64_t grain, const F& f) {
    const OneCopy<F> body{&f};
    parallel_for(begin, end, grain, body);
}

// Calls f(b, e) over [0, n) in FIXED chunks of kChunk elements (chunks run in
// parallel above the elementwise grain). Why fixed: Eigen's packet path and
// its scalar peel/tail do not round identically (with EIGEN_FAST_MATH the
// AVX-512 packet sqrt is a Newton-refined approximation), so which elements
// take which path must depend only on the data layout, never on the thread
// count. With fixed chunks and 64-byte aligned tensors, updates are
// bit-reproducible for any number of threads.
inline constexpr std::int64_t kChunk = 8192;
template <class F>
void for_chunks(std::int64_t n, const F& f) {
    if (n <= 0) return;
    const std::int64_t chunks = (n + kChunk - 1) / kChunk;
    parallel_units(0, chunks, std::max<std::int64_t>(1, kElementwiseGrain / kChunk),
                   [&](std::int64_t c0, std::int64_t c1) {
                       for (std::int64_t c = c0; c < c1; ++c) f(c * kChunk, std::min(n, (c + 1) * kChunk));
                   });
}

// Deterministic sum over [0, n) of part(b, e) (a double): fixed blocks, summed
// in block order, so the result does not depend on the number of threads.
template <class F>
double block_sum(std::int64_t n, F&& part) {
    constexpr std::int64_t kBlock = 16384;
    if (n <= kBlock) return n > 0 ? part(std::int64_t(0), n) : 0.0;
    const std::int64_t blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
    parallel_units(0, blocks, std::max<std::int64_t>(1, kReductionGrain / kBlock), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t k = b; k < e; ++k)
            partial[static_cast<std::size_t>(k)] = part(k * kBlock, std::min(n, (k + 1) * kBlock));
    });
    double s = 0.0;
    for (double v : partial) s += v;
    return s;
}

// Sum of squares of x[0..n) in double.
template <class T>
double sum_squares(const T* x, std::int64_t n) {
    return block_sum(n, [x](std::int64_t b, std::int64_t e) {
        return CArrayMap<T>(x + b, e - b).template cast<double>().square().sum();
    });
}

// Root mean square of x[0..n) in double (0 for n == 0).
template <class T>
double rms(const T* x, std::int64_t n) {
    return n > 0 ? std::sqrt(sum_squares(x, n) / double(n)) : 0.0;
}

inline std::string format_double(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}
inline bool parse_double(const std::string& s, double& out) {
    if (s.empty()) return false;
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size()) return false;
    out = v;
    return true;
}
inline bool parse_int64(const std::string& s, std::int64_t& out) {
    if (s.empty()) return false;
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end != s.c_str() + s.size() || errno == ERANGE) return false;
    out = static_cast<std::int64_t>(v);
    return true;
}

}  // namespace detail

template <class T>
class Optimizer {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "polymath::optim: optimizers are built for float and double parameters");

public:
    using Param = nn::NamedParameter<T>;

    // Parameters by name (model.named_parameters()). Names must be unique.
    Optimizer(std::vector<Param> params, double lr) : lr_(lr) {
        std::set<std::string> names;
        std::set<const void*> impls;
        for (auto& p : params) {
            POLYMATH_CHECK(p.var.defined(), "Optimizer", "parameter '", p.name, "' is an undefined Var");
            POLYMATH_CHECK(names.insert(p.name).second, "Optimizer", "parameter name '", p.name,
                           "' appears more than once");
            POLYMATH_CHECK(impls.insert(p.var.impl().get()).second, "Optimizer", "parameter '", p.name,
                           "' is the same Var as an earlier parameter");
            entries_.push_back(Entry{std::move(p), 0, {}});
        }
        check_lr(lr, "Optimizer");
    }
    // Unnamed parameters: named "0", "1", ... in order.
    Optimizer(const std::vector<Var<T>>& params, double lr) : Optimizer(name_in_order(params), lr) {}

    virtual ~Optimizer() = default;
    Optimizer(const Optimizer&) = delete;  // slots are shared handles: a copy would alias them
    Optimizer& operator=(const Optimizer&) = delete;
    Optimizer(Optimizer&&) = default;
    Optimizer& operator=(Optimizer&&) = default;

    // Class name, written into state() as "optimizer".
    virtual std::string name() const = 0;

    // One update of every parameter that requires grad and has a gradient.
    virtual void step() {
        ++step_count_;
        for (auto& e : entries_) {
            const Var<T>& v = e.param.var;
            if (!v.requires_grad()) continue;
            const Tensor<T>& graw = v.grad();
            if (!graw.defined()) continue;
            const Tensor<T> p = v.value();
            const std::string op = name() + "::step";
            POLYMATH_CHECK(graw.shape() == p.shape(), op, "gradient of parameter '", e.param.name, "' has shape ",
                           graw.shape(), " but the parameter has shape ", p.shape());
            POLYMATH_CHECK(p.is_contiguous(), op, "parameter '", e.param.name,
                           "' is not contiguous; optimizers update parameter storage in place");
            if (e.step == 0) {
                e.slots.clear();
                for (const auto& s : slot_specs(p.shape())) e.slots.push_back(Tensor<T>::zeros(s.shape));
            }
            ++e.step;
            update(p, graw.contiguous(), e.slots, e.step);
        }
    }

    // Drops every parameter's gradient (Var::zero_grad).
    void zero_grad() {
        for (auto& e : entries_) e.param.var.zero_grad();
    }

    double lr() const noexcept { return lr_; }
    void set_lr(double lr) {
        check_lr(lr, name() + "::set_lr");
        lr_ = lr;
    }
    // Number of step() calls (restored by load_state).
    std::int64_t step_count() const noexcept { return step_count_; }
    // The parameters, in order.
    std::vector<Param> parameters() const {
        std::vector<Param> out;
        for (const auto& e : entries_) out.push_back(e.param);
        return out;
    }
    // The number of updates parameter i has received (its t).
    std::int64_t parameter_step(std::size_t i) const {
        POLYMATH_CHECK(i < entries_.size(), name() + "::parameter_step", "index ", i, " out of range for ",
                       entries_.size(), " parameters");
        return entries_[i].step;
    }

    // Snapshot of everything the next steps depend on (tensors are copies).
    OptimizerState<T> state() const {
        OptimizerState<T> st;
        st.scalars["optimizer"] = name();
        st.scalars["step"] = std::to_string(step_count_);
        st.scalars["lr"] = detail::format_double(lr_);
        save_hyper(st.scalars);
        for (const auto& e : entries_) {
            if (e.step == 0) continue;
            st.scalars[e.param.name + ".step"] = std::to_string(e.step);
            const auto specs = slot_specs(e.param.var.shape());
            for (std::size_t k = 0; k < specs.size(); ++k)
                st.tensors.emplace_back(e.param.name + "." + specs[k].name, e.slots[k].clone());
        }
        return st;
    }

    // Restores a state() snapshot; see the file comment. All-or-nothing.
    void load_state(const OptimizerState<T>& st) {
        std::vector<std::string> problems;
        const auto& sc = st.scalars;
        std::set<std::string> used_scalars;
        auto lookup = [&](const std::string& key) -> const std::string* {
            auto it = sc.find(key);
            if (it == sc.end()) return nullptr;
            used_scalars.insert(key);
            return &it->second;
        };
        if (const std::string* o = lookup("optimizer")) {
            if (*o != name())
                problems.push_back("optimizer: the state is for '" + *o + "', this optimizer is '" + name() + "'");
        } else {
            problems.push_back("missing scalar: 'optimizer'");
        }
        std::int64_t step_count = 0;
        read_int(sc, "step", step_count, problems);
        used_scalars.insert("step");
        double lr = 0;
        read_double(sc, "lr", lr, problems);
        used_scalars.insert("lr");
        if (sc.count("lr") && !(std::isfinite(lr) && lr >= 0))
            problems.push_back("bad scalar: 'lr' = '" + sc.at("lr") + "' (must be finite and >= 0)");
        // Hyper-parameters: parsed into a staged copy; their names are "used".
        std::map<std::string, std::string> own;
        save_hyper(own);
        for (const auto& [k, v] : own) used_scalars.insert(k);
        Staged staged = stage_hyper(sc, problems);

        std::map<std::string, const Tensor<T>*> given;
        for (const auto& [n, t] : st.tensors) {
            if (!given.emplace(n, &t).second) problems.push_back("duplicate tensor: '" + n + "'");
        }
        std::vector<std::int64_t> steps(entries_.size(), 0);
        std::vector<std::vector<const Tensor<T>*>> plan(entries_.size());
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            const Entry& e = entries_[i];
            const std::string key = e.param.name + ".step";
            if (const std::string* s = lookup(key)) {
                if (!detail::parse_int64(*s, steps[i]) || steps[i] < 0) {
                    problems.push_back("bad scalar: '" + key + "' = '" + *s + "' (expected an integer >= 0)");
                    steps[i] = 0;
                }
            }
            if (steps[i] == 0) continue;
            for (const auto& spec : staged.slot_specs(e.param.var.shape())) {
                const std::string tn = e.param.name + "." + spec.name;
                auto it = given.find(tn);
                if (it == given.end()) {
                    std::ostringstream m;
                    m << "missing: '" << tn << "' (expected shape " << spec.shape << ")";
                    problems.push_back(m.str());
                    continue;
                }
                if (!it->second->defined() || it->second->shape() != spec.shape) {
                    std::ostringstream m;
                    m << "shape mismatch: '" << tn << "' expected " << spec.shape << " vs given ";
                    if (it->second->defined())
                        m << it->second->shape();
                    else
                        m << "an undefined tensor";
                    problems.push_back(m.str());
                } else {
                    plan[i].push_back(it->second);
                }
                given.erase(it);
            }
        }
        for (const auto& [n, t] : given) {
            std::ostringstream m;
            m << "unexpected: '" << n << "'";
            if (t->defined()) m << " (shape " << t->shape() << ")";
            problems.push_back(m.str());
        }
        for (const auto& [k, v] : sc) {
            if (!used_scalars.count(k)) problems.push_back("unexpected scalar: '" + k + "' = '" + v + "'");
        }
        if (!problems.empty()) {
            std::string all;
            for (const auto& p : problems) all += "\n  " + p;
            POLYMATH_THROW(name() + "::load_state", problems.size(),
                           " mismatch(es) between the optimizer and the state:", all);
        }
        // Commit.
        staged.commit();
        lr_ = lr;
        step_count_ = step_count;
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            entries_[i].step = steps[i];
            entries_[i].slots.clear();
            for (const Tensor<T>* t : plan[i]) entries_[i].slots.push_back(t->clone());
        }
    }

protected:
    // The result of parsing hyper-parameters in load_state: the slots each
    // parameter would have under them, and how to install them.
    struct Staged {
        std::function<std::vector<SlotSpec>(const Shape&)> slot_specs;
        std::function<void()> commit;
    };

    // The slots a parameter of shape `s` carries under the current settings.
    virtual std::vector<SlotSpec> slot_specs(const Shape& s) const = 0;
    // Updates p in place. p: the parameter value (contiguous); g: its gradient
    // (contiguous, same shape); slots: as slot_specs lists them (zeros before
    // the first update); t: this parameter's update count, 1 on the first.
    virtual void update(const Tensor<T>& p, const Tensor<T>& g, std::vector<Tensor<T>>& slots, std::int64_t t) = 0;
    // Writes every hyper-parameter except lr into `out`.
    virtual void save_hyper(std::map<std::string, std::string>& out) const = 0;
    // Reads the hyper-parameters save_hyper writes from `in` into a staged
    // copy, appending a line to `problems` for each missing / bad one.
    virtual Staged stage_hyper(const std::map<std::string, std::string>& in, std::vector<std::string>& problems) = 0;

    // ---- helpers for save_hyper / stage_hyper ------------------------------
    static void write_double(std::map<std::string, std::string>& out, const std::string& k, double v) {
        out[k] = detail::format_double(v);
    }
    static void write_bool(std::map<std::string, std::string>& out, const std::string& k, bool v) {
        out[k] = v ? "true" : "false";
    }
    static void read_double(const std::map<std::string, std::string>& in, const std::string& k, double& v,
                            std::vector<std::string>& problems) {
        auto it = in.find(k);
        if (it == in.end()) {
            problems.push_back("missing scalar: '" + k + "'");
        } else if (!detail::parse_double(it->second, v)) {
            problems.push_back("bad scalar: '" + k + "' = '" + it->second + "' (expected a number)");
        }
    }
    static void read_bool(const std::map<std::string, std::string>& in, const std::string& k, bool& v,
                          std::vector<std::string>& problems) {
        auto it = in.find(k);
        if (it == in.end()) {
            problems.push_back("missing scalar: '" + k + "'");
        } else if (it->second == "true" || it->second == "false") {
            v = it->second == "true";
        } else {
            problems.push_back("bad scalar: '" + k + "' = '" + it->second + "' (expected true or false)");
        }
    }
    static void read_int(const std::map<std::string, std::string>& in, const std::string& k, std::int64_t& v,
                         std::vector<std::string>& problems) {
        auto it = in.find(k);
        if (it == in.end()) {
            problems.push_back("missing scalar: '" + k + "'");
        } else if (!detail::parse_int64(it->second, v) || v < 0) {
            problems.push_back("bad scalar: '" + k + "' = '" + it->second + "' (expected an integer >= 0)");
        }
    }
    static void check_lr(double lr, const std::string& op) {
        POLYMATH_CHECK(std::isfinite(lr) && lr >= 0, op, "lr (learning rate) must be finite and >= 0, got ", lr);
    }

private:
    struct Entry {
        Param param;
        std::int64_t step = 0;
        std::vector<Tensor<T>> slots;
    };
    static std::vector<Param> name_in_order(const std::vector<Var<T>>& vars) {
        std::vector<Param> out;
        out.reserve(vars.size());
        for (std::size_t i = 0; i < vars.size(); ++i) out.push_back(Param{std::to_string(i), vars[i]});
        return out;
    }

    std::vector<Entry> entries_;
    double lr_;
    std::int64_t step_count_ = 0;
};

}  // namespace polymath::optim
