// Shapes, strides, axis normalisation, broadcasting rules and Error messages.
#include <doctest/doctest.h>

#include <sstream>

#include "polymath/core/error.hpp"
#include "polymath/core/parallel.hpp"
#include "polymath/core/shape.hpp"

using namespace polymath;
using doctest::Contains;

TEST_CASE("Shape prints like a list and compares by value") {
    Shape s{2, 3, 4};
    std::ostringstream os;
    os << s;
    CHECK(os.str() == "[2, 3, 4]");
    CHECK(numel_of(s) == 24);
    CHECK(numel_of(Shape{}) == 1);
    CHECK(s == Shape{2, 3, 4});
    CHECK(s != Shape{2, 3});
    s.insert(1, 7);
    CHECK(s == Shape{2, 7, 3, 4});
    s.erase(0);
    CHECK(s == Shape{7, 3, 4});
}

TEST_CASE("contiguous strides are row-major") {
    CHECK(contiguous_strides({2, 3, 4}) == Strides{12, 4, 1});
    CHECK(contiguous_strides({5}) == Strides{1});
    CHECK(contiguous_strides({}) == Strides{});
}

TEST_CASE("broadcasting follows NumPy rules and names the op on mismatch") {
    CHECK(broadcast_shapes({2, 1, 4}, {3, 1}, "add") == Shape{2, 3, 4});
    CHECK(broadcast_shapes({}, {5}, "add") == Shape{5});
    CHECK_THROWS_WITH_AS(broadcast_shapes({2, 3}, {4}, "mul"), Contains("mul: shapes [2, 3] and [4]"), Error);
    CHECK(broadcast_strides({3, 1}, {1, 1}, {2, 3, 4}) == Strides{0, 1, 0});
}

TEST_CASE("axes are normalised and out-of-range axes throw") {
    CHECK(normalize_axis(-1, 3, "sum") == 2);
    CHECK(normalize_axis(0, 0, "sum") == 0);
    CHECK_THROWS_WITH_AS(normalize_axis(3, 3, "softmax"), Contains("softmax: axis 3 is out of range"), Error);
    CHECK_THROWS_WITH_AS(normalize_axis(-4, 3, "softmax"), Contains("rank 3"), Error);
}

TEST_CASE("more than kMaxDims dimensions are refused") {
    Shape s;
    for (int i = 0; i < kMaxDims; ++i) s.push_back(1);
    CHECK_THROWS_AS(s.push_back(1), Error);
}

TEST_CASE("POLYMATH_CHECK builds op-prefixed messages and Error is a runtime_error") {
    try {
        POLYMATH_CHECK(1 == 2, "matmul", "shapes ", Shape{2, 3}, " and ", Shape{4, 5});
        FAIL("no throw");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "matmul: shapes [2, 3] and [4, 5]");
    }
}

TEST_CASE("parallel_for covers the range exactly once at any thread count") {
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        std::vector<int> hits(100000, 0);
        parallel_for(0, 100000, 1000, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i) hits[std::size_t(i)]++;
        });
        int bad = 0;
        for (int h : hits) bad += h != 1;
        CHECK(bad == 0);
    }
    CHECK_THROWS_AS(set_num_threads(0), Error);
}
