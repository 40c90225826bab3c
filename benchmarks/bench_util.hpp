// benchmarks/bench_util.hpp — the side-by-side timing harness shared by the
// CPU benchmarks (ops_cpu, nn_cpu).
//
// CSV: case,shape,threads,polymath_ms,peer_ms,ratio,polymath_min_ms,peer_min_ms
//   *_ms      median over passes of the per-pass median time
//   *_min_ms  the fastest single run
//   ratio     peer_ms / polymath_ms (> 1: polymath is faster)
// Within a pass polymath and the peer run alternately, so machine noise hits
// both. Options: --threads 1,2  --passes N  --reps N  --filter substring
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/polymath.hpp>

#if POLYMATH_BENCH_HAVE_TORCH
#include <torch/torch.h>
#endif

namespace polymath::bench {

using Clock = std::chrono::steady_clock;

struct Options {
    std::vector<int> threads{1, 2};
    int passes = 5;
    int reps = 5;
    std::string filter;
};

inline double time_ms(const std::function<void()>& f) {
    const auto t0 = Clock::now();
    f();
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Runs `ours` and `peer` alternately, `passes` x `reps` times each.
inline void compare(const Options& o, const std::string& name, const std::string& shape, int threads,
             const std::function<void()>& ours, const std::function<void()>& peer) {
    if (!o.filter.empty() && name.find(o.filter) == std::string::npos) return;
    ours();  // warm-up: caches, allocator pools, thread pools
    peer();
    std::vector<double> pm, qm;
    double pmin = 1e300, qmin = 1e300;
    for (int p = 0; p < o.passes; ++p) {
        std::vector<double> a, b;
        for (int r = 0; r < o.reps; ++r) {
            a.push_back(time_ms(ours));
            b.push_back(time_ms(peer));
        }
        pm.push_back(median(a));
        qm.push_back(median(b));
        pmin = std::min(pmin, *std::min_element(a.begin(), a.end()));
        qmin = std::min(qmin, *std::min_element(b.begin(), b.end()));
    }
    const double P = median(pm), Q = median(qm);
    std::printf("%s,%s,%d,%.4f,%.4f,%.3f,%.4f,%.4f\n", name.c_str(), shape.c_str(), threads, P, Q, Q / P, pmin, qmin);
    std::fflush(stdout);
}

inline volatile float g_sink = 0;  // keeps results alive so nothing is optimised away

#if POLYMATH_BENCH_HAVE_TORCH
inline torch::Tensor to_torch(const Tensor<float>& t) {
    std::vector<int64_t> s(t.shape().begin(), t.shape().end());
    return torch::from_blob(t.data(), s, torch::kFloat32).clone();
}
#endif


inline Options parse(int argc, char** argv, const char* prog) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << prog << ": " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--threads") {
            o.threads.clear();
            std::stringstream ss(next());
            for (std::string t; std::getline(ss, t, ',');) o.threads.push_back(std::stoi(t));
        } else if (a == "--passes") {
            o.passes = std::stoi(next());
        } else if (a == "--reps") {
            o.reps = std::stoi(next());
        } else if (a == "--filter") {
            o.filter = next();
        } else {
            std::cerr << "usage: " << prog << " [--threads 1,2] [--passes 5] [--reps 5] [--filter NAME]\n";
            std::exit(a == "--help" ? 0 : 2);
        }
    }
    return o;
}


}  // namespace polymath::bench
