// Tests of polymath/data/metrics.hpp against hand-computed values.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <polymath/data/metrics.hpp>

using polymath::Error;
using polymath::Tensor;
using namespace polymath::data;

namespace {
// 4 rows, 3 classes.        argmax  label  correct  label rank (greater + equal-lower-index)
//  [0.1, 0.7, 0.2]          1       1      yes      0
//  [0.5, 0.4, 0.1]          0       2      no       2
//  [0.3, 0.3, 0.4]          2       0      no       1   (0.4 greater; tie with class 1 has a higher index)
//  [0.9, 0.05, 0.05]        0       0      yes      0
// accuracy 2/4, top-2 3/4, top-3 4/4.
Tensor<float> logits() {
    return Tensor<float>::from_vector({0.1f, 0.7f, 0.2f, 0.5f, 0.4f, 0.1f, 0.3f, 0.3f, 0.4f, 0.9f, 0.05f, 0.05f},
                                      {4, 3});
}
Tensor<std::int64_t> labels() { return Tensor<std::int64_t>::from_vector({1, 2, 0, 0}); }
}  // namespace

TEST_CASE("accuracy and top-k accuracy from logits match the hand count") {
    CHECK(accuracy(logits(), labels()) == 0.5);
    CHECK(top_k_accuracy(logits(), labels(), 1) == 0.5);
    CHECK(top_k_accuracy(logits(), labels(), 2) == 0.75);
    CHECK(top_k_accuracy(logits(), labels(), 3) == 1.0);
    // int32 labels, double logits, a transposed (non-contiguous) view.
    const Tensor<double> lt = logits().to<double>().t().contiguous().t();
    CHECK(accuracy(lt, Tensor<std::int32_t>::from_vector({1, 2, 0, 0})) == 0.5);
}

TEST_CASE("ties go to the lower class index in accuracy and top-k alike") {
    const auto x = Tensor<float>::from_vector({0.5f, 0.5f, 0.5f, 0.5f}, {2, 2});
    const auto y = Tensor<std::int64_t>::from_vector({0, 1});
    CHECK(accuracy(x, y) == 0.5);
    CHECK(top_k_accuracy(x, y, 1) == 0.5);
    CHECK(top_k_accuracy(x, y, 2) == 1.0);
}

TEST_CASE("accuracy over token logits [B, L, C] skips ignore_index labels") {
    // B = 1, L = 3, C = 2: predictions 1, 0, 1; labels 1, -100 (padding), 0 -> 1 of 2.
    const auto x = Tensor<float>::from_vector({0, 1, 1, 0, 0, 1}, {1, 3, 2});
    const auto y = Tensor<std::int64_t>::from_vector({1, -100, 0}, {1, 3});
    CHECK(accuracy(x, y) == 0.5);
    CHECK_THROWS_WITH_AS(accuracy(x, y, -1), doctest::Contains("label -100 at flat index 1"), Error);
    const auto all_pad = Tensor<std::int64_t>::from_vector({-100, -100, -100}, {1, 3});
    CHECK_THROWS_WITH_AS(accuracy(x, all_pad), doctest::Contains("no labels to score"), Error);
}

TEST_CASE("accuracy from integer predictions") {
    const auto p = Tensor<std::int64_t>::from_vector({3, 1, 4, 1, 5});
    const auto y = Tensor<std::int64_t>::from_vector({3, 1, 4, 2, 6});
    CHECK(accuracy(p, y) == 0.6);
    CHECK_THROWS_WITH_AS(accuracy(p, Tensor<std::int64_t>::from_vector({1, 2})),
                         doctest::Contains("do not match labels of shape"), Error);
}

TEST_CASE("a NaN row counts as wrong") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const auto x = Tensor<float>::from_vector({nan, 1.0f, 0.0f, 1.0f}, {2, 2});
    const auto y = Tensor<std::int64_t>::from_vector({1, 1});
    CHECK(accuracy(x, y) == 0.5);
    CHECK(top_k_accuracy(x, y, 2) == 0.5);
    CHECK_THROWS_WITH_AS(confusion_matrix(x, y, 2), doctest::Contains("row 0 holds a NaN"), Error);
}

TEST_CASE("metrics reject mismatched shapes, bad labels and bad k with the shapes named") {
    CHECK_THROWS_WITH_AS(accuracy(logits(), Tensor<std::int64_t>::from_vector({1, 2, 0})),
                         doctest::Contains("labels of shape [3] do not match logits of shape [4, 3]"), Error);
    CHECK_THROWS_WITH_AS(top_k_accuracy(logits(), labels(), 4), doctest::Contains("k = 4 must be in [1, 3]"), Error);
    CHECK_THROWS_AS(top_k_accuracy(logits(), labels(), 0), Error);
    CHECK_THROWS_WITH_AS(accuracy(logits(), Tensor<std::int64_t>::from_vector({1, 2, 3, 0})),
                         doctest::Contains("label 3 at flat index 2 is outside [0, 3)"), Error);
    CHECK_THROWS_AS(accuracy(Tensor<float>::zeros({0, 3}), Tensor<std::int64_t>::zeros({0})), Error);
}

TEST_CASE("rmse and mae, with and without NaN skipping") {
    // diffs 0, 2, 0, -4: squares 0 4 0 16 -> mean 5 -> sqrt(5); |d| mean 6/4.
    const auto p = Tensor<float>::from_vector({1, 2, 3, 4});
    const auto t = Tensor<float>::from_vector({1, 0, 3, 8});
    CHECK(rmse(p, t) == doctest::Approx(std::sqrt(5.0)).epsilon(1e-12));
    CHECK(mae(p, t) == 1.5);
    // NaN pair skipped: diffs -1, 2 -> rmse sqrt(2.5), mae 1.5.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto pn = Tensor<double>::from_vector({1, nan, 3});
    const auto tn = Tensor<double>::from_vector({2, 5, 1});
    CHECK(rmse(pn, tn, true) == doctest::Approx(std::sqrt(2.5)).epsilon(1e-12));
    CHECK(mae(pn, tn, true) == 1.5);
    CHECK(std::isnan(rmse(pn, tn)));
    CHECK(std::isnan(mae(pn, tn)));
    CHECK_THROWS_WITH_AS(rmse(p, Tensor<float>::from_vector({1, 2, 3})),
                         doctest::Contains("predictions of shape [4] do not match targets of shape [3]"), Error);
    CHECK_THROWS_WITH_AS(mae(Tensor<double>::from_vector({nan}), Tensor<double>::from_vector({1}), true),
                         doctest::Contains("every pair has a NaN"), Error);
}

TEST_CASE("confusion matrix: rows are the truth, columns the prediction") {
    // From the table above: (true, pred) = (1,1), (2,0), (0,2), (0,0).
    const auto cm = confusion_matrix(logits(), labels(), 3);
    CHECK(cm.shape() == polymath::Shape{3, 3});
    CHECK(cm.to_vector() == std::vector<std::int64_t>{1, 0, 1, 0, 1, 0, 1, 0, 0});
    const auto p = Tensor<std::int32_t>::from_vector({0, 1, 1, 2, -1});
    const auto y = Tensor<std::int32_t>::from_vector({0, 1, 2, 2, -100});
    CHECK(confusion_matrix(p, y, 3).to_vector() == std::vector<std::int64_t>{1, 0, 0, 0, 1, 0, 0, 1, 1});
    CHECK_THROWS_WITH_AS(confusion_matrix(p, Tensor<std::int32_t>::from_vector({0, 1, 2, 2, 0}), 3),
                         doctest::Contains("prediction -1 at flat index 4"), Error);
    CHECK_THROWS_WITH_AS(confusion_matrix(logits(), labels(), 4), doctest::Contains("have 3 classes, num_classes is 4"),
                         Error);
}
