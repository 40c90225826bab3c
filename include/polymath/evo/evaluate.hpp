// polymath/evo/evaluate.hpp — evaluating a population in parallel.
//
//   evo::parallel_evaluate(n, [&](std::size_t i) { objs[i] = f(pop[i]); }, threads);
//
// Runs body(i) for i in [0, n) on `threads` threads (0: polymath::num_threads();
// never more than polymath::num_threads()) with oneTBB, in an arena of that
// size (serially without oneTBB). Each call writes only its own slot, so
// the results are identical for any thread count as long as body(i) depends
// only on i. An exception thrown by any body propagates to the caller (oneTBB
// cancels the rest and rethrows one of them).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "polymath/core/error.hpp"
#include "polymath/core/parallel.hpp"

#if POLYMATH_HAS_TBB
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#endif

namespace polymath::evo {

inline int resolve_threads(int threads) {
    POLYMATH_CHECK(threads >= 0, "evo::parallel_evaluate", "thread count must be >= 0 (0 = all), got ", threads);
    return threads == 0 ? num_threads() : threads;
}

template <class Body>
void parallel_evaluate(std::size_t n, Body&& body, int threads = 0) {
    const int t = resolve_threads(threads);
    if (n == 0) return;
#if POLYMATH_HAS_TBB
    // Own arena of `threads` slots: it bounds this call's threads, the
    // kernels the body runs included (with 1, everything stays on the caller).
    tbb::task_arena arena(std::min(t, std::max(1, num_threads())));  // capped: oneTBB warns past the machine
    arena.execute([&] {
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, 1), [&](const tbb::blocked_range<std::size_t>& r) {
            for (std::size_t i = r.begin(); i != r.end(); ++i) body(i);
        });
    });
    return;
#endif
    for (std::size_t i = 0; i < n; ++i) body(i);
}

}  // namespace polymath::evo
