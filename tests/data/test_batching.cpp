// Tests of the training-loop utilities: polymath/data/batching.hpp (shuffling,
// batch ranges, padding, the background Prefetcher) and
// polymath/data/progress.hpp (the progress line and its redraw policy).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <polymath/data/batching.hpp>
#include <polymath/data/progress.hpp>

using polymath::Error;
using polymath::Generator;
using namespace polymath::data;

TEST_CASE("shuffled_indices is a permutation, reproducible per seed, fresh on each call") {
    Generator a(7), b(7), c(8);
    const auto p = shuffled_indices(1000, a);
    std::vector<std::int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::int64_t> iota(1000);
    std::iota(iota.begin(), iota.end(), 0);
    CHECK(sorted == iota);
    CHECK(p != iota);
    CHECK(shuffled_indices(1000, b) == p);          // same seed, same stream position
    CHECK(shuffled_indices(1000, c) != p);          // another seed
    CHECK(shuffled_indices(1000, a) != p);          // the next epoch differs
    CHECK(a.offset() == 2 * 2000);                  // 2 words per element and call
    CHECK(shuffled_indices(0, a).empty());
    CHECK(shuffled_indices(1, a) == std::vector<std::int64_t>{0});
    CHECK_THROWS_AS(shuffled_indices(-1, a), Error);
}

TEST_CASE("shuffled_indices follows the documented Fisher-Yates draw") {
    // Brute-force restatement of the header's definition with philox_u32.
    Generator g(123);
    const auto got = shuffled_indices(10, g);
    std::vector<std::int64_t> want(10);
    std::iota(want.begin(), want.end(), 0);
    for (std::int64_t i = 9; i > 0; --i) {
        const std::uint64_t r =
            (std::uint64_t(polymath::philox_u32(123, 2 * i)) << 32) | polymath::philox_u32(123, 2 * i + 1);
        const auto j = std::int64_t((static_cast<unsigned __int128>(r) * std::uint64_t(i + 1)) >> 64);
        std::swap(want[std::size_t(i)], want[std::size_t(j)]);
    }
    CHECK(got == want);
}

TEST_CASE("shuffled_indices is uniform over the 6 permutations of 3 items") {
    Generator g(1);
    std::map<std::vector<std::int64_t>, int> counts;
    const int n = 60000;
    for (int k = 0; k < n; ++k) ++counts[shuffled_indices(3, g)];
    REQUIRE(counts.size() == 6);
    double chi2 = 0;
    for (const auto& [perm, c] : counts) chi2 += (c - n / 6.0) * (c - n / 6.0) / (n / 6.0);
    // 5 degrees of freedom: P(chi2 > 20.5) = 0.001.
    CHECK(chi2 < 20.5);
}

TEST_CASE("batch_ranges covers 0..n-1 in order and drops a short last batch on request") {
    using R = std::vector<std::pair<std::int64_t, std::int64_t>>;
    CHECK(batch_ranges(10, 4) == R{{0, 4}, {4, 8}, {8, 10}});
    CHECK(batch_ranges(10, 4, true) == R{{0, 4}, {4, 8}});
    CHECK(batch_ranges(8, 4, true) == R{{0, 4}, {4, 8}});
    CHECK(batch_ranges(3, 4, true).empty());
    CHECK(batch_ranges(0, 4).empty());
    CHECK_THROWS_AS(batch_ranges(10, 0), Error);
    CHECK_THROWS_AS(batch_ranges(-1, 2), Error);
}

TEST_CASE("pad_sequences pads to the longest sequence, truncates to max_len and builds the mask") {
    const std::vector<std::vector<std::int32_t>> seqs = {{5, 6, 7}, {8}, {}, {1, 2, 3, 4}};
    const auto pb = pad_sequences_with_mask(seqs, 0);
    CHECK(pb.ids.shape() == polymath::Shape{4, 4});
    CHECK(pb.ids.to_vector() == std::vector<std::int64_t>{5, 6, 7, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4});
    CHECK(pb.mask.to_vector() == std::vector<std::uint8_t>{1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1});
    const auto cut = pad_sequences(seqs, -1, 2);
    CHECK(cut.shape() == polymath::Shape{4, 2});
    CHECK(cut.to_vector() == std::vector<std::int64_t>{5, 6, 8, -1, -1, -1, 1, 2});
    CHECK(pad_sequences(std::vector<std::vector<std::int64_t>>{}, 0).shape() == polymath::Shape{0, 0});
}

TEST_CASE("Prefetcher delivers every batch in production order, then nullopt") {
    int next = 0;
    Prefetcher<int> pf([&]() -> std::optional<int> {
        if (next == 100) return std::nullopt;
        return next++;
    }, 3);
    for (int i = 0; i < 100; ++i) {
        auto b = pf.next();
        REQUIRE(b.has_value());
        CHECK(*b == i);
    }
    CHECK_FALSE(pf.next().has_value());
    CHECK_FALSE(pf.next().has_value());  // stays at the end
}

TEST_CASE("Prefetcher runs the producer on another thread, at most capacity batches ahead") {
    const auto consumer = std::this_thread::get_id();
    std::atomic<int> produced{0};
    std::atomic<bool> other_thread{true};
    Prefetcher<int> pf([&]() -> std::optional<int> {
        if (std::this_thread::get_id() == consumer) other_thread = false;
        return produced++;
    }, 4);
    // The queue fills to 4 and the producer then waits (polled: the machine may be busy).
    auto wait_for = [&](int n) {
        for (int k = 0; k < 5000 && produced.load() < n; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::this_thread::sleep_for(std::chrono::milliseconds(30));  // time to overshoot, if it would
        return produced.load();
    };
    CHECK(wait_for(4) == 4);
    CHECK(*pf.next() == 0);
    CHECK(*pf.next() == 1);
    CHECK(wait_for(6) == 6);
    CHECK(other_thread.load());
}

TEST_CASE("Prefetcher rethrows the producer's exception after the batches before it") {
    int next = 0;
    Prefetcher<std::vector<int>> pf([&]() -> std::optional<std::vector<int>> {
        if (next == 3) throw std::runtime_error("corrupt shard 3");
        return std::vector<int>(4, next++);
    });
    for (int i = 0; i < 3; ++i) CHECK(pf.next()->at(0) == i);
    CHECK_THROWS_WITH_AS(pf.next(), "corrupt shard 3", std::runtime_error);
    CHECK_FALSE(pf.next().has_value());  // the exception is reported once
}

TEST_CASE("Prefetcher joins cleanly when the consumer stops early or never reads") {
    std::atomic<int> calls{0};
    {
        Prefetcher<std::string> pf([&]() -> std::optional<std::string> {
            ++calls;
            return std::string(1000, 'x');  // endless
        }, 2);
        CHECK(pf.next()->size() == 1000);
        CHECK(pf.next()->size() == 1000);
    }  // destructor: the producer is blocked on a full queue and must be woken
    const int after = calls.load();
    CHECK(after <= 2 + 2 + 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(calls.load() == after);  // really stopped
    {
        Prefetcher<int> idle([]() -> std::optional<int> { return 1; }, 1);
    }
    CHECK_THROWS_AS(Prefetcher<int>(nullptr), Error);
    CHECK_THROWS_AS(Prefetcher<int>([]() -> std::optional<int> { return 1; }, 0), Error);
}

TEST_CASE("render_progress formats count, percent, rate, elapsed and ETA") {
    // 300 of 1000 after 24 s: 12.5 it/s, 700 left -> 56 s; 30% of 30 cells = 9 '#'.
    CHECK(render_progress("train", 300, 1000, 24.0, "loss 0.31") ==
          "train [#########---------------------]   300/1000   30.0%  12.5 it/s  elapsed 00:24  eta 00:56  loss 0.31");
    // Unknown total: count, rate (5301 / 4 = 1325.25) and elapsed only.
    CHECK(render_progress("encode", 5301, 0, 4.0) == "encode  5301 it  1325 it/s  elapsed 00:04");
    // No time yet: rate and ETA unknown; over an hour: h:mm:ss; a finished bar is full.
    CHECK(render_progress("x", 0, 10, 0.0, "", 4) == "x [----]   0/10    0.0%  -- it/s  elapsed 00:00  eta --:--");
    CHECK(render_progress("x", 10, 10, 3725.0, "", 4) ==
          "x [####]  10/10  100.0%  0.00 it/s  elapsed 1:02:05  eta 00:00");
    CHECK(render_progress("x", 3, 4, 1.0, "", 0) == "x  3/4   75.0%  3.00 it/s  elapsed 00:01  eta 00:00");
}

TEST_CASE("ProgressBar prints a line at most every 5 s off a terminal, and one at finish") {
    double now = 100.0;
    std::ostringstream os;
    ProgressOptions opt;
    opt.out = &os;
    opt.terminal = 0;
    opt.clock = [&] { return now; };
    ProgressBar bar(12, "epoch", opt);
    for (int i = 1; i <= 12; ++i) {
        now = 100.0 + i;
        bar.update(1, "loss " + std::to_string(i));
    }
    bar.finish();
    bar.finish();  // idempotent
    bar.update();  // ignored after finish
    const std::string out = os.str();
    CHECK(std::count(out.begin(), out.end(), '\n') == 3);  // t = 5, t = 10, finish
    CHECK(out.find('\r') == std::string::npos);
    CHECK(out.find("   5/12") != std::string::npos);
    CHECK(out.find("  12/12  100.0%  1.00 it/s  elapsed 00:12  eta 00:00  loss 12\n") != std::string::npos);
    CHECK(bar.count() == 12);
}

TEST_CASE("ProgressBar redraws in place on a terminal and ends the line at finish") {
    double now = 0.0;
    std::ostringstream os;
    ProgressOptions opt;
    opt.out = &os;
    opt.terminal = 1;
    opt.clock = [&] { return now; };
    {
        ProgressBar bar(0, "read", opt);
        now = 0.05;
        bar.update(10);  // within 0.1 s: not drawn
        now = 0.2;
        bar.update(10);
    }  // the destructor finishes
    const std::string out = os.str();
    CHECK(out == "\rread  20 it  100 it/s  elapsed 00:00\x1b[K\rread  20 it  100 it/s  elapsed 00:00\x1b[K\n");
}
