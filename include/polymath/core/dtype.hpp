// polymath/core/dtype.hpp — element types, their names and conversions.
//
// half (IEEE binary16) and bfloat16 are storage types: they halve memory and
// bandwidth, while arithmetic goes through float (CPUs have no 16-bit float
// math worth using). Every conversion into them is correctly rounded (to
// nearest, ties to even) from *any* source type — float, double and 64-bit
// integers included — so a value converts to the same bits whichever path it
// takes. The conversions are constexpr and POLYMATH_HOST_DEVICE, so the CUDA
// backend shares this code and CPU and GPU agree bit for bit (only NaN
// payloads may differ from CUDA's canonical 0x7FFF: we keep sign and payload).
//
// DType is the run-time tag of an element type (for messages, file formats and
// dispatch); dtype_of_v maps a C++ type to it at compile time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "polymath/core/macros.hpp"

// __builtin_bit_cast (GCC >= 11, Clang, MSVC, nvcc) makes the bit copies, and
// with them every conversion, usable in constant expressions.
#if defined(__has_builtin)
#if __has_builtin(__builtin_bit_cast)
#define POLYMATH_HAS_BUILTIN_BIT_CAST 1
#endif
#endif
#if defined(POLYMATH_HAS_BUILTIN_BIT_CAST)
#define POLYMATH_BIT_CAST_CONSTEXPR constexpr
#else
#define POLYMATH_BIT_CAST_CONSTEXPR inline
#endif

namespace polymath {

namespace detail {

POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR std::uint32_t float_bits(float f) {
#if defined(POLYMATH_HAS_BUILTIN_BIT_CAST)
    return __builtin_bit_cast(std::uint32_t, f);
#elif defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR float bits_float(std::uint32_t u) {
#if defined(POLYMATH_HAS_BUILTIN_BIT_CAST)
    return __builtin_bit_cast(float, u);
#elif defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// ---- float -> 16 bits, round to nearest even ----------------------------------

POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR std::uint16_t float_to_half_bits(float f) {
    const std::uint32_t x = float_bits(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t absx = x & 0x7FFFFFFFu;
    // NaN: force the quiet bit so a signalling payload that truncates to zero
    // cannot turn into infinity.
    if (absx > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((absx >> 13) & 0x3FFu));
    // 65520 = max half (65504) + half an ulp: the tie rounds to even, i.e. inf.
    if (absx >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
    if (absx < 0x38800000u) {  // below 2^-14, the smallest normal half
        // Below 2^-25 (half the smallest subnormal) is zero; 2^-25 itself ties to even (0).
        if (absx <= 0x33000000u) return static_cast<std::uint16_t>(sign);
        // value = m * 2^(e-150); in units of the half subnormal ulp 2^-24 that is m >> (126-e).
        const std::uint32_t e = absx >> 23;
        const std::uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
        const std::uint32_t shift = 126u - e;  // 14..24
        std::uint32_t r = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (r & 1u))) ++r;  // may carry into the smallest normal: correct
        return static_cast<std::uint16_t>(sign | r);
    }
    // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits.
    std::uint32_t r = absx - 0x38000000u;
    const std::uint32_t rem = r & 0x1FFFu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry into the exponent is the right answer
    return static_cast<std::uint16_t>(sign | r);
}

POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR float half_bits_to_float(std::uint16_t h) {
    const std::uint32_t sign = (std::uint32_t(h) & 0x8000u) << 16;
    const std::uint32_t e = (std::uint32_t(h) >> 10) & 0x1Fu, m = std::uint32_t(h) & 0x3FFu;
    if (e == 0x1Fu) return bits_float(sign | 0x7F800000u | (m << 13));  // inf / NaN, payload kept
    if (e == 0) {
        // Zero or subnormal: m * 2^-24, exact in float.
        const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR std::uint16_t float_to_bfloat16_bits(float f) {
    const std::uint32_t x = float_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);  // quiet NaN
    // Adding 0x7FFF (+1 when the kept lsb is odd) carries exactly when RNE rounds
    // up; overflow carries into the exponent and lands on inf, as it should.
    const std::uint32_t lsb = (x >> 16) & 1u;
    return static_cast<std::uint16_t>((x + 0x7FFFu + lsb) >> 16);
}
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR float bfloat16_bits_to_float(std::uint16_t b) {
    return bits_float(std::uint32_t(b) << 16);
}

// ---- wider sources -> float, rounded to odd -----------------------------------
//
// Going double -> float -> half with two round-to-nearest steps is wrong when the
// first step lands exactly on a half tie (1 + 2^-11 + 2^-40 would become 1.0
// instead of 1 + 2^-10). Rounding the first step to *odd* (truncate, then set
// the lsb if anything was lost) keeps the information that the value was not a
// tie; float has 24 bits, at least 2 more than half (11) and bfloat16 (8), so
// the second, nearest-even step is then exactly the correctly rounded result.

template <class F>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR float float_round_odd(F d) {
    constexpr F kFloatMax = static_cast<F>(3.40282346638528859811704183484516925e38);
    if (d != d) return static_cast<float>(d);  // NaN keeps sign and quiet bit
    // Beyond float range: FLT_MAX (odd) rounds to inf in every 16-bit format,
    // as the true value (or inf) does.
    if (d > kFloatMax) return bits_float(0x7F7FFFFFu);
    if (d < -kFloatMax) return bits_float(0xFF7FFFFFu);
    const float f = static_cast<float>(d);
    if (static_cast<F>(f) == d) return f;
    std::uint32_t b = float_bits(f);
    const bool away = d > 0 ? static_cast<F>(f) > d : static_cast<F>(f) < d;
    if (away) --b;  // one ulp toward zero (sign-magnitude, so a magnitude decrement)
    return bits_float(b | 1u);
}

POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR float uint64_round_odd(std::uint64_t u) {
    if (u < (std::uint64_t(1) << 24)) return static_cast<float>(u);  // exact
    int width = 0;
    for (std::uint64_t t = u; t != 0; t >>= 1) ++width;
    const int s = width - 24;
    const std::uint64_t w = (u >> s) | ((u & ((std::uint64_t(1) << s) - 1u)) != 0 ? 1u : 0u);
    // w < 2^24 is exact in float, and so is the scaling by 2^s (s <= 40).
    return static_cast<float>(w) * bits_float(static_cast<std::uint32_t>(127 + s) << 23);
}

// Any arithmetic value as a float that rounds correctly onward to half/bfloat16.
template <class T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR float to_float_for_16bit(T v) {
    if constexpr (std::is_same_v<T, float>) {
        return v;
    } else if constexpr (std::is_same_v<T, bool>) {
        return v ? 1.0f : 0.0f;
    } else if constexpr (std::is_integral_v<T>) {
        if constexpr (std::is_signed_v<T>) {
            const std::uint64_t mag = v < 0 ? std::uint64_t(0) - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
            const float m = uint64_round_odd(mag);
            return v < 0 ? -m : m;
        } else {
            return uint64_round_odd(static_cast<std::uint64_t>(v));
        }
    } else {
        return float_round_odd(v);
    }
}

template <class T>
inline constexpr bool dependent_false = false;

}  // namespace detail

// ---- the 16-bit float types ------------------------------------------------------
//
// Trivially default-constructible (so arrays of them, __shared__ ones included,
// need no initialisation) and trivially copyable; `half{}` is +0.

struct half {
    std::uint16_t bits;

    half() = default;
    POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR explicit half(float f) : bits(detail::float_to_half_bits(f)) {}
    // double, integers: correctly rounded too (not via a float rounding step).
    template <class T>
        requires(std::is_arithmetic_v<T> && !std::is_same_v<T, float>)
    POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR explicit half(T v)
        : bits(detail::float_to_half_bits(detail::to_float_for_16bit(v))) {}

    POLYMATH_HOST_DEVICE static constexpr half from_bits(std::uint16_t b) {
        half h{};
        h.bits = b;
        return h;
    }
    // Exact: every half is a float.
    POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR operator float() const { return detail::half_bits_to_float(bits); }
};

struct bfloat16 {
    std::uint16_t bits;

    bfloat16() = default;
    POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR explicit bfloat16(float f)
        : bits(detail::float_to_bfloat16_bits(f)) {}
    template <class T>
        requires(std::is_arithmetic_v<T> && !std::is_same_v<T, float>)
    POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR explicit bfloat16(T v)
        : bits(detail::float_to_bfloat16_bits(detail::to_float_for_16bit(v))) {}

    POLYMATH_HOST_DEVICE static constexpr bfloat16 from_bits(std::uint16_t b) {
        bfloat16 h{};
        h.bits = b;
        return h;
    }
    POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR operator float() const {
        return detail::bfloat16_bits_to_float(bits);
    }
};

static_assert(sizeof(half) == 2 && sizeof(bfloat16) == 2, "polymath: half and bfloat16 must be 2 bytes");
static_assert(std::is_trivially_copyable_v<half> && std::is_trivially_copyable_v<bfloat16>,
              "polymath: half and bfloat16 must be trivially copyable (they are memcpy'd and sent to the GPU)");

namespace detail {
template <class T>
inline constexpr bool is_float16_v = std::is_same_v<T, half> || std::is_same_v<T, bfloat16>;
}

// Arithmetic and comparisons go through float (exact widening, one rounding
// back), so a + b is the correctly rounded sum. Mixed half/float expressions use
// the implicit conversion and stay in float.
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T operator+(T a, T b) {
    return T(float(a) + float(b));
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T operator-(T a, T b) {
    return T(float(a) - float(b));
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T operator*(T a, T b) {
    return T(float(a) * float(b));
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T operator/(T a, T b) {
    return T(float(a) / float(b));
}
// Negation flips the sign bit only (exact, also for NaN and zero).
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE constexpr T operator-(T a) {
    return T::from_bits(static_cast<std::uint16_t>(a.bits ^ 0x8000u));
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE constexpr T operator+(T a) {
    return a;
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T& operator+=(T& a, T b) {
    return a = a + b;
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T& operator-=(T& a, T b) {
    return a = a - b;
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T& operator*=(T& a, T b) {
    return a = a * b;
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR T& operator/=(T& a, T b) {
    return a = a / b;
}
// IEEE semantics: NaN compares unequal to everything, +0 == -0.
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR bool operator==(T a, T b) {
    return float(a) == float(b);
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR bool operator!=(T a, T b) {
    return float(a) != float(b);
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR bool operator<(T a, T b) {
    return float(a) < float(b);
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR bool operator>(T a, T b) {
    return float(a) > float(b);
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR bool operator<=(T a, T b) {
    return float(a) <= float(b);
}
template <class T>
    requires detail::is_float16_v<T>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR bool operator>=(T a, T b) {
    return float(a) >= float(b);
}

inline std::ostream& operator<<(std::ostream& os, half h) { return os << float(h); }
inline std::ostream& operator<<(std::ostream& os, bfloat16 h) { return os << float(h); }

// ---- DType -------------------------------------------------------------------------

enum class DType { Float32, Float64, Int32, Int64, UInt8, Bool, BFloat16, Float16 };

template <class T>
concept SupportedDType =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint8_t> || std::is_same_v<T, bool> ||
    std::is_same_v<T, bfloat16> || std::is_same_v<T, half>;
template <class T>
concept FloatingDType =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, half> || std::is_same_v<T, bfloat16>;
// The types CPU math ops compute in (16-bit floats are converted first).
template <class T>
concept MathDType = std::is_same_v<T, float> || std::is_same_v<T, double>;

namespace detail {
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
                      "polymath: unsupported element type; tensors hold float, double, int32_t, int64_t, uint8_t, "
                      "bool, bfloat16 or half");
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
// Bytes per element.
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

// ---- dtype_cast ------------------------------------------------------------------
//
// One conversion rule for the whole library (Tensor::to, fills, mixed-dtype
// ops, CUDA kernels):
//   to bool:                 nonzero is true (NaN is nonzero, -0 is zero);
//   to half / bfloat16:      correctly rounded (nearest even) from any source;
//   16-bit float to others:  via float (exact);
//   everything else:         static_cast — so float to integer truncates toward
//                            zero, and out-of-range / NaN inputs are undefined,
//                            as in C++.
template <class To, class From>
POLYMATH_HOST_DEVICE POLYMATH_BIT_CAST_CONSTEXPR To dtype_cast(From v) {
    static_assert(SupportedDType<To>,
                  "polymath::dtype_cast: target must be float, double, int32_t, int64_t, uint8_t, bool, bfloat16 "
                  "or half");
    static_assert(SupportedDType<From> || std::is_arithmetic_v<From>,
                  "polymath::dtype_cast: source must be an arithmetic type, bfloat16 or half");
    if constexpr (std::is_same_v<To, From>) {
        return v;
    } else if constexpr (std::is_same_v<To, bool>) {
        if constexpr (detail::is_float16_v<From>) return (v.bits & 0x7FFFu) != 0;
        else return v != From(0);
    } else if constexpr (detail::is_float16_v<To>) {
        if constexpr (detail::is_float16_v<From>) return To(float(v));
        else return To(v);
    } else if constexpr (detail::is_float16_v<From>) {
        return static_cast<To>(float(v));
    } else {
        return static_cast<To>(v);
    }
}

}  // namespace polymath
