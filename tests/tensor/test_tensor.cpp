// Tensor: creation, views, copies, dtype casts, printing, adaptors.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "polymath/polymath.hpp"
#include "polymath/tensor/eigen.hpp"
#include "polymath/tensor/xtensor.hpp"

using namespace polymath;
using doctest::Contains;

TEST_CASE("creation functions fill the requested values") {
    auto z = zeros<float>({2, 3});
    CHECK(z.shape() == Shape{2, 3});
    CHECK(z.numel() == 6);
    for (float v : z.to_vector()) CHECK(v == 0.0f);
    for (float v : ones<double>({4}).to_vector()) CHECK(v == 1.0);
    for (int v : full<std::int32_t>({3, 1}, 7).to_vector()) CHECK(v == 7);

    auto a = arange<std::int64_t>(2, 11, 3);
    CHECK(a.to_vector() == std::vector<std::int64_t>{2, 5, 8});
    auto f = arange<float>(0, 1, 0.25);
    CHECK(f.to_vector() == std::vector<float>{0, 0.25f, 0.5f, 0.75f});
    auto l = linspace<double>(-1, 1, 5);
    CHECK(l.to_vector() == std::vector<double>{-1, -0.5, 0, 0.5, 1});
    CHECK(linspace<float>(3, 4, 1).to_vector() == std::vector<float>{3});

    Tensor<float> il{1, 2, 3};
    CHECK(il.shape() == Shape{3});
    Tensor<double> m{{1, 2, 3}, {4, 5, 6}};
    CHECK(m.shape() == Shape{2, 3});
    CHECK(m.at({1, 2}) == 6);
    CHECK(m.at({-1, 0}) == 4);
    auto v = Tensor<float>::from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
    CHECK(v.at({2, 1}) == 6);
}

TEST_CASE("rand and randn are deterministic per seed and have the right moments") {
    Generator g1(42), g2(42), g3(43);
    auto a = rand<float>({1000}, g1), b = rand<float>({1000}, g2), c = rand<float>({1000}, g3);
    CHECK(a.to_vector() == b.to_vector());
    CHECK(a.to_vector() != c.to_vector());
    auto a2 = rand<float>({1000}, g1);  // the generator advanced: a new stream
    CHECK(a2.to_vector() != a.to_vector());
    for (float x : a.to_vector()) CHECK((x >= 0.0f && x < 1.0f));

    Generator g(7);
    auto n = randn<double>({200000}, g);
    double s = 0, s2 = 0;
    for (double x : n.to_vector()) {
        s += x;
        s2 += x * x;
    }
    const double mean = s / 200000, var = s2 / 200000 - mean * mean;
    CHECK(std::fabs(mean) < 0.01);
    CHECK(std::fabs(var - 1) < 0.02);
}

TEST_CASE("views share storage and index the right elements") {
    auto t = arange<float>(0, 24).reshape({2, 3, 4});
    CHECK(t.is_contiguous());
    auto tr = t.transpose(0, 2);  // [4, 3, 2]
    CHECK(tr.shape() == Shape{4, 3, 2});
    CHECK(!tr.is_contiguous());
    CHECK(tr.shares_storage_with(t));
    CHECK(tr.at({3, 2, 1}) == t.at({1, 2, 3}));

    auto p = t.permute({1, 2, 0});  // [3, 4, 2]
    CHECK(p.at({2, 1, 1}) == t.at({1, 2, 1}));

    auto s = t.slice(2, 1, 4, 2);  // columns 1, 3
    CHECK(s.shape() == Shape{2, 3, 2});
    CHECK(s.at({1, 2, 1}) == t.at({1, 2, 3}));
    CHECK(t.slice(1, -2, 3).shape() == Shape{2, 2, 4});

    auto n = t.narrow(1, 1, 2);
    CHECK(n.shape() == Shape{2, 2, 4});
    CHECK(n.at({0, 0, 0}) == 4);
    auto sel = t.select(0, 1);
    CHECK(sel.shape() == Shape{3, 4});
    CHECK(sel.at({0, 0}) == 12);

    auto u = t.unsqueeze(1);
    CHECK(u.shape() == Shape{2, 1, 3, 4});
    CHECK(u.squeeze(1).shape() == Shape{2, 3, 4});
    CHECK(zeros<float>({1, 3, 1}).squeeze().shape() == Shape{3});
    CHECK(t.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});

    auto e = Tensor<float>{1, 2, 3}.reshape({3, 1}).expand({3, 4});
    CHECK(e.shape() == Shape{3, 4});
    CHECK(e.strides()[1] == 0);
    CHECK(e.at({2, 3}) == 3);
    CHECK(Tensor<float>{5}.broadcast_to({2, 2}).at({1, 1}) == 5);

    CHECK(t.flatten().shape() == Shape{24});
    CHECK(t.flatten(1).shape() == Shape{2, 12});
    CHECK(t.view({4, -1}).shape() == Shape{4, 6});

    // Writes through a view are visible in the base tensor.
    tr.at({0, 0, 0}) = 100;
    CHECK(t.at({0, 0, 0}) == 100);
}

TEST_CASE("reshape copies only when a view is impossible") {
    auto t = arange<float>(0, 12).reshape({3, 4});
    auto v = t.reshape({2, 6});
    CHECK(v.shares_storage_with(t));
    auto tt = t.t();  // [4, 3] non-contiguous
    auto r = tt.reshape({12});
    CHECK(!r.shares_storage_with(t));
    CHECK(r.to_vector() == std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
    CHECK_THROWS_WITH_AS(tt.view({12}), Contains("view"), Error);
    // A slice of rows of a contiguous tensor can still be viewed.
    auto rows = t.slice(0, 1, 3);
    CHECK(rows.view({8}).shares_storage_with(t));
}

TEST_CASE("contiguous, clone and copy_ produce independent row-major data") {
    auto t = arange<double>(0, 6).reshape({2, 3});
    auto c = t.t().contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
    auto k = t.clone();
    k.at({0, 0}) = -1;
    CHECK(t.at({0, 0}) == 0);
    CHECK(t.contiguous().shares_storage_with(t));

    auto dst = zeros<double>({2, 3});
    dst.copy_(Tensor<double>{1, 2, 3});  // broadcast copy
    CHECK(dst.to_vector() == std::vector<double>{1, 2, 3, 1, 2, 3});
    auto d2 = zeros<double>({3, 2});
    d2.t().copy_(t);  // strided destination
    CHECK(d2.to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
    CHECK_THROWS_WITH_AS(dst.copy_(zeros<double>({4})), Contains("copy_"), Error);
}

TEST_CASE("to<U>() converts dtypes with rounding to nearest even for half and bfloat16") {
    auto f = Tensor<float>{1.5f, -2.7f, 65504.0f, 1e-8f};
    auto i = f.to<std::int32_t>();
    CHECK(i.to_vector() == std::vector<std::int32_t>{1, -2, 65504, 0});
    auto h = f.to<half>();
    CHECK(h.to_vector()[0].bits == 0x3E00);  // 1.5
    CHECK(h.to_vector()[2].bits == 0x7BFF);  // 65504 = max half
    CHECK(h.to_vector()[3].bits == 0x0000);  // underflows to +0
    auto b = Tensor<float>{1.0f}.to<bfloat16>();
    CHECK(b.item().bits == 0x3F80);
    auto back = h.to<float>();
    CHECK(back.to_vector()[0] == 1.5f);
    auto bl = Tensor<float>{0.0f, 2.0f}.to<bool>();
    CHECK(bl.to_vector() == std::vector<bool>{false, true});
}

TEST_CASE("fill_ writes through strided views") {
    auto t = zeros<float>({3, 4});
    t.slice(1, 0, 4, 2).fill_(1);
    CHECK(t.to_vector() == std::vector<float>{1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0});
}

TEST_CASE("item reads one-element tensors and rejects others") {
    CHECK(full<float>({1, 1}, 3.5f).item() == 3.5f);
    CHECK_THROWS_WITH_AS(zeros<float>({2}).item(), Contains("item"), Error);
}

TEST_CASE("bad view arguments throw Error naming the op and shape") {
    auto t = zeros<float>({2, 3});
    CHECK_THROWS_WITH_AS(t.reshape({4, 2}), Contains("[4, 2]"), Error);
    CHECK_THROWS_WITH_AS(t.transpose(0, 2), Contains("transpose"), Error);
    CHECK_THROWS_WITH_AS(t.permute({0, 0}), Contains("repeated"), Error);
    CHECK_THROWS_WITH_AS(t.expand({4, 3}), Contains("[2, 3]"), Error);
    CHECK_THROWS_WITH_AS(t.narrow(1, 2, 2), Contains("narrow"), Error);
    CHECK_THROWS_WITH_AS(t.select(0, 2), Contains("out of bounds"), Error);
    CHECK_THROWS_WITH_AS(t.at({0, 3}), Contains("out of bounds"), Error);
    CHECK_THROWS_WITH_AS(Tensor<float>::from_vector({1, 2, 3}, {2, 2}), Contains("from_vector"), Error);
    CHECK_THROWS_WITH_AS(zeros<float>({2, -1}), Contains("negative"), Error);
    CHECK_THROWS_WITH_AS(Tensor<float>().clone(), Contains("undefined"), Error);
    CHECK_THROWS_WITH_AS((Tensor<float>{{1, 2}, {3}}), Contains("ragged"), Error);
}

TEST_CASE("printing matches PyTorch's layout") {
    Tensor<float> m{{1, 2.5f}, {3, 4}};
    CHECK(to_string(m) == "tensor([[1.0000, 2.5000],\n        [3.0000, 4.0000]])");
    CHECK(to_string(Tensor<float>{1, 2, 3}) == "tensor([1., 2., 3.])");
    CHECK(to_string(Tensor<std::int64_t>{1, -20}) == "tensor([  1, -20])");
    CHECK(to_string(Tensor<double>{0.5}) == "tensor([0.5000], dtype=float64)");
    CHECK(to_string(Tensor<float>{1e-6f, 1.0f}) == "tensor([1.0000e-06, 1.0000e+00])");
    CHECK(to_string(Tensor<bool>{true, false}) == "tensor([ True, False])");
    const std::string big = to_string(arange<float>(0, 2000));
    CHECK(big == "tensor([   0.,    1.,    2.,  ..., 1997., 1998., 1999.])");
    auto t3 = arange<float>(0, 8).reshape({2, 2, 2});
    CHECK(to_string(t3) == "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n         [6., 7.]]])");
}

TEST_CASE("Eigen maps view tensor memory in both directions") {
    auto t = arange<float>(0, 6).reshape({2, 3});
    auto m = as_eigen(t);
    CHECK(m.rows() == 2);
    CHECK(m(1, 2) == 5);
    m(0, 1) = 42;
    CHECK(t.at({0, 1}) == 42);
    auto mt = as_eigen(t.t());  // transposed view, no copy
    CHECK(mt(2, 1) == 5);

    Eigen::MatrixXd cm(2, 2);  // column-major
    cm << 1, 2, 3, 4;
    auto tc = from_eigen(cm);
    CHECK(tc.at({0, 1}) == 2);
    CHECK(tc.at({1, 0}) == 3);
    tc.at({1, 1}) = 9;
    CHECK(cm(1, 1) == 9);
}

TEST_CASE("xtensor adaptors view tensor memory in both directions") {
    auto t = arange<double>(0, 6).reshape({2, 3});
    auto xa = as_xtensor(t);
    CHECK(xa(1, 2) == 5);
    xa(0, 0) = 7;
    CHECK(t.at({0, 0}) == 7);
    auto xt_t = as_xtensor(t.t());
    CHECK(xt_t(2, 1) == 5);

    xt::xtensor<float, 2> x = {{1, 2, 3}, {4, 5, 6}};
    auto tx = from_xtensor(x);
    CHECK(tx.shape() == Shape{2, 3});
    CHECK(tx.at({1, 0}) == 4);
    tx.at({1, 0}) = -4;
    CHECK(x(1, 0) == -4);
}

TEST_CASE("caching allocator reuses freed tensor buffers") {
    auto& alloc = CpuAllocator::instance();
    { auto warm = empty<float>({1000}); }
    const auto before = alloc.stats();
    for (int i = 0; i < 10; ++i) auto t = empty<float>({1000});
    const auto after = alloc.stats();
    CHECK(after.system_allocations == before.system_allocations);
    CHECK(after.cache_hits >= before.cache_hits + 10);
}
