// polymath/tensor/tensor.hpp — Tensor<T, D>: a strided view into shared storage.
//
// A tensor is (storage, shape, strides, offset). Copying a Tensor copies the
// handle, not the data (like torch::Tensor); clone() copies the data. View
// operations (reshape of contiguous data, permute, transpose, slice, narrow,
// squeeze, unsqueeze, expand) share storage. dtype T and device D are template
// parameters: no run-time dispatch on either.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "polymath/core/device.hpp"
#include "polymath/core/dtype.hpp"
#include "polymath/core/error.hpp"
#include "polymath/core/parallel.hpp"
#include "polymath/core/philox.hpp"
#include "polymath/core/shape.hpp"
#include "polymath/tensor/storage.hpp"

namespace polymath {

template <class T, class D = Cpu>
class Tensor {
    static_assert(SupportedDType<T>,
                  "polymath::Tensor<T>: T must be one of float, double, int32_t, int64_t, uint8_t, bool, "
                  "bfloat16, half");
    static_assert(is_device_v<D>, "polymath::Tensor<T, D>: D must be polymath::Cpu or polymath::Cuda");

public:
    using value_type = T;
    using device_type = D;
    // Host memory: element access through data() is allowed. For other
    // devices, element-wise work goes through DeviceBackend<D> (storage.hpp).
    static constexpr bool on_host = std::is_same_v<D, Cpu>;

    // An undefined tensor (no storage); defined() is false.
    Tensor() = default;

    // 1-D tensor from a list: Tensor<float>{1, 2, 3}.
    Tensor(std::initializer_list<T> values) : Tensor(from_data(values.begin(), Shape{std::int64_t(values.size())})) {}
    // 2-D tensor from nested lists: Tensor<float>{{1, 2}, {3, 4}}.
    Tensor(std::initializer_list<std::initializer_list<T>> rows) {
        if constexpr (!on_host) {
            *this = Tensor<T, Cpu>(rows).template to<D>();
            return;
        }
        const std::int64_t r = static_cast<std::int64_t>(rows.size());
        const std::int64_t c = r ? static_cast<std::int64_t>(rows.begin()->size()) : 0;
        *this = empty({r, c});
        T* p = data();
        for (const auto& row : rows) {
            POLYMATH_CHECK(static_cast<std::int64_t>(row.size()) == c, "Tensor(initializer_list)",
                           "ragged nested list: rows of length ", c, " and ", row.size());
            p = std::copy(row.begin(), row.end(), p);
        }
    }

    // ---- creation ---------------------------------------------------------
    static Tensor empty(const Shape& shape) {
        check_shape(shape, "empty");
        Tensor t;
        t.storage_ = std::make_shared<Storage<T, D>>(numel_of(shape));
        t.shape_ = shape;
        t.strides_ = contiguous_strides(shape);
        return t;
    }
    static Tensor full(const Shape& shape, T value) {
        Tensor t = empty(shape);
        t.fill_(value);
        return t;
    }
    static Tensor zeros(const Shape& shape) { return full(shape, dtype_cast<T>(0)); }
    static Tensor ones(const Shape& shape) { return full(shape, dtype_cast<T>(1)); }
    static Tensor zeros_like(const Tensor& o) { return zeros(o.shape()); }
    static Tensor ones_like(const Tensor& o) { return ones(o.shape()); }
    static Tensor empty_like(const Tensor& o) { return empty(o.shape()); }

    // Copies n = numel(shape) elements from `src`.
    template <class It>
    static Tensor from_data(It src, const Shape& shape) {
        if constexpr (!on_host) return Tensor<T, Cpu>::from_data(src, shape).template to<D>();
        Tensor t = empty(shape);
        std::copy_n(src, t.numel(), t.data());
        return t;
    }
    static Tensor from_vector(const std::vector<T>& v, const Shape& shape) {
        POLYMATH_CHECK(static_cast<std::int64_t>(v.size()) == numel_of(shape), "from_vector", "vector of ",
                       v.size(), " elements does not fill shape ", shape, " (", numel_of(shape), " elements)");
        return from_data(v.begin(), shape);
    }
    static Tensor from_vector(const std::vector<T>& v) { return from_vector(v, Shape{std::int64_t(v.size())}); }

    // Wraps memory owned elsewhere, without copying. `keep_alive` (optional)
    // is held until the last tensor viewing the memory is gone.
    static Tensor from_blob(T* data, const Shape& shape, const Strides& strides,
                            std::shared_ptr<void> keep_alive = {}) {
        check_shape(shape, "from_blob");
        POLYMATH_CHECK(strides.size() == shape.size(), "from_blob", "shape ", shape, " and strides ", strides,
                       " differ in rank");
        std::int64_t extent = 1;
        for (int i = 0; i < shape.size(); ++i) {
            POLYMATH_CHECK(strides[i] >= 0, "from_blob", "negative stride in ", strides);
            if (shape[i] > 0) extent += (shape[i] - 1) * strides[i];
        }
        if (numel_of(shape) == 0) extent = 0;
        Tensor t;
        t.storage_ = std::make_shared<Storage<T, D>>(data, extent, std::move(keep_alive));
        t.shape_ = shape;
        t.strides_ = strides;
        return t;
    }
    static Tensor from_blob(T* data, const Shape& shape, std::shared_ptr<void> keep_alive = {}) {
        return from_blob(data, shape, contiguous_strides(shape), std::move(keep_alive));
    }

    // [start, end) with step, like torch.arange.
    static Tensor arange(double start, double end, double step = 1) {
        POLYMATH_CHECK(step != 0, "arange", "step must be nonzero");
        POLYMATH_CHECK((end - start) / step >= 0, "arange", "range [", start, ", ", end, ") with step ", step,
                       " is empty in the wrong direction");
        if constexpr (!on_host) return Tensor<T, Cpu>::arange(start, end, step).template to<D>();
        const auto n = static_cast<std::int64_t>(std::ceil((end - start) / step));
        Tensor t = empty({n});
        for (std::int64_t i = 0; i < n; ++i) t.data()[i] = dtype_cast<T>(start + double(i) * step);
        return t;
    }
    static Tensor arange(double end) { return arange(0, end, 1); }
    // n points from start to end inclusive.
    static Tensor linspace(double start, double end, std::int64_t n) {
        POLYMATH_CHECK(n >= 0, "linspace", "number of points must be >= 0, got ", n);
        if constexpr (!on_host) return Tensor<T, Cpu>::linspace(start, end, n).template to<D>();
        Tensor t = empty({n});
        const double step = n > 1 ? (end - start) / double(n - 1) : 0.0;
        for (std::int64_t i = 0; i < n; ++i)
            t.data()[i] = dtype_cast<T>(i == n - 1 && n > 1 ? end : start + double(i) * step);
        return t;
    }
    // Uniform [0, 1) from the Philox stream of `gen` (see core/philox.hpp).
    // On a device: drawn on the host, then copied (the same numbers, since the
    // stream is a pure function of (seed, offset)).
    static Tensor rand(const Shape& shape, Generator& gen = default_generator()) {
        if constexpr (!on_host) return Tensor<T, Cpu>::rand(shape, gen).template to<D>();
        return philox_fill(shape, gen, [](std::uint64_t seed, std::uint64_t j) {
            if constexpr (std::is_same_v<T, double>) return philox_uniform_double(seed, j);
            else return philox_uniform_float(seed, j);
        });
    }
    // Standard normal from the Philox stream of `gen`.
    static Tensor randn(const Shape& shape, Generator& gen = default_generator()) {
        if constexpr (!on_host) return Tensor<T, Cpu>::randn(shape, gen).template to<D>();
        return philox_fill(shape, gen, [](std::uint64_t seed, std::uint64_t j) {
            if constexpr (std::is_same_v<T, double>) return philox_normal_double(seed, j);
            else return philox_normal_float(seed, j);
        });
    }

    // ---- properties --------------------------------------------------------
    bool defined() const noexcept { return storage_ != nullptr; }
    const Shape& shape() const noexcept { return shape_; }
    const Strides& strides() const noexcept { return strides_; }
    int dim() const noexcept { return shape_.size(); }
    std::int64_t numel() const noexcept { return numel_of(shape_); }
    std::int64_t size(std::int64_t d) const { return shape_[normalize_axis(d, dim(), "size")]; }
    std::int64_t stride(std::int64_t d) const { return strides_[normalize_axis(d, dim(), "stride")]; }
    std::int64_t offset() const noexcept { return offset_; }
    static constexpr DType dtype() noexcept { return dtype_of_v<T>; }
    static constexpr std::string_view device() noexcept { return D::name; }
    // Index of the device holding the data (0 on the CPU), and "cpu" / "cuda:1".
    int device_index() const noexcept { return storage_ ? storage_->device_index() : 0; }
    std::string device_string() const {
        if constexpr (on_host) return std::string(D::name);
        else return std::string(D::name) + ":" + std::to_string(device_index());
    }
    // Pointer to element [0, 0, ...] (not to the start of the storage).
    T* data() const noexcept { return storage_ ? storage_->data() + offset_ : nullptr; }
    const std::shared_ptr<Storage<T, D>>& storage() const noexcept { return storage_; }
    bool shares_storage_with(const Tensor& o) const noexcept { return storage_ && storage_ == o.storage_; }

    bool is_contiguous() const noexcept {
        std::int64_t expect = 1;
        for (int i = dim() - 1; i >= 0; --i) {
            if (shape_[i] == 1) continue;
            if (strides_[i] != expect) return false;
            expect *= shape_[i];
        }
        return true;
    }

    // ---- element access (host) ---------------------------------------------
    // Value of a one-element tensor.
    T item() const {
        POLYMATH_CHECK(numel() == 1, "item", "tensor of shape ", shape_, " has ", numel(),
                       " elements; item() needs exactly one");
        if constexpr (!on_host) return DeviceBackend<D>::download(*this).item();
        else return *data();
    }
    T& at(std::initializer_list<std::int64_t> idx) const {
        static_assert(on_host, "Tensor::at reads host memory; copy the tensor with .to<polymath::Cpu>() first");
        return *element_ptr(idx.begin(), int(idx.size()));
    }
    T& at(const std::vector<std::int64_t>& idx) const {
        static_assert(on_host, "Tensor::at reads host memory; copy the tensor with .to<polymath::Cpu>() first");
        return *element_ptr(idx.data(), int(idx.size()));
    }

    // Values in row-major order (copies).
    std::vector<T> to_vector() const {
        if constexpr (!on_host) return DeviceBackend<D>::download(*this).to_vector();
        const Tensor c = contiguous();
        return std::vector<T>(c.data(), c.data() + c.numel());
    }

    // ---- in-place -----------------------------------------------------------
    Tensor& fill_(T value) {
        if constexpr (!on_host) {
            check_defined("fill_");
            DeviceBackend<D>::fill(*this, value);
            return *this;
        }
        if (is_contiguous()) {
            T* p = data();
            parallel_for(0, numel(), kElementwiseGrain,
                         [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, value); });
        } else {
            for_each_offset([&](std::int64_t off) { storage_->data()[off] = value; });
        }
        return *this;
    }
    // Copies `src` (broadcast to this shape) into this tensor's elements.
    template <class U>
    Tensor& copy_(const Tensor<U, D>& src) {
        POLYMATH_CHECK(src.defined(), "copy_", "source tensor is undefined");
        const Shape target = broadcast_shapes(src.shape(), shape_, "copy_");
        POLYMATH_CHECK(target == shape_, "copy_", "source of shape ", src.shape(), " does not broadcast to ",
                       shape_);
        const Tensor<U, D> s = src.expand(shape_);
        if constexpr (!on_host) {
            DeviceBackend<D>::copy(*this, s);
            return *this;
        }
        if (is_contiguous() && s.is_contiguous()) {
            T* d = data();
            const U* p = s.data();
            parallel_for(0, numel(), kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
                for (std::int64_t i = b; i < e; ++i) d[i] = dtype_cast<T>(p[i]);
            });
            return *this;
        }
        // Strided: walk both index spaces together.
        std::vector<std::int64_t> idx(static_cast<std::size_t>(dim()), 0);
        const std::int64_t n = numel();
        T* base = storage_->data();
        const U* sbase = s.storage()->data();
        std::int64_t od = offset_, os = s.offset();
        for (std::int64_t k = 0; k < n; ++k) {
            base[od] = dtype_cast<T>(sbase[os]);
            for (int ax = dim() - 1; ax >= 0; --ax) {
                if (++idx[ax] < shape_[ax]) {
                    od += strides_[ax];
                    os += s.strides()[ax];
                    break;
                }
                od -= strides_[ax] * (shape_[ax] - 1);
                os -= s.strides()[ax] * (shape_[ax] - 1);
                idx[ax] = 0;
            }
        }
        return *this;
    }

    // ---- copies -------------------------------------------------------------
    // This tensor if already contiguous, else a contiguous copy.
    Tensor contiguous() const {
        if (!defined() || is_contiguous()) return *this;
        return clone();
    }
    Tensor clone() const {
        check_defined("clone");
        Tensor t = empty(shape_);
        t.copy_(*this);
        return t;
    }
    // to<U>() with a dtype U: conversion (a new contiguous tensor, unless U == T).
    // to<Cuda>() / to<Cpu>(): a copy on that device (this tensor if already there).
    template <class U>
    auto to() const {
        check_defined("to");
        if constexpr (is_device_v<U>) {
            if constexpr (std::is_same_v<U, D>) return *this;
            else if constexpr (on_host) return DeviceBackend<U>::upload(*this);
            else {
                static_assert(std::is_same_v<U, Cpu>, "Tensor::to<Device>: copies between two non-host devices go through the host");
                return DeviceBackend<D>::download(*this);
            }
        } else if constexpr (std::is_same_v<U, T>) {
            return *this;
        } else {
            Tensor<U, D> t = Tensor<U, D>::empty(shape_);
            t.copy_(*this);
            return t;
        }
    }

    // ---- views --------------------------------------------------------------
    // Same data, new shape; one extent may be -1. Throws if the strides do not allow a view.
    Tensor view(const Shape& new_shape) const {
        check_defined("view");
        const Shape s = infer_shape(new_shape, "view");
        Strides st;
        POLYMATH_CHECK(compute_view_strides(s, st), "view", "cannot view a tensor of shape ", shape_,
                       " and strides ", strides_, " as ", s, "; call contiguous() or reshape() instead");
        return with_geometry(s, st, offset_);
    }
    // Like view, but copies when the layout does not allow a view.
    Tensor reshape(const Shape& new_shape) const {
        check_defined("reshape");
        const Shape s = infer_shape(new_shape, "reshape");
        Strides st;
        if (compute_view_strides(s, st)) return with_geometry(s, st, offset_);
        return clone().view(s);
    }
    Tensor flatten(std::int64_t start = 0, std::int64_t end = -1) const {
        if (dim() == 0) return reshape({1});
        const int a = normalize_axis(start, dim(), "flatten"), b = normalize_axis(end, dim(), "flatten");
        POLYMATH_CHECK(a <= b, "flatten", "start axis ", start, " is after end axis ", end, " for shape ", shape_);
        Shape s;
        for (int i = 0; i < a; ++i) s.push_back(shape_[i]);
        std::int64_t m = 1;
        for (int i = a; i <= b; ++i) m *= shape_[i];
        s.push_back(m);
        for (int i = b + 1; i < dim(); ++i) s.push_back(shape_[i]);
        return reshape(s);
    }
    Tensor permute(const std::vector<std::int64_t>& dims) const {
        check_defined("permute");
        POLYMATH_CHECK(int(dims.size()) == dim(), "permute", "got ", dims.size(), " axes for a tensor of shape ",
                       shape_);
        Shape s;
        Strides st;
        std::vector<bool> seen(static_cast<std::size_t>(dim()), false);
        for (auto d : dims) {
            const int a = normalize_axis(d, dim(), "permute");
            POLYMATH_CHECK(!seen[std::size_t(a)], "permute", "axis ", d, " repeated in the permutation of a tensor of shape ",
                           shape_);
            seen[std::size_t(a)] = true;
            s.push_back(shape_[a]);
            st.push_back(strides_[a]);
        }
        return with_geometry(s, st, offset_);
    }
    Tensor transpose(std::int64_t d0, std::int64_t d1) const {
        check_defined("transpose");
        const int a = normalize_axis(d0, dim(), "transpose"), b = normalize_axis(d1, dim(), "transpose");
        Shape s = shape_;
        Strides st = strides_;
        std::swap(s[a], s[b]);
        std::swap(st[a], st[b]);
        return with_geometry(s, st, offset_);
    }
    // Transpose of a 2-D tensor.
    Tensor t() const {
        POLYMATH_CHECK(dim() == 2, "t", "expects a 2-D tensor, got shape ", shape_);
        return transpose(0, 1);
    }
    // Elements start, start+step, ... < end along `axis` (negative start/end count from the end).
    Tensor slice(std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step = 1) const {
        check_defined("slice");
        const int a = normalize_axis(axis, dim(), "slice");
        POLYMATH_CHECK(step >= 1, "slice", "step must be >= 1, got ", step);
        const std::int64_t n = shape_[a];
        if (start < 0) start += n;
        if (end < 0) end += n;
        start = std::clamp<std::int64_t>(start, 0, n);
        end = std::clamp<std::int64_t>(end, start, n);
        Shape s = shape_;
        Strides st = strides_;
        s[a] = (end - start + step - 1) / step;
        st[a] = strides_[a] * step;
        return with_geometry(s, st, offset_ + start * strides_[a]);
    }
    Tensor narrow(std::int64_t axis, std::int64_t start, std::int64_t length) const {
        check_defined("narrow");
        const int a = normalize_axis(axis, dim(), "narrow");
        if (start < 0) start += shape_[a];
        POLYMATH_CHECK(start >= 0 && length >= 0 && start + length <= shape_[a], "narrow", "range [", start, ", ",
                       start + length, ") is out of bounds for axis ", axis, " of shape ", shape_);
        return slice(a, start, start + length);
    }
    // Removes `axis` by picking index `index` on it.
    Tensor select(std::int64_t axis, std::int64_t index) const {
        check_defined("select");
        const int a = normalize_axis(axis, dim(), "select");
        if (index < 0) index += shape_[a];
        POLYMATH_CHECK(index >= 0 && index < shape_[a], "select", "index ", index, " is out of bounds for axis ",
                       axis, " of shape ", shape_);
        Shape s = shape_;
        Strides st = strides_;
        s.erase(a);
        st.erase(a);
        return with_geometry(s, st, offset_ + index * strides_[a]);
    }
    Tensor squeeze() const {
        Shape s;
        Strides st;
        for (int i = 0; i < dim(); ++i)
            if (shape_[i] != 1) {
                s.push_back(shape_[i]);
                st.push_back(strides_[i]);
            }
        return with_geometry(s, st, offset_);
    }
    Tensor squeeze(std::int64_t axis) const {
        const int a = normalize_axis(axis, dim(), "squeeze");
        if (dim() == 0 || shape_[a] != 1) return *this;
        Shape s = shape_;
        Strides st = strides_;
        s.erase(a);
        st.erase(a);
        return with_geometry(s, st, offset_);
    }
    Tensor unsqueeze(std::int64_t axis) const {
        check_defined("unsqueeze");
        const int a = normalize_axis(axis, dim() + 1, "unsqueeze");
        Shape s = shape_;
        Strides st = strides_;
        const std::int64_t stv = a < dim() ? strides_[a] * shape_[a] : 1;
        s.insert(a, 1);
        st.insert(a, stv);
        return with_geometry(s, st, offset_);
    }
    // Broadcast view to `target` (size-1 dims get stride 0; -1 keeps a dim).
    Tensor expand(const Shape& target) const {
        check_defined("expand");
        POLYMATH_CHECK(target.size() >= dim(), "expand", "cannot expand shape ", shape_, " to fewer dims ", target);
        Shape t = target;
        const int off = target.size() - dim();
        for (int i = 0; i < dim(); ++i) {
            if (t[i + off] == -1) t[i + off] = shape_[i];
            POLYMATH_CHECK(shape_[i] == t[i + off] || shape_[i] == 1, "expand", "cannot expand shape ", shape_,
                           " to ", target, " (dimension ", i + off, ")");
        }
        return with_geometry(t, broadcast_strides(shape_, strides_, t), offset_);
    }
    Tensor broadcast_to(const Shape& target) const { return expand(target); }

    // Visits the storage offset of every element in row-major order.
    template <class F>
    void for_each_offset(F&& f) const {
        const std::int64_t n = numel();
        if (n == 0) return;
        std::int64_t idx[kMaxDims] = {};
        std::int64_t off = offset_;
        for (std::int64_t k = 0; k < n; ++k) {
            f(off);
            for (int ax = dim() - 1; ax >= 0; --ax) {
                if (++idx[ax] < shape_[ax]) {
                    off += strides_[ax];
                    break;
                }
                off -= strides_[ax] * (shape_[ax] - 1);
                idx[ax] = 0;
            }
        }
    }

    // Same storage, other geometry (used by views and by ops).
    Tensor with_geometry(const Shape& s, const Strides& st, std::int64_t offset) const {
        Tensor t;
        t.storage_ = storage_;
        t.shape_ = s;
        t.strides_ = st;
        t.offset_ = offset;
        return t;
    }

    void check_defined(const char* op) const {
        POLYMATH_CHECK(defined(), op, "called on an undefined tensor");
    }

private:
    // Element i = draw(seed, offset + i) over a fresh range reserved from gen.
    template <class Draw>
    static Tensor philox_fill(const Shape& shape, Generator& gen, Draw draw) {
        Tensor t = empty(shape);
        const std::uint64_t seed = gen.seed(), off = gen.reserve(static_cast<std::uint64_t>(t.numel()));
        T* p = t.data();
        parallel_for(0, t.numel(), kElementwiseGrain, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i) p[i] = dtype_cast<T>(draw(seed, off + std::uint64_t(i)));
        });
        return t;
    }
    static void check_shape(const Shape& s, const char* op) {
        for (auto e : s) POLYMATH_CHECK(e >= 0, op, "negative extent in shape ", s);
    }
    T* element_ptr(const std::int64_t* idx, int n) const {
        check_defined("at");
        POLYMATH_CHECK(n == dim(), "at", "got ", n, " indices for a tensor of shape ", shape_);
        std::int64_t off = offset_;
        for (int i = 0; i < n; ++i) {
            std::int64_t k = idx[i] < 0 ? idx[i] + shape_[i] : idx[i];
            POLYMATH_CHECK(k >= 0 && k < shape_[i], "at", "index ", idx[i], " is out of bounds for axis ", i,
                           " of shape ", shape_);
            off += k * strides_[i];
        }
        return storage_->data() + off;
    }
    Shape infer_shape(const Shape& s, const char* op) const {
        Shape out = s;
        int infer = -1;
        std::int64_t known = 1;
        for (int i = 0; i < s.size(); ++i) {
            if (s[i] == -1) {
                POLYMATH_CHECK(infer < 0, op, "only one extent may be -1 in ", s);
                infer = i;
            } else {
                POLYMATH_CHECK(s[i] >= 0, op, "invalid extent in shape ", s);
                known *= s[i];
            }
        }
        if (infer >= 0) {
            POLYMATH_CHECK(known != 0 && numel() % known == 0, op, "cannot infer -1 in ", s, " for ", numel(),
                           " elements of shape ", shape_);
            out[infer] = numel() / known;
        }
        POLYMATH_CHECK(numel_of(out) == numel(), op, "shape ", s, " is invalid for a tensor of shape ", shape_,
                       " (", numel(), " elements)");
        return out;
    }
    // Strides for viewing this tensor as `s` without copying (PyTorch's
    // computeStride): possible when every group of merged/split old dims is
    // itself contiguous.
    bool compute_view_strides(const Shape& s, Strides& out) const {
        out = Strides::filled(s.size(), 1);
        if (numel() == 0) {
            out = contiguous_strides(s);
            return true;
        }
        int view_d = s.size() - 1;
        std::int64_t chunk_base_stride = dim() ? strides_[dim() - 1] : 1;
        std::int64_t tensor_numel = 1, view_numel = 1;
        for (int td = dim() - 1; td >= 0; --td) {
            tensor_numel *= shape_[td];
            if (td == 0 || (shape_[td - 1] != 1 && strides_[td - 1] != tensor_numel * chunk_base_stride)) {
                while (view_d >= 0 && (view_numel < tensor_numel || s[view_d] == 1)) {
                    out[view_d] = view_numel * chunk_base_stride;
                    view_numel *= s[view_d];
                    --view_d;
                }
                if (view_numel != tensor_numel) return false;
                if (td > 0) {
                    chunk_base_stride = strides_[td - 1];
                    tensor_numel = 1;
                    view_numel = 1;
                }
            }
        }
        while (view_d >= 0) {  // leading size-1 dims
            out[view_d] = 1;
            --view_d;
        }
        return true;
    }

    std::shared_ptr<Storage<T, D>> storage_;
    Shape shape_;
    Strides strides_;
    std::int64_t offset_ = 0;
};

// Free-function spellings of the factories: polymath::zeros<float>({2, 3}).
template <class T, class D = Cpu>
Tensor<T, D> empty(const Shape& s) { return Tensor<T, D>::empty(s); }
template <class T, class D = Cpu>
Tensor<T, D> zeros(const Shape& s) { return Tensor<T, D>::zeros(s); }
template <class T, class D = Cpu>
Tensor<T, D> ones(const Shape& s) { return Tensor<T, D>::ones(s); }
template <class T, class D = Cpu>
Tensor<T, D> full(const Shape& s, T v) { return Tensor<T, D>::full(s, v); }
template <class T, class D = Cpu>
Tensor<T, D> arange(double start, double end, double step = 1) { return Tensor<T, D>::arange(start, end, step); }
template <class T, class D = Cpu>
Tensor<T, D> linspace(double start, double end, std::int64_t n) { return Tensor<T, D>::linspace(start, end, n); }
template <class T, class D = Cpu>
Tensor<T, D> rand(const Shape& s, Generator& g = default_generator()) { return Tensor<T, D>::rand(s, g); }
template <class T, class D = Cpu>
Tensor<T, D> randn(const Shape& s, Generator& g = default_generator()) { return Tensor<T, D>::randn(s, g); }

}  // namespace polymath
