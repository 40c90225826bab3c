// Helpers shared by the ops tests (test_elementwise, test_reduce,
// test_index_ops, test_nn_ops): random inputs, reading values back, tensor
// comparison with tolerances (CHECK_CLOSE), grad_check with a report, and
// error-message checks. Everything is inline or a template, so that several
// .cpp files of the one test executable can include it.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "polymath/polymath.hpp"

namespace polymath::test {

using VarFn = std::function<Var<double>(const std::vector<Var<double>>&)>;
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Uniform in [lo, hi).
template <class T>
Tensor<T> uniform(const Shape& s, double lo, double hi, std::uint64_t seed) {
    Generator g(seed);
    return ops::affine(Tensor<T>::rand(s, g), T(hi - lo), T(lo));
}

// Values in row-major order, as double.
template <class T>
std::vector<double> values(const Tensor<T>& t) {
    std::vector<double> out;
    for (auto v : t.to_vector()) out.push_back(double(v));
    return out;
}

// All multi-indices of a shape, row-major.
inline std::vector<std::vector<std::int64_t>> all_indices(const Shape& s) {
    std::vector<std::vector<std::int64_t>> out;
    const std::int64_t n = numel_of(s);
    std::vector<std::int64_t> idx(std::size_t(s.size()), 0);
    for (std::int64_t k = 0; k < n; ++k) {
        out.push_back(idx);
        for (int d = s.size() - 1; d >= 0; --d) {
            if (++idx[std::size_t(d)] < s[d]) break;
            idx[std::size_t(d)] = 0;
        }
    }
    return out;
}

// "" when every element satisfies |got - want| <= atol + rtol |want| (NaN
// matches NaN, inf matches inf of the same sign); else the first mismatch.
template <class T>
std::string mismatch(const Tensor<T>& got, const std::vector<double>& want, double rtol, double atol) {
    const std::vector<double> g = values(got);
    if (g.size() != want.size()) return "size " + std::to_string(g.size()) + " vs " + std::to_string(want.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
        const double a = g[i], e = want[i];
        bool ok;
        if (std::isnan(e)) ok = std::isnan(a);
        else if (std::isinf(e)) ok = a == e;
        else ok = std::fabs(a - e) <= atol + rtol * std::fabs(e);
        if (!ok) {
            std::ostringstream os;
            os.precision(17);
            os << "element " << i << ": got " << a << ", want " << e;
            return os.str();
        }
    }
    return "";
}

// "" if |got - want| <= tol[i] everywhere (NaN matches NaN, equal values
// match whatever tol[i] is), else the first mismatch with its tolerance.
template <class T>
std::string mismatch(const Tensor<T>& got, const std::vector<double>& want, const std::vector<double>& tol) {
    const std::vector<double> g = values(got);
    if (g.size() != want.size()) return "size " + std::to_string(g.size()) + " vs " + std::to_string(want.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
        const bool ok = std::isnan(want[i]) ? std::isnan(g[i]) : (g[i] == want[i] || std::fabs(g[i] - want[i]) <= tol[i]);
        if (!ok) {
            std::ostringstream os;
            os.precision(17);
            os << "element " << i << ": got " << g[i] << ", want " << want[i] << " (tol " << tol[i] << ")";
            return os.str();
        }
    }
    return "";
}

// grad_check(f, inputs, opt) must pass and check at least one element; the
// report of a failure goes into the message.
inline void check_grads(const VarFn& f, const std::vector<Var<double>>& inputs, const GradCheckOptions& opt = {}) {
    const GradCheckResult r = grad_check(f, inputs, opt);
    CHECK_MESSAGE(r.ok, r.report);
    CHECK(r.checked > 0);
}
inline Var<double> leaf(const Tensor<double>& t) { return Var<double>(t, true); }

// The message of the polymath::Error thrown by f ("" if none).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
inline bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace polymath::test

// CHECK_CLOSE(got, want, rtol, atol): every element within atol + rtol |want|
// (NaN matches NaN, inf matches the same inf).
// CHECK_CLOSE(got, want, tol): element i within tol[i] (a std::vector<double>).
#define CHECK_CLOSE(got, want, ...)                                                  \
    do {                                                                             \
        const std::string m_ = ::polymath::test::mismatch((got), (want), __VA_ARGS__); \
        CHECK_MESSAGE(m_.empty(), m_);                                               \
    } while (0)
