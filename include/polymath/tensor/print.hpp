// polymath/tensor/print.hpp — prints tensors the way PyTorch does:
//
//   tensor([[1.0000, 2.5000],
//           [3.0000, 4.0000]])
//
// Floats use 4 decimals (or scientific notation when the magnitudes span more
// than 1e3, or go above 1e8 / below 1e-4), integer-valued floats print as
// "1.", columns are right-aligned, and tensors over 1000 elements are
// summarised with "..." keeping 3 items at each edge.
#pragma once
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "polymath/tensor/tensor.hpp"

namespace polymath {

struct PrintOptions {
    int precision = 4;
    std::int64_t threshold = 1000;
    std::int64_t edgeitems = 3;
};

namespace detail {

template <class T>
double as_double(T v) {
    if constexpr (std::is_same_v<T, double>)
        return v;
    else
        return static_cast<double>(static_cast<float>(v));
}

template <class T>
std::string format_scalar(T v, int mode, int precision) {
    char buf[64];
    if constexpr (std::is_same_v<T, bool>) {
        return v ? "True" : "False";
    } else if constexpr (std::is_integral_v<T>) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    } else {
        const double d = as_double(v);
        if (std::isnan(d)) return "nan";
        if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
        if (mode == 0)
            std::snprintf(buf, sizeof buf, "%.0f.", d);
        else if (mode == 1)
            std::snprintf(buf, sizeof buf, "%.*f", precision, d);
        else
            std::snprintf(buf, sizeof buf, "%.*e", precision, d);
    }
    return buf;
}

template <class T, class D>
void print_rec(std::ostream& os, const Tensor<T, D>& t, int axis, std::int64_t offset, const PrintOptions& po,
               bool summarize, int mode, std::size_t width, int indent) {
    const std::int64_t n = t.shape()[axis];
    const bool last = axis == t.dim() - 1;
    os << '[';
    auto item = [&](std::int64_t i) {
        const std::int64_t off = offset + i * t.strides()[axis];
        if (last) {
            std::string s = format_scalar(t.storage()->data()[off], mode, po.precision);
            os << std::string(width > s.size() ? width - s.size() : 0, ' ') << s;
        } else {
            print_rec(os, t, axis + 1, off, po, summarize, mode, width, indent + 1);
        }
    };
    auto sep = [&](bool first) {
        if (first) return;
        if (last) {
            os << ", ";
        } else {
            os << ',' << std::string(std::size_t(t.dim() - axis - 1), '\n') << std::string(std::size_t(indent + 1), ' ');
        }
    };
    if (summarize && n > 2 * po.edgeitems) {
        for (std::int64_t i = 0; i < po.edgeitems; ++i) {
            sep(i == 0);
            item(i);
        }
        sep(false);
        os << (last ? " ..." : "...");
        for (std::int64_t i = n - po.edgeitems; i < n; ++i) {
            sep(false);
            item(i);
        }
    } else {
        for (std::int64_t i = 0; i < n; ++i) {
            sep(i == 0);
            item(i);
        }
    }
    os << ']';
}

}  // namespace detail

template <class T>
std::ostream& print(std::ostream& os, const Tensor<T, Cpu>& t, const PrintOptions& po = {}) {
    if (!t.defined()) return os << "tensor(undefined)";
    const std::string prefix = "tensor(";
    const bool summarize = t.numel() > po.threshold;
    // Pick the float mode from the values shown.
    int mode = 1;
    if constexpr (!std::is_integral_v<T>) {
        bool all_int = true;
        double amax = 0, amin = INFINITY;
        t.for_each_offset([&](std::int64_t off) {
            const double d = detail::as_double(t.storage()->data()[off]);
            if (!std::isfinite(d)) return;
            if (d != std::nearbyint(d)) all_int = false;
            const double a = std::fabs(d);
            amax = std::max(amax, a);
            if (a > 0) amin = std::min(amin, a);
        });
        if (all_int && amax < 1e8)
            mode = 0;
        else if (amax > 1e8 || (amin < 1e-4) || (amin != INFINITY && amax / amin > 1e3))
            mode = 2;
    }
    std::size_t width = 0;
    t.for_each_offset([&](std::int64_t off) {
        width = std::max(width, detail::format_scalar(t.storage()->data()[off], mode, po.precision).size());
    });
    os << prefix;
    if (t.dim() == 0) {
        os << detail::format_scalar(*t.data(), mode, po.precision);
    } else {
        detail::print_rec(os, t, 0, t.offset(), po, summarize, mode, width, int(prefix.size()));
    }
    if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, std::int64_t> && !std::is_same_v<T, bool>)
        os << ", dtype=" << dtype_name(dtype_of_v<T>);
    return os << ')';
}

template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T, Cpu>& t) {
    return print(os, t);
}

template <class T>
std::string to_string(const Tensor<T, Cpu>& t) {
    std::ostringstream os;
    os << t;
    return os.str();
}

}  // namespace polymath
