// polymath/data/batching.hpp — shuffling, batch ranges, padding and a
// background prefetcher for training loops.
//
//   Generator gen(42);
//   auto order = polymath::data::shuffled_indices(n, gen);          // permutation of 0..n-1
//   for (auto [b, e] : polymath::data::batch_ranges(n, 64, false)) ...
//   auto [ids, mask] = polymath::data::pad_sequences_with_mask(seqs, tok.pad_id());  // [B, L]
//   polymath::data::Prefetcher<Batch> pf([&]() -> std::optional<Batch> { ... }, 4);
//   while (auto b = pf.next()) train_step(*b);
//
// Shuffling draws from polymath's Philox Generator, so an epoch's order
// depends only on (seed, stream offset) and is the same on every machine.
//
// Prefetcher runs the producer on ONE dedicated std::thread with a bounded
// queue (mutex + condition variables). It is deliberately not a oneTBB task:
// the producer blocks when the queue is full, and a blocked task would hold one
// of TBB's worker threads, which the kernels of the training step need (on 2
// cores, half of them). A closable queue also gives clean cancellation: the
// destructor closes it, which wakes a producer blocked on a full queue, and
// joins — also when the consumer stopped early. A producer exception is stored
// and rethrown by next() after the batches produced before it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../tensor/tensor.hpp"

namespace polymath::data {

// A uniformly random permutation of 0..n-1 (Fisher-Yates). Draw i (from the
// end) takes two 32-bit words of gen's stream as a 64-bit r and picks
// j = floor(r * (i + 1) / 2^64) in [0, i] (bias < 2^-32 for n < 2^32). The draw
// reserves 2n words of the stream, so consecutive calls give fresh orders and
// reseeding reproduces them.
inline std::vector<std::int64_t> shuffled_indices(std::int64_t n, Generator& gen) {
    POLYMATH_CHECK(n >= 0, "shuffled_indices", "n must be >= 0, got ", n);
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), std::int64_t(0));
    if (n < 2) return idx;
    const std::uint64_t seed = gen.seed();
    const std::uint64_t off = gen.reserve(2 * static_cast<std::uint64_t>(n));
    for (std::int64_t i = n - 1; i > 0; --i) {
        const std::uint64_t k = off + 2 * static_cast<std::uint64_t>(i);
        const std::uint64_t r = (std::uint64_t(philox_u32(seed, k)) << 32) | philox_u32(seed, k + 1);
        const auto j = static_cast<std::int64_t>((static_cast<unsigned __int128>(r) * std::uint64_t(i + 1)) >> 64);
        std::swap(idx[std::size_t(i)], idx[std::size_t(j)]);
    }
    return idx;
}

// [begin, end) ranges of batch_size items covering 0..n-1 in order; the last
// short batch is dropped when drop_last.
inline std::vector<std::pair<std::int64_t, std::int64_t>> batch_ranges(std::int64_t n, std::int64_t batch_size,
                                                                       bool drop_last = false) {
    POLYMATH_CHECK(n >= 0, "batch_ranges", "n must be >= 0, got ", n);
    POLYMATH_CHECK(batch_size >= 1, "batch_ranges", "batch_size must be >= 1, got ", batch_size);
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (std::int64_t b = 0; b < n; b += batch_size) {
        const std::int64_t e = std::min(n, b + batch_size);
        if (drop_last && e - b < batch_size) break;
        out.emplace_back(b, e);
    }
    return out;
}

struct PaddedBatch {
    Tensor<std::int64_t> ids;   // [B, L], pad_id after each sequence
    Tensor<std::uint8_t> mask;  // [B, L], 1 on real tokens, 0 on padding
};

// Pads (and, when max_len >= 0, truncates) the sequences to one length L =
// min(longest, max_len) (L = longest when max_len < 0). B may be 0.
template <class Int>
PaddedBatch pad_sequences_with_mask(const std::vector<std::vector<Int>>& seqs, std::int64_t pad_id,
                                    std::int64_t max_len = -1) {
    std::int64_t longest = 0;
    for (const auto& s : seqs) longest = std::max<std::int64_t>(longest, std::int64_t(s.size()));
    const std::int64_t L = max_len >= 0 ? std::min(longest, max_len) : longest;
    const auto B = std::int64_t(seqs.size());
    PaddedBatch out{Tensor<std::int64_t>::full({B, L}, pad_id), Tensor<std::uint8_t>::zeros({B, L})};
    std::int64_t* ids = out.ids.data();
    std::uint8_t* mask = out.mask.data();
    for (std::int64_t b = 0; b < B; ++b) {
        const auto& s = seqs[std::size_t(b)];
        const std::int64_t n = std::min<std::int64_t>(L, std::int64_t(s.size()));
        for (std::int64_t t = 0; t < n; ++t) {
            ids[b * L + t] = static_cast<std::int64_t>(s[std::size_t(t)]);
            mask[b * L + t] = 1;
        }
    }
    return out;
}

template <class Int>
Tensor<std::int64_t> pad_sequences(const std::vector<std::vector<Int>>& seqs, std::int64_t pad_id,
                                   std::int64_t max_len = -1) {
    return pad_sequences_with_mask(seqs, pad_id, max_len).ids;
}

template <class Batch>
class Prefetcher {
public:
    using Producer = std::function<std::optional<Batch>()>;

    // Starts calling `producer` on a background thread, keeping up to
    // `capacity` batches ready; the producer signals the end with nullopt.
    explicit Prefetcher(Producer producer, std::size_t capacity = 2)
        : producer_(std::move(producer)), capacity_(capacity) {
        POLYMATH_CHECK(capacity_ >= 1, "Prefetcher", "capacity must be >= 1, got ", capacity_);
        POLYMATH_CHECK(static_cast<bool>(producer_), "Prefetcher", "empty producer function");
        thread_ = std::thread([this] { run(); });
    }
    Prefetcher(const Prefetcher&) = delete;
    Prefetcher& operator=(const Prefetcher&) = delete;

    // Stops the producer (after its current call returns) and joins it.
    ~Prefetcher() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            closed_ = true;
        }
        not_full_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    // The next batch in production order; nullopt once the producer ended.
    // Rethrows the producer's exception (once) after the batches before it.
    std::optional<Batch> next() {
        std::unique_lock<std::mutex> lock(mu_);
        not_empty_.wait(lock, [&] { return !queue_.empty() || done_; });
        if (!queue_.empty()) {
            std::optional<Batch> b = std::move(queue_.front());
            queue_.pop_front();
            lock.unlock();
            not_full_.notify_one();
            return b;
        }
        if (error_) {
            std::exception_ptr e = std::exchange(error_, nullptr);
            std::rethrow_exception(e);
        }
        return std::nullopt;
    }

private:
    void run() {
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mu_);
                not_full_.wait(lock, [&] { return closed_ || queue_.size() < capacity_; });
                if (closed_) break;
            }
            std::optional<Batch> b;
            std::exception_ptr err;
            try {
                b = producer_();
            } catch (...) {
                err = std::current_exception();
            }
            std::lock_guard<std::mutex> lock(mu_);
            if (err) {
                error_ = err;
                break;
            }
            if (!b) break;
            queue_.push_back(std::move(b));
            not_empty_.notify_one();
        }
        std::lock_guard<std::mutex> lock(mu_);
        done_ = true;
        not_empty_.notify_all();
    }

    Producer producer_;
    std::size_t capacity_;
    std::mutex mu_;
    std::condition_variable not_full_, not_empty_;
    std::deque<std::optional<Batch>> queue_;
    std::exception_ptr error_;
    bool closed_ = false, done_ = false;
    std::thread thread_;  // last: started after every other member exists
};

}  // namespace polymath::data
