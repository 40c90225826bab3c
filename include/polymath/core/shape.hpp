// polymath/core/shape.hpp — shapes and strides.
//
// A DimVec keeps up to kMaxDims extents inline: shapes are created for every op
// result, so a heap allocation per shape would dominate the cost of small ops.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <vector>

#include "polymath/core/error.hpp"

namespace polymath {

inline constexpr int kMaxDims = 8;

class DimVec {
public:
    using value_type = std::int64_t;
    using iterator = std::int64_t*;
    using const_iterator = const std::int64_t*;

    constexpr DimVec() = default;
    DimVec(std::initializer_list<std::int64_t> il) { assign(il.begin(), il.end()); }
    explicit DimVec(const std::vector<std::int64_t>& v) { assign(v.begin(), v.end()); }
    template <class It>
    DimVec(It first, It last) { assign(first, last); }
    // n copies of `value`.
    static DimVec filled(int n, std::int64_t value) {
        DimVec d;
        d.resize(n, value);
        return d;
    }

    int size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    std::int64_t& operator[](int i) noexcept { return v_[i]; }
    std::int64_t operator[](int i) const noexcept { return v_[i]; }
    std::int64_t* begin() noexcept { return v_; }
    std::int64_t* end() noexcept { return v_ + n_; }
    const std::int64_t* begin() const noexcept { return v_; }
    const std::int64_t* end() const noexcept { return v_ + n_; }
    const std::int64_t* data() const noexcept { return v_; }
    std::int64_t back() const noexcept { return v_[n_ - 1]; }
    std::int64_t& back() noexcept { return v_[n_ - 1]; }

    void push_back(std::int64_t x) {
        POLYMATH_CHECK(n_ < kMaxDims, "Shape", "at most ", kMaxDims, " dimensions are supported");
        v_[n_++] = x;
    }
    void insert(int pos, std::int64_t x) {
        POLYMATH_CHECK(n_ < kMaxDims, "Shape", "at most ", kMaxDims, " dimensions are supported");
        for (int i = n_; i > pos; --i) v_[i] = v_[i - 1];
        v_[pos] = x;
        ++n_;
    }
    void erase(int pos) {
        for (int i = pos; i + 1 < n_; ++i) v_[i] = v_[i + 1];
        --n_;
    }
    void resize(int n, std::int64_t fill = 0) {
        POLYMATH_CHECK(n >= 0 && n <= kMaxDims, "Shape", "at most ", kMaxDims, " dimensions are supported, got ", n);
        for (int i = n_; i < n; ++i) v_[i] = fill;
        n_ = n;
    }
    std::vector<std::int64_t> vec() const { return {begin(), end()}; }

    friend bool operator==(const DimVec& a, const DimVec& b) noexcept {
        return a.n_ == b.n_ && std::equal(a.begin(), a.end(), b.begin());
    }
    friend bool operator!=(const DimVec& a, const DimVec& b) noexcept { return !(a == b); }
    friend std::ostream& operator<<(std::ostream& os, const DimVec& d) {
        os << '[';
        for (int i = 0; i < d.n_; ++i) os << (i ? ", " : "") << d.v_[i];
        return os << ']';
    }

private:
    template <class It>
    void assign(It first, It last) {
        n_ = 0;
        for (; first != last; ++first) push_back(static_cast<std::int64_t>(*first));
    }
    std::int64_t v_[kMaxDims] = {};
    int n_ = 0;
};

using Shape = DimVec;
using Strides = DimVec;

inline std::int64_t numel_of(const Shape& s) noexcept {
    std::int64_t n = 1;
    for (auto e : s) n *= e;
    return n;
}

// Row-major (C order) strides in elements.
inline Strides contiguous_strides(const Shape& s) {
    Strides st = Strides::filled(s.size(), 1);
    std::int64_t acc = 1;
    for (int i = s.size() - 1; i >= 0; --i) {
        st[i] = acc;
        acc *= std::max<std::int64_t>(s[i], 1);
    }
    return st;
}

// Maps a possibly negative axis into [0, ndim); throws naming the op otherwise.
inline int normalize_axis(std::int64_t axis, int ndim, const char* op) {
    const std::int64_t lo = -std::max(ndim, 1), hi = std::max(ndim, 1);
    POLYMATH_CHECK(axis >= lo && axis < hi, op, "axis ", axis, " is out of range for a tensor of rank ", ndim,
                   " (valid: ", lo, "..", hi - 1, ")");
    return static_cast<int>(axis < 0 ? axis + std::max(ndim, 1) : axis);
}

// NumPy broadcasting of two shapes; throws naming the op and both shapes.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
    const int n = std::max(a.size(), b.size());
    Shape out = Shape::filled(n, 1);
    for (int i = 0; i < n; ++i) {
        const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        POLYMATH_CHECK(da == db || da == 1 || db == 1, op, "shapes ", a, " and ", b,
                       " cannot be broadcast (dimension ", i, ": ", da, " vs ", db, ")");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

// Strides that read a tensor of shape `s` (strides `st`) as if it had shape
// `target` (broadcast dims get stride 0). `s` must broadcast to `target`.
inline Strides broadcast_strides(const Shape& s, const Strides& st, const Shape& target) {
    Strides out = Strides::filled(target.size(), 0);
    const int off = target.size() - s.size();
    for (int i = 0; i < s.size(); ++i) out[i + off] = (s[i] == 1 && target[i + off] != 1) ? 0 : st[i];
    return out;
}

}  // namespace polymath
