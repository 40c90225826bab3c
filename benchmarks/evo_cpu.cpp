// benchmarks/evo_cpu — the evolutionary library's hot spots (CSV as ops_cpu,
// see bench_util.hpp):
//   nds_m2 / nds_m3   non-dominated sorting of N = 1,000 and 10,000 uniform
//                     random points with 2 and 3 objectives: evo::non_dominated_sort
//                     vs pagmo::fast_non_dominated_sorting (pagmo 2, Debian
//                     libpagmo-dev), same input (std::vector<std::vector<double>>),
//                     interleaved; the ranks of both are checked equal first.
//                     ratio = pagmo / polymath.
//   masked_eval       evo::evaluate_masks over 64 masks (per-row groups of the
//                     weights) of an MLP 64-256-256-10 on a fixed batch of 256
//                     random inputs, forward + MSE without graph. Its "peer" is
//                     the same call with 1 thread, so ratio = the 2-thread
//                     speed-up; individuals/s = 64 / (ms / 1000).
//   masked_eval_cpu   the same evaluations timed in per-thread CPU time per
//                     individual (median), 2 threads vs 1: ~1.0 means our
//                     two threads do not slow each other down.
//   spin_control      evo::parallel_evaluate over 64 "individuals" of pure ALU
//                     work (~0.5 ms each, no memory traffic), 2 threads vs 1:
//                     the scaling the machine offers at that moment. On a
//                     shared VM whose second core is busy it reads ~1.0x, and
//                     masked_eval cannot scale better than it.
//
//   evo_cpu [--passes 5] [--reps 5] [--filter NAME]     (--threads is ignored:
//   sorting is serial, masked_eval always compares 2 threads with 1)
#include <time.h>

#include <cstdio>
#include <vector>

#include "bench_util.hpp"
#include <polymath/autograd/loss.hpp>
#include <polymath/autograd/unary.hpp>
#include <polymath/evo/evaluate.hpp>
#include <polymath/evo/mask.hpp>
#include <polymath/evo/pareto.hpp>
#include <polymath/nn/linear.hpp>

#if POLYMATH_BENCH_HAVE_PAGMO
#include <pagmo/utils/multi_objective.hpp>
#endif

using namespace polymath;
using namespace polymath::bench;

namespace {

std::vector<std::vector<double>> random_points(std::size_t n, std::size_t m, std::uint64_t seed) {
    Generator g(seed);
    evo::Rng rng(g);
    std::vector<std::vector<double>> p(n, std::vector<double>(m));
    for (auto& row : p)
        for (auto& x : row) x = rng.uniform();
    return p;
}

void bench_sorting(const Options& base) {
    for (std::size_t n : {1000, 10000}) {
        for (std::size_t m : {2, 3}) {
            const auto pts = random_points(n, m, 42 + n + m);
            Options o = base;
            if (n >= 10000) o.reps = std::min(o.reps, 3);  // pagmo takes seconds here
            const std::string name = "nds_m" + std::to_string(m);
#if POLYMATH_BENCH_HAVE_PAGMO
            // Same fronts as pagmo (ranks compared point by point).
            const auto ours = evo::non_dominated_sort(pts);
            const auto theirs = pagmo::fast_non_dominated_sorting(pts);
            const auto& fronts = std::get<0>(theirs);
            std::size_t mismatches = 0;
            for (std::size_t r = 0; r < fronts.size(); ++r)
                for (auto i : fronts[r]) mismatches += ours.rank[i] != r;
            if (mismatches || fronts.size() != ours.fronts.size()) {
                std::fprintf(stderr, "evo_cpu: %s N=%zu: ranks differ from pagmo at %zu points\n", name.c_str(), n,
                             mismatches);
                std::exit(1);
            }
            compare(
                o, name, "N=" + std::to_string(n), 1,
                [&] { g_sink = float(evo::non_dominated_sort(pts).fronts.size()); },
                [&] { g_sink = float(std::get<0>(pagmo::fast_non_dominated_sorting(pts)).size()); });
#else
            compare(
                o, name, "N=" + std::to_string(n), 1,
                [&] { g_sink = float(evo::non_dominated_sort(pts).fronts.size()); }, [] {});
#endif
        }
    }
}

struct Mlp : nn::Module<Mlp, float> {
    nn::Linear<float> fc1, fc2, fc3;
    explicit Mlp(Generator& g) : fc1(64, 256, {}, g), fc2(256, 256, {}, g), fc3(256, 10, {}, g) {}
    template <class V>
    void visit(V& v) {
        v.module("fc1", fc1);
        v.module("fc2", fc2);
        v.module("fc3", fc3);
    }
    Var<float> operator()(const Var<float>& x) const { return fc3(relu(fc2(relu(fc1(x))))); }
};

void bench_masked_eval(const Options& o) {
    Generator g(1);
    const Mlp model(g);
    const auto groups = evo::make_groups(model, {.exclude = {"*.bias"}});  // 522 bits
    evo::Rng rng(g);
    std::vector<evo::BitGenome> masks;
    for (int i = 0; i < 64; ++i) masks.push_back(evo::random_bits(groups.size(), 0.7, rng));
    const Var<float> x(Tensor<float>::rand({256, 64}, g));
    const Var<float> y(Tensor<float>::rand({256, 10}, g));
    auto eval = [&](Mlp& m, std::size_t) {
        NoGradGuard ng;
        return mse_loss(m(x), y).item();
    };
    // Same losses for 1 and 2 threads (the library promises it; checked here too).
    if (evo::evaluate_masks(model, groups, masks, eval, 1) != evo::evaluate_masks(model, groups, masks, eval, 2)) {
        std::fprintf(stderr, "evo_cpu: masked_eval results differ between 1 and 2 threads\n");
        std::exit(1);
    }
    compare(
        o, "masked_eval", "64x[256x64]->mlp(256,256,10)", 2,
        [&] { g_sink = float(evo::evaluate_masks(model, groups, masks, eval, 2)[0]); },
        [&] { g_sink = float(evo::evaluate_masks(model, groups, masks, eval, 1)[0]); });

    // The same calls, timed in thread CPU time per individual: time other
    // processes take from our threads does not count, contention between our
    // own two threads (caches, memory, allocator) does. ratio ~1 means each
    // individual costs the same with 2 threads, i.e. the wall-clock scaling is
    // 2x of whatever share of the second core the machine gives us.
    if (!o.filter.empty() && std::string("masked_eval_cpu").find(o.filter) == std::string::npos) return;
    std::vector<double> cpu(masks.size());
    auto timed = [&](Mlp& m, std::size_t i) {
        timespec a{}, b{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        const float r = eval(m, i);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        cpu[i] = double(b.tv_sec - a.tv_sec) * 1e3 + double(b.tv_nsec - a.tv_nsec) * 1e-6;
        return r;
    };
    auto per_individual = [&](int threads) {
        evo::evaluate_masks(model, groups, masks, timed, threads);
        return median(cpu);
    };
    std::vector<double> two, one;
    for (int p = 0; p < o.passes * o.reps; ++p) {
        two.push_back(per_individual(2));
        one.push_back(per_individual(1));
    }
    const double T = median(two), S = median(one);
    std::printf("masked_eval_cpu,per_individual_thread_cpu_ms,2,%.4f,%.4f,%.3f,%.4f,%.4f\n", T, S, S / T,
                *std::min_element(two.begin(), two.end()), *std::min_element(one.begin(), one.end()));
    std::fflush(stdout);
}

double spin(std::size_t i) {
    double s = double(i);
    for (int k = 0; k < 400000; ++k) s = s * 0.999999 + 1.0;  // a dependent chain: pure latency
    return s;
}

void bench_spin_control(const Options& o) {
    std::vector<double> out(64);
    compare(
        o, "spin_control", "64x400k_fma_chain", 2,
        [&] { evo::parallel_evaluate(out.size(), [&](std::size_t i) { out[i] = spin(i); }, 2); },
        [&] { evo::parallel_evaluate(out.size(), [&](std::size_t i) { out[i] = spin(i); }, 1); });
    g_sink = float(out[0]);
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv, "evo_cpu");
#if !POLYMATH_BENCH_HAVE_PAGMO
    std::cerr << "evo_cpu: built without pagmo (apt install libpagmo-dev): sorting rows have no peer\n";
#endif
    std::printf("case,shape,threads,polymath_ms,peer_ms,ratio,polymath_min_ms,peer_min_ms\n");
    bench_sorting(o);
    bench_masked_eval(o);
    bench_spin_control(o);
    return 0;
}
