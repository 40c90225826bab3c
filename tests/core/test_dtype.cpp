// half / bfloat16 rounding against hand-derived bit patterns and an independent
// double-arithmetic reference; DType names, sizes, traits; dtype_cast rules.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <type_traits>

#include "polymath/core/dtype.hpp"

using namespace polymath;

namespace {

float f32(std::uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
std::uint32_t bits32(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// Reference: the value nearest to x (ties to even) on the grid of a binary
// format with `mant` stored mantissa bits, minimum normal exponent `emin` and
// overflow threshold `inf_at`, computed with plain double arithmetic (exact for
// every input used here: x has <= 53 bits and the grid spacing is a power of 2).
double ref_round(double x, int mant, int emin, double inf_at) {
    const double a = std::fabs(x);
    double r;
    if (a >= inf_at) {
        r = std::numeric_limits<double>::infinity();
    } else if (a == 0) {
        r = 0;
    } else {
        int e;
        std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)  =>  2^(e-1) <= a < 2^e
        const int ex = std::max(e - 1, emin);
        const double ulp = std::ldexp(1.0, ex - mant);
        const double q = a / ulp;
        double n = std::floor(q);
        const double frac = q - n;
        if (frac > 0.5 || (frac == 0.5 && std::fmod(n, 2.0) == 1.0)) n += 1;
        r = n * ulp;
    }
    return std::signbit(x) ? -r : r;
}
double ref_half(double x) { return ref_round(x, 10, -14, 65520.0); }
double ref_bf16(double x) { return ref_round(x, 7, -126, std::ldexp(2.0 - std::ldexp(1.0, -8), 127)); }

// The decoded value must equal the reference, including the sign of zero.
bool same_value(float got, double want) {
    return double(got) == want && std::signbit(got) == std::signbit(want);
}

}  // namespace

#if defined(POLYMATH_HAS_BUILTIN_BIT_CAST)
// The conversions are usable in constant expressions (host and device alike).
static_assert(half(1.0f).bits == 0x3C00);
static_assert(bfloat16(1.0f).bits == 0x3F80);
static_assert(float(half::from_bits(0x7BFF)) == 65504.0f);
static_assert(dtype_cast<half>(2.0).bits == 0x4000);
static_assert((half(1.0f) + half(2.0f)).bits == 0x4200);
#endif
static_assert(std::is_trivially_default_constructible_v<half> && std::is_trivially_default_constructible_v<bfloat16>);
static_assert(!std::is_convertible_v<float, half>, "float -> half must be explicit (it rounds)");
static_assert(std::is_convertible_v<half, float> && std::is_convertible_v<bfloat16, float>);
static_assert(std::is_same_v<decltype(half(1.0f) + 1.0f), float>, "mixed half/float arithmetic stays in float");
static_assert(std::is_same_v<decltype(half(1.0f) + half(1.0f)), half>);

TEST_CASE("float -> half rounds to the hand-derived bit patterns") {
    CHECK(half(1.0f).bits == 0x3C00);
    CHECK(half(-2.0f).bits == 0xC000);
    CHECK(half(0.5f).bits == 0x3800);
    CHECK(half(0.1f).bits == 0x2E66);  // 0.1 = 0x3DCCCCCD: mantissa 0x266 + remainder < half ulp
    CHECK(half(65504.0f).bits == 0x7BFF);
    CHECK(half(65519.996f).bits == 0x7BFF);  // just below the midpoint to 65536
    CHECK(half(65520.0f).bits == 0x7C00);    // the midpoint ties to even: inf
    CHECK(half(-65520.0f).bits == 0xFC00);
    CHECK(half(1e6f).bits == 0x7C00);
    CHECK(half(std::numeric_limits<float>::infinity()).bits == 0x7C00);
    CHECK(half(-std::numeric_limits<float>::infinity()).bits == 0xFC00);
    CHECK(half(0.0f).bits == 0x0000);
    CHECK(half(-0.0f).bits == 0x8000);
}

TEST_CASE("float -> half ties go to the even neighbour") {
    CHECK(half(0x1.002p0f).bits == 0x3C00);  // 1 + 2^-11: halfway 0x3C00/0x3C01 -> even
    CHECK(half(0x1.006p0f).bits == 0x3C02);  // 1 + 3*2^-11: halfway 0x3C01/0x3C02 -> even
    CHECK(half(0x1.002002p0f).bits == 0x3C01);  // a hair above the tie rounds up
    CHECK(half(0x1.001ffep0f).bits == 0x3C00);  // a hair below rounds down
    CHECK(half(0x1.004p0f).bits == 0x3C01);  // exactly representable
    CHECK(half(2049.0f).bits == 0x6800);     // 2048 + 1/2 ulp -> 2048 (even)
    CHECK(half(2051.0f).bits == 0x6802);     // 2048 + 3/2 ulp -> 2052 (even)
    CHECK(half(0x1.ffcp0f).bits == 0x3FFF);  // largest half below 2
    CHECK(half(0x1.ffep0f).bits == 0x4000);  // tie at the top of a binade: even is 2.0, carrying into the exponent
    CHECK(half(0x1.ffdffep0f).bits == 0x3FFF);
}

TEST_CASE("float -> half produces subnormals and underflows to signed zero") {
    CHECK(half(1e-8f).bits == 0x0000);
    CHECK(half(-1e-8f).bits == 0x8000);
    CHECK(half(5.96e-8f).bits == 0x0001);              // ~2^-24, the smallest subnormal
    CHECK(half(0x1p-24f).bits == 0x0001);
    CHECK(half(0x1p-25f).bits == 0x0000);              // exactly half the smallest subnormal: tie -> 0
    CHECK(half(-0x1p-25f).bits == 0x8000);
    CHECK(half(0x1.000002p-25f).bits == 0x0001);       // just above the tie
    CHECK(half(0x1.8p-24f).bits == 0x0002);            // 1.5 units: tie -> 2 (even)
    CHECK(half(0x1.4p-23f).bits == 0x0002);            // 2.5 units: tie -> 2 (even)
    CHECK(half(0x1.ff8p-15f).bits == 0x03FF);          // largest subnormal 1023 * 2^-24
    CHECK(half(0x1.ffcp-15f).bits == 0x0400);          // 1023.5 units: tie -> 1024 = smallest normal
    CHECK(half(0x1p-14f).bits == 0x0400);
    CHECK(half(std::numeric_limits<float>::denorm_min()).bits == 0x0000);
}

TEST_CASE("float -> half keeps NaN a quiet NaN with its sign") {
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    const half h(qnan);
    CHECK((h.bits & 0x7C00) == 0x7C00);
    CHECK((h.bits & 0x0200) != 0);  // quiet bit
    CHECK((half(-qnan).bits & 0x8000) != 0);
    CHECK((half(qnan).bits & 0x8000) == 0);
    // A signalling NaN whose payload lives only in the dropped low bits must not become inf.
    const half s(f32(0x7F800001u));
    CHECK((s.bits & 0x7C00) == 0x7C00);
    CHECK((s.bits & 0x03FF) != 0);
    CHECK(std::isnan(float(s)));
}

TEST_CASE("half -> float is exact for hand-picked patterns") {
    CHECK(float(half::from_bits(0x3C00)) == 1.0f);
    CHECK(float(half::from_bits(0x0001)) == 0x1p-24f);
    CHECK(float(half::from_bits(0x03FF)) == 1023 * 0x1p-24f);
    CHECK(float(half::from_bits(0x8001)) == -0x1p-24f);
    CHECK(float(half::from_bits(0x7BFF)) == 65504.0f);
    CHECK(float(half::from_bits(0x7C00)) == std::numeric_limits<float>::infinity());
    CHECK(float(half::from_bits(0xFC00)) == -std::numeric_limits<float>::infinity());
    const float nz = float(half::from_bits(0x8000));
    CHECK(nz == 0.0f);
    CHECK(std::signbit(nz));
    CHECK(std::isnan(float(half::from_bits(0x7E00))));
    CHECK(std::isnan(float(half::from_bits(0xFC01))));
}

TEST_CASE("float -> bfloat16 rounds to the hand-derived bit patterns") {
    CHECK(bfloat16(1.0f).bits == 0x3F80);
    CHECK(bfloat16(-1.0f).bits == 0xBF80);
    CHECK(bfloat16(3.0f).bits == 0x4040);
    CHECK(bfloat16(0x1.01p0f).bits == 0x3F80);      // 1 + 2^-8: tie -> even
    CHECK(bfloat16(0x1.03p0f).bits == 0x3F82);      // 1 + 3*2^-8: tie -> even
    CHECK(bfloat16(0x1.010002p0f).bits == 0x3F81);  // just above the tie
    CHECK(bfloat16(0x1.02p0f).bits == 0x3F81);
    CHECK(bfloat16(std::numeric_limits<float>::max()).bits == 0x7F80);  // rounds past the largest bfloat16
    CHECK(bfloat16(f32(0x7F7F7FFFu)).bits == 0x7F7F);
    CHECK(bfloat16(f32(0x7F7F8000u)).bits == 0x7F80);  // tie above the largest finite (odd) -> inf
    CHECK(bfloat16(std::numeric_limits<float>::infinity()).bits == 0x7F80);
    CHECK(bfloat16(-0.0f).bits == 0x8000);
    CHECK(bfloat16(f32(0x00000001u)).bits == 0x0000);  // float subnormals: same rules
    CHECK(bfloat16(f32(0x00008000u)).bits == 0x0000);  // tie -> even (0)
    CHECK(bfloat16(f32(0x00018000u)).bits == 0x0002);  // tie -> even (2)
    CHECK(bfloat16(f32(0x80018001u)).bits == 0x8002);
    const bfloat16 n(std::numeric_limits<float>::quiet_NaN());
    CHECK(std::isnan(float(n)));
    CHECK((bfloat16(-std::numeric_limits<float>::quiet_NaN()).bits & 0x8000) != 0);
    CHECK(std::isnan(float(bfloat16(f32(0x7F800001u)))));  // signalling NaN with a low payload stays NaN
    CHECK(float(bfloat16::from_bits(0x3F80)) == 1.0f);
    CHECK(float(bfloat16::from_bits(0x0001)) == 0x1p-133f);
}

TEST_CASE("every non-NaN half bit pattern survives half -> float -> half; NaNs stay NaN") {
    int checked = 0;
    for (std::uint32_t b = 0; b < 65536; ++b) {
        const half h = half::from_bits(static_cast<std::uint16_t>(b));
        const float f = float(h);
        const bool is_nan = (b & 0x7C00) == 0x7C00 && (b & 0x03FF) != 0;
        const std::uint16_t back = half(f).bits;
        if (is_nan) {
            REQUIRE(std::isnan(f));
            REQUIRE(back == (b | 0x0200));  // payload and sign kept, quiet bit set
        } else {
            if (back != b) FAIL_CHECK("half 0x" << std::hex << b << " came back as 0x" << back);
            ++checked;
        }
    }
    CHECK(checked == 65536 - 2 * 1023);
}

TEST_CASE("every non-NaN bfloat16 bit pattern survives bfloat16 -> float -> bfloat16; NaNs stay NaN") {
    int checked = 0;
    for (std::uint32_t b = 0; b < 65536; ++b) {
        const bfloat16 h = bfloat16::from_bits(static_cast<std::uint16_t>(b));
        const float f = float(h);
        CHECK(bits32(f) == (b << 16));  // widening is a shift: exact
        const bool is_nan = (b & 0x7F80) == 0x7F80 && (b & 0x007F) != 0;
        const std::uint16_t back = bfloat16(f).bits;
        if (is_nan) {
            REQUIRE(std::isnan(f));
            REQUIRE(back == (b | 0x0040));
        } else {
            if (back != b) FAIL_CHECK("bfloat16 0x" << std::hex << b << " came back as 0x" << back);
            ++checked;
        }
    }
    CHECK(checked == 65536 - 2 * 127);
}

TEST_CASE("float -> half and float -> bfloat16 match a double-arithmetic RNE reference on 1e6 random floats") {
    std::mt19937_64 rng(12345);
    int half_bad = 0, bf_bad = 0;
    for (int i = 0; i < 1000000; ++i) {
        float x;
        switch (i % 4) {
            case 0: {  // anywhere near the half range, including subnormals and overflow
                const int e = static_cast<int>(rng() % 48) - 30;  // 2^-30 .. 2^17
                const float m = 1.0f + static_cast<float>(rng() >> 41) * 0x1p-23f;
                x = std::ldexp(m, e) * ((rng() & 1) ? -1.0f : 1.0f);
                break;
            }
            case 1: {  // exact midpoints between neighbouring halves, and their float neighbours
                const std::uint16_t hb = static_cast<std::uint16_t>(rng() % 0x7BFF);
                const float mid = 0.5f * (float(half::from_bits(hb)) + float(half::from_bits(hb + 1)));
                const int nudge = static_cast<int>(rng() % 3) - 1;
                x = f32(bits32(mid) + nudge);
                if (rng() & 1) x = -x;
                break;
            }
            case 2: {  // exact midpoints between neighbouring bfloat16s
                const std::uint16_t bb = static_cast<std::uint16_t>(rng() % 0x7F7F);
                std::uint32_t mid = (std::uint32_t(bb) << 16) | 0x8000u;
                mid += static_cast<std::uint32_t>(static_cast<int>(rng() % 3) - 1);
                x = f32(mid | ((rng() & 1) ? 0x80000000u : 0u));
                break;
            }
            default: {  // any finite float
                std::uint32_t b;
                do b = static_cast<std::uint32_t>(rng()); while ((b & 0x7F800000u) == 0x7F800000u);
                x = f32(b);
            }
        }
        if (!same_value(float(half(x)), ref_half(x))) {
            if (++half_bad <= 5) FAIL_CHECK("half(" << std::hexfloat << x << ") = " << float(half(x)));
        }
        if (!same_value(float(bfloat16(x)), ref_bf16(x))) {
            if (++bf_bad <= 5) FAIL_CHECK("bfloat16(" << std::hexfloat << x << ") = " << float(bfloat16(x)));
        }
    }
    CHECK(half_bad == 0);
    CHECK(bf_bad == 0);
}

TEST_CASE("double and 64-bit integers convert to half / bfloat16 correctly rounded, not via a float rounding") {
    // double -> float would land exactly on the half tie 1 + 2^-11 and then round to even (1.0).
    const double d = 1.0 + 0x1p-11 + 0x1p-40;
    CHECK(half(static_cast<float>(d)).bits == 0x3C00);
    CHECK(half(d).bits == 0x3C01);
    CHECK(dtype_cast<half>(d).bits == 0x3C01);
    CHECK(dtype_cast<half>(-d).bits == 0xBC01);
    CHECK(bfloat16(1.0 + 0x1p-8 + 0x1p-40).bits == 0x3F81);
    CHECK(half(65519.999).bits == 0x7BFF);
    CHECK(half(65520.0).bits == 0x7C00);
    CHECK(half(1e300).bits == 0x7C00);
    CHECK(half(-1e300).bits == 0xFC00);
    CHECK(bfloat16(1e300).bits == 0x7F80);
    CHECK(half(1e-300).bits == 0x0000);
    CHECK(half(-1e-300).bits == 0x8000);
    CHECK(bfloat16(0x1.0000000001p-134).bits == 0x0001);  // a hair above bfloat16's smallest-subnormal tie
    CHECK(bfloat16(0x1p-134).bits == 0x0000);             // the tie itself -> 0
    CHECK(half(std::numeric_limits<double>::infinity()).bits == 0x7C00);
    CHECK(std::isnan(float(half(std::numeric_limits<double>::quiet_NaN()))));

    // int32 2^24 + 2^16 + 1 is not a float; rounding it to float first gives the tie 2^24 + 2^16.
    const std::int32_t i = (1 << 24) + (1 << 16) + 1;
    CHECK(bfloat16(static_cast<float>(i)).bits == 0x4B80);
    CHECK(bfloat16(i).bits == 0x4B81);
    CHECK(dtype_cast<bfloat16>(i).bits == 0x4B81);
    CHECK(dtype_cast<bfloat16>(-i).bits == 0xCB81);
    CHECK(dtype_cast<half>(std::int64_t(65519)).bits == 0x7BFF);
    CHECK(dtype_cast<half>(std::int64_t(65520)).bits == 0x7C00);
    CHECK(dtype_cast<half>(std::numeric_limits<std::int64_t>::min()).bits == 0xFC00);
    CHECK(dtype_cast<bfloat16>(std::numeric_limits<std::int64_t>::min()).bits == 0xDF00);  // -2^63
    CHECK(bfloat16(std::numeric_limits<std::uint64_t>::max()).bits == 0x5F80);            // rounds to 2^64
    CHECK(dtype_cast<half>(std::uint8_t(255)).bits == 0x5BF8);
    CHECK(dtype_cast<half>(true).bits == 0x3C00);

    std::mt19937_64 rng(99);
    int bad = 0;
    for (int k = 0; k < 200000; ++k) {
        double x;
        if (k % 2) {  // random doubles around the half range
            x = std::ldexp(1.0 + static_cast<double>(rng() >> 12) * 0x1p-52, static_cast<int>(rng() % 48) - 30);
        } else {  // a half midpoint plus a tiny offset below float resolution
            const std::uint16_t hb = static_cast<std::uint16_t>(rng() % 0x7BFF);
            const double mid = 0.5 * (double(float(half::from_bits(hb))) + double(float(half::from_bits(hb + 1))));
            x = mid + ((rng() & 1) ? 1 : -1) * std::ldexp(mid, -40);
        }
        if (rng() & 1) x = -x;
        if (!same_value(float(half(x)), ref_half(x)) || !same_value(float(bfloat16(x)), ref_bf16(x))) ++bad;
        const auto n = static_cast<std::int64_t>(rng() >> static_cast<int>(rng() % 63));
        if (!same_value(float(bfloat16(n)), ref_bf16(static_cast<double>(n))) &&
            static_cast<std::int64_t>(static_cast<double>(n)) == n)  // reference exact only when n is a double
            ++bad;
    }
    CHECK(bad == 0);
}

TEST_CASE("half and bfloat16 arithmetic rounds once through float") {
    CHECK((half(1.0f) + half(2.0f)).bits == 0x4200);
    CHECK((half(1.0f) / half(3.0f)).bits == 0x3555);  // RNE(1/3) in half
    CHECK((half(2048.0f) + half(1.0f)).bits == 0x6800);  // 2049 ties to 2048
    CHECK((half(5.0f) - half(7.0f)).bits == 0xC000);
    CHECK((half(3.0f) * half(0.5f)).bits == 0x3E00);
    CHECK((half(60000.0f) * half(2.0f)).bits == 0x7C00);
    CHECK((-half(1.0f)).bits == 0xBC00);
    CHECK((-half(0.0f)).bits == 0x8000);
    CHECK((bfloat16(1.0f) + bfloat16(0x1p-8f)).bits == 0x3F80);
    CHECK((bfloat16(3.0f) * bfloat16(3.0f)).bits == 0x4110);
    CHECK((-bfloat16(2.0f)).bits == 0xC000);

    half acc(1.0f);
    acc += half(1.0f);
    CHECK(float(acc) == 2.0f);
    acc -= half(0.5f);
    CHECK(float(acc) == 1.5f);
    acc *= half(4.0f);
    CHECK(float(acc) == 6.0f);
    acc /= half(3.0f);
    CHECK(float(acc) == 2.0f);
    bfloat16 b(2.0f);
    b *= bfloat16(8.0f);
    CHECK(float(b) == 16.0f);
    CHECK(half(1.0f) + 0.25f == 1.25f);  // mixed: float arithmetic
}

TEST_CASE("half and bfloat16 comparisons follow IEEE rules") {
    CHECK(half(1.0f) < half(2.0f));
    CHECK(half(-1.0f) < half(0.0f));
    CHECK(half(2.0f) >= half(2.0f));
    CHECK(half(3.0f) > half(2.0f));
    CHECK(half(2.0f) <= half(3.0f));
    CHECK(half(0.0f) == half(-0.0f));
    const half nan(std::numeric_limits<float>::quiet_NaN());
    CHECK_FALSE(nan == nan);
    CHECK(nan != nan);
    CHECK_FALSE(nan < half(1.0f));
    CHECK_FALSE(nan >= half(1.0f));
    CHECK(bfloat16(1.0f) == bfloat16(1.0f));
    CHECK(bfloat16(1.0f) != bfloat16(1.0078125f));
    CHECK(bfloat16(-3.0f) < bfloat16(-2.0f));
    CHECK(half{}.bits == 0);  // value-initialised is +0
}

TEST_CASE("half, bfloat16 and DType print readably") {
    std::ostringstream os;
    os << half(1.5f) << ' ' << bfloat16(-0.25f) << ' ' << DType::Float16 << ' ' << DType::Int64;
    CHECK(os.str() == "1.5 -0.25 float16 int64");
}

TEST_CASE("dtype_of_v, dtype_name and dtype_size agree for all eight dtypes") {
    static_assert(dtype_of_v<float> == DType::Float32);
    static_assert(dtype_of_v<double> == DType::Float64);
    static_assert(dtype_of_v<std::int32_t> == DType::Int32);
    static_assert(dtype_of_v<std::int64_t> == DType::Int64);
    static_assert(dtype_of_v<std::uint8_t> == DType::UInt8);
    static_assert(dtype_of_v<bool> == DType::Bool);
    static_assert(dtype_of_v<bfloat16> == DType::BFloat16);
    static_assert(dtype_of_v<half> == DType::Float16);
    static_assert(dtype_name(DType::Float32) == "float32");
    CHECK(dtype_name(DType::Float64) == "float64");
    CHECK(dtype_name(DType::Int32) == "int32");
    CHECK(dtype_name(DType::Int64) == "int64");
    CHECK(dtype_name(DType::UInt8) == "uint8");
    CHECK(dtype_name(DType::Bool) == "bool");
    CHECK(dtype_name(DType::BFloat16) == "bfloat16");
    CHECK(dtype_name(DType::Float16) == "float16");
    CHECK(dtype_size(dtype_of_v<float>) == sizeof(float));
    CHECK(dtype_size(dtype_of_v<double>) == sizeof(double));
    CHECK(dtype_size(dtype_of_v<std::int32_t>) == 4);
    CHECK(dtype_size(dtype_of_v<std::int64_t>) == 8);
    CHECK(dtype_size(dtype_of_v<std::uint8_t>) == 1);
    CHECK(dtype_size(dtype_of_v<bool>) == sizeof(bool));
    CHECK(dtype_size(dtype_of_v<bfloat16>) == sizeof(bfloat16));
    CHECK(dtype_size(dtype_of_v<half>) == sizeof(half));
}

TEST_CASE("dtype concepts classify the element types") {
    static_assert(SupportedDType<float> && SupportedDType<half> && SupportedDType<bool> && SupportedDType<std::uint8_t>);
    static_assert(!SupportedDType<char> && !SupportedDType<std::int16_t> && !SupportedDType<long double>);
    static_assert(FloatingDType<half> && FloatingDType<bfloat16> && FloatingDType<double>);
    static_assert(!FloatingDType<std::int32_t> && !FloatingDType<bool>);
    static_assert(MathDType<float> && MathDType<double>);
    static_assert(!MathDType<half> && !MathDType<bfloat16> && !MathDType<std::int64_t>);
    CHECK(true);
}

TEST_CASE("dtype_cast: nonzero is true, float -> int truncates, 16-bit floats go through float") {
    CHECK(dtype_cast<bool>(0.5f));
    CHECK_FALSE(dtype_cast<bool>(0.0f));
    CHECK_FALSE(dtype_cast<bool>(-0.0));
    CHECK(dtype_cast<bool>(std::numeric_limits<float>::quiet_NaN()));
    CHECK(dtype_cast<bool>(std::int64_t(-7)));
    CHECK_FALSE(dtype_cast<bool>(std::uint8_t(0)));
    CHECK(dtype_cast<bool>(half(0x1p-24f)));
    CHECK_FALSE(dtype_cast<bool>(half(-0.0f)));
    CHECK(dtype_cast<bool>(bfloat16(std::numeric_limits<float>::quiet_NaN())));
    CHECK(dtype_cast<std::int32_t>(2.7f) == 2);
    CHECK(dtype_cast<std::int32_t>(-2.7) == -2);
    CHECK(dtype_cast<std::int64_t>(half(3.5f)) == 3);
    CHECK(dtype_cast<std::int32_t>(bfloat16(-100.5f)) == -100);
    CHECK(dtype_cast<std::uint8_t>(200.9f) == 200);
    CHECK(dtype_cast<float>(true) == 1.0f);
    CHECK(dtype_cast<double>(std::int64_t(1) << 40) == 1099511627776.0);
    CHECK(dtype_cast<float>(half::from_bits(0x0001)) == 0x1p-24f);
    CHECK(dtype_cast<double>(bfloat16(0.1f)) == double(float(bfloat16(0.1f))));
    CHECK(dtype_cast<bfloat16>(half(1.5f)).bits == 0x3FC0);
    CHECK(dtype_cast<half>(bfloat16(1e10f)).bits == 0x7C00);
    CHECK(dtype_cast<half>(bfloat16::from_bits(0x3F81)).bits == 0x3C08);  // 1 + 2^-7 exact in half
    CHECK(dtype_cast<half>(half(2.0f)).bits == 0x4000);
    CHECK(dtype_cast<half>(0.1f).bits == 0x2E66);
    CHECK(dtype_cast<std::int32_t>(std::int64_t(-5)) == -5);
    CHECK(dtype_cast<std::uint8_t>(true) == 1);
}
