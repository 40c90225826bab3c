// polymath/core/parallel.hpp — the one place that decides how work is split.
//
// Elementwise and reduction kernels call parallel_for with a grain size; below
// it (or with one thread) the body runs inline, so tiny tensors never pay for a
// task spawn. With POLYMATH_WITH_TBB undefined everything runs serially.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#if defined(POLYMATH_WITH_TBB) && POLYMATH_WITH_TBB
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>
#define POLYMATH_HAS_TBB 1
#else
#define POLYMATH_HAS_TBB 0
#endif

#include "polymath/core/error.hpp"

namespace polymath {

namespace detail {
struct ThreadState {
    std::mutex mu;
    int threads = 0;  // 0: not limited by the user
#if POLYMATH_HAS_TBB
    std::unique_ptr<tbb::global_control> control;
#endif
};
inline ThreadState& thread_state() {
    static ThreadState* s = new ThreadState();  // leaked: safe at exit
    return *s;
}
}  // namespace detail

// Number of threads kernels may use.
inline int num_threads() {
#if POLYMATH_HAS_TBB
    return static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
#else
    return 1;
#endif
}

// Limits the threads used by every kernel (like torch::set_num_threads).
inline void set_num_threads(int n) {
    POLYMATH_CHECK(n >= 1, "set_num_threads", "thread count must be >= 1, got ", n);
#if POLYMATH_HAS_TBB
    auto& s = detail::thread_state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.control.reset();
    s.control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      static_cast<std::size_t>(n));
    s.threads = n;
#else
    (void)n;
#endif
}

// Runs f(begin, end) over [begin, end) split into chunks of at least `grain`.
template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, F&& f) {
    if (end <= begin) return;
    const std::int64_t n = end - begin;
#if POLYMATH_HAS_TBB
    if (n > grain && num_threads() > 1) {
        tbb::parallel_for(
            tbb::blocked_range<std::int64_t>(begin, end, std::max<std::int64_t>(grain, 1)),
            [&](const tbb::blocked_range<std::int64_t>& r) { f(r.begin(), r.end()); },
            tbb::static_partitioner());
        return;
    }
#endif
    (void)n;
    (void)grain;
    f(begin, end);
}

// Default grain sizes, in elements; tuned on the benchmark machine.
inline constexpr std::int64_t kElementwiseGrain = 32768;
inline constexpr std::int64_t kReductionGrain = 32768;

}  // namespace polymath
