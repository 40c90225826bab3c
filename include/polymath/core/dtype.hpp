// polymath/core/dtype.hpp — element types and conversions.
//
// half (IEEE binary16) and bfloat16 are 16-bit storage types; arithmetic goes
// through float. float -> 16-bit conversion rounds to nearest, ties to even,
// keeps NaN a (quiet) NaN, overflows to infinity and produces subnormals, so
// results match CUDA's __float2half_rn / __float2bfloat16_rn bit for bit.
#pragma once
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "polymath/core/macros.hpp"

namespace polymath {

namespace detail {
POLYMATH_HOST_DEVICE inline std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}
POLYMATH_HOST_DEVICE inline float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

POLYMATH_HOST_DEVICE inline std::uint16_t float_to_half_bits(float f) {
    const std::uint32_t x = float_bits(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t absx = x & 0x7FFFFFFFu;
    if (absx > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((absx >> 13) & 0x3FFu));  // NaN
    if (absx >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
    if (absx < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
        if (absx < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < 2^-25 rounds to 0 (2^-25 ties to 0)
        const std::uint32_t e = absx >> 23;
        const std::uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
        const std::uint32_t shift = 126u - e;  // value = m * 2^(e-150); half subnormal unit 2^-24
        std::uint32_t r = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
        return static_cast<std::uint16_t>(sign | r);
    }
    // Normal: rebias exponent (127 -> 15), round 23-bit mantissa to 10 bits.
    std::uint32_t r = absx - 0x38000000u;  // exponent - 112
    const std::uint32_t rem = r & 0x1FFFu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // carry may reach inf: correct
    return static_cast<std::uint16_t>(sign | r);
}

POLYMATH_HOST_DEVICE inline float half_bits_to_float(std::uint16_t h) {
    const std::uint32_t sign = (std::uint32_t(h) & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1Fu) return bits_float(sign | 0x7F800000u | (m << 13));
    if (e == 0) {
        if (m == 0) return bits_float(sign);
        // subnormal: m * 2^-24, exact in float
        float v = static_cast<float>(m) * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

POLYMATH_HOST_DEVICE inline std::uint16_t float_to_bfloat16_bits(float f) {
    const std::uint32_t x = float_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
    const std::uint32_t lsb = (x >> 16) & 1u;
    return static_cast<std::uint16_t>((x + 0x7FFFu + lsb) >> 16);
}
POLYMATH_HOST_DEVICE inline float bfloat16_bits_to_float(std::uint16_t b) { return bits_float(std::uint32_t(b) << 16); }
}  // namespace detail

#define POLYMATH_DEFINE_16BIT_FLOAT(NAME, TO_BITS, TO_FLOAT)                                              \
    struct NAME {                                                                                           \
        std::uint16_t bits = 0;                                                                             \
        NAME() = default;                                                                                   \
        POLYMATH_HOST_DEVICE explicit NAME(float f) : bits(detail::TO_BITS(f)) {}                           \
        POLYMATH_HOST_DEVICE explicit NAME(double d) : bits(detail::TO_BITS(static_cast<float>(d))) {}      \
        POLYMATH_HOST_DEVICE explicit NAME(int i) : bits(detail::TO_BITS(static_cast<float>(i))) {}         \
        POLYMATH_HOST_DEVICE static NAME from_bits(std::uint16_t b) {                                       \
            NAME h;                                                                                         \
            h.bits = b;                                                                                     \
            return h;                                                                                       \
        }                                                                                                   \
        POLYMATH_HOST_DEVICE operator float() const { return detail::TO_FLOAT(bits); }                      \
        POLYMATH_HOST_DEVICE NAME operator-() const { return from_bits(static_cast<std::uint16_t>(bits ^ 0x8000u)); } \
    };                                                                                                      \
    POLYMATH_HOST_DEVICE inline NAME operator+(NAME a, NAME b) { return NAME(float(a) + float(b)); }        \
    POLYMATH_HOST_DEVICE inline NAME operator-(NAME a, NAME b) { return NAME(float(a) - float(b)); }        \
    POLYMATH_HOST_DEVICE inline NAME operator*(NAME a, NAME b) { return NAME(float(a) * float(b)); }        \
    POLYMATH_HOST_DEVICE inline NAME operator/(NAME a, NAME b) { return NAME(float(a) / float(b)); }        \
    POLYMATH_HOST_DEVICE inline NAME& operator+=(NAME& a, NAME b) { return a = a + b; }                     \
    POLYMATH_HOST_DEVICE inline bool operator==(NAME a, NAME b) { return float(a) == float(b); }            \
    POLYMATH_HOST_DEVICE inline bool operator!=(NAME a, NAME b) { return float(a) != float(b); }            \
    POLYMATH_HOST_DEVICE inline bool operator<(NAME a, NAME b) { return float(a) < float(b); }              \
    POLYMATH_HOST_DEVICE inline bool operator>(NAME a, NAME b) { return float(a) > float(b); }              \
    POLYMATH_HOST_DEVICE inline bool operator<=(NAME a, NAME b) { return float(a) <= float(b); }            \
    POLYMATH_HOST_DEVICE inline bool operator>=(NAME a, NAME b) { return float(a) >= float(b); }            \
    inline std::ostream& operator<<(std::ostream& os, NAME h) { return os << float(h); }

POLYMATH_DEFINE_16BIT_FLOAT(half, float_to_half_bits, half_bits_to_float)
POLYMATH_DEFINE_16BIT_FLOAT(bfloat16, float_to_bfloat16_bits, bfloat16_bits_to_float)
#undef POLYMATH_DEFINE_16BIT_FLOAT

enum class DType { Float32, Float64, Int32, Int64, UInt8, Bool, BFloat16, Float16 };

template <class T>
concept SupportedDType =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint8_t> || std::is_same_v<T, bool> ||
    std::is_same_v<T, bfloat16> || std::is_same_v<T, half>;
template <class T>
concept FloatingDType =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, half> || std::is_same_v<T, bfloat16>;
// The types CPU math ops compute in.
template <class T>
concept MathDType = std::is_same_v<T, float> || std::is_same_v<T, double>;

namespace detail {
template <class T>
inline constexpr bool dependent_false = false;
template <class T>
constexpr DType dtype_of() {
    if constexpr (std::is_same_v<T, float>) return DType::Float32;
    else if constexpr (std::is_same_v<T, double>) return DType::Float64;
    else if constexpr (std::is_same_v<T, std::int32_t>) return DType::Int32;
    else if constexpr (std::is_same_v<T, std::int64_t>) return DType::Int64;
    else if constexpr (std::is_same_v<T, std::uint8_t>) return DType::UInt8;
    else if constexpr (std::is_same_v<T, bool>) return DType::Bool;
    else if constexpr (std::is_same_v<T, bfloat16>) return DType::BFloat16;
    else if constexpr (std::is_same_v<T, half>) return DType::Float16;
    else {
        static_assert(dependent_false<T>,
                      "polymath: unsupported element type; use float, double, int32_t, int64_t, uint8_t, bool, "
                      "bfloat16 or half");
        return DType::Float32;
    }
}
}  // namespace detail

template <class T>
inline constexpr DType dtype_of_v = detail::dtype_of<T>();

constexpr std::string_view dtype_name(DType d) {
    switch (d) {
        case DType::Float32: return "float32";
        case DType::Float64: return "float64";
        case DType::Int32: return "int32";
        case DType::Int64: return "int64";
        case DType::UInt8: return "uint8";
        case DType::Bool: return "bool";
        case DType::BFloat16: return "bfloat16";
        case DType::Float16: return "float16";
    }
    return "unknown";
}
constexpr std::size_t dtype_size(DType d) {
    switch (d) {
        case DType::Float64:
        case DType::Int64: return 8;
        case DType::Float32:
        case DType::Int32: return 4;
        case DType::BFloat16:
        case DType::Float16: return 2;
        case DType::UInt8:
        case DType::Bool: return 1;
    }
    return 0;
}
inline std::ostream& operator<<(std::ostream& os, DType d) { return os << dtype_name(d); }

// Converts between any two supported types (16-bit floats via float; to bool:
// nonzero is true; float to integer truncates like static_cast).
template <class To, class From>
POLYMATH_HOST_DEVICE inline To dtype_cast(From v) {
    if constexpr (std::is_same_v<To, From>) {
        return v;
    } else if constexpr (std::is_same_v<To, bool>) {
        if constexpr (std::is_same_v<From, half> || std::is_same_v<From, bfloat16>) return float(v) != 0.0f;
        else return v != From(0);
    } else if constexpr (std::is_same_v<From, half> || std::is_same_v<From, bfloat16>) {
        if constexpr (std::is_same_v<To, half> || std::is_same_v<To, bfloat16>) return To(float(v));
        else return static_cast<To>(float(v));
    } else if constexpr (std::is_same_v<To, half> || std::is_same_v<To, bfloat16>) {
        return To(static_cast<float>(v));
    } else {
        return static_cast<To>(v);
    }
}

}  // namespace polymath
