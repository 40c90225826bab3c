// polymath/evo/nsga2.hpp — NSGA-II (Deb, Pratap, Agarwal & Meyarivan, IEEE
// TEVC 2002) for any problem with
//   objectives(const Genome&) -> a range of doubles (all minimised)
// and any Variation (evo/variation.hpp):
//
//   struct Zdt1 { std::vector<double> objectives(const evo::RealGenome& x) const; };
//   evo::Nsga2 algo(Zdt1{}, evo::RealVariation{evo::RealBounds(30, 0.0, 1.0)},
//                   {.population = 100, .generations = 249, .seed = 1});
//   algo.run();                                 // 100 + 249 x 100 = 25,000 evaluations
//   auto front = algo.front();
//
// Binary tournaments by (rank, crowding), crossover then mutation of both
// children, parallel evaluation, (mu + lambda) survival by fronts and crowding.
// It is MO-MFEA with one task (evo/mo_mfea.hpp), so determinism, progress
// callbacks and checkpoints (save/load, bit-identical resume) are the same.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "polymath/evo/mo_mfea.hpp"

namespace polymath::evo {

template <class P, class G>
concept SingleTaskProblem = requires(const P& p, const G& g) {
    { p.objectives(g) };
};

struct Nsga2Options {
    std::size_t population = 100;
    std::size_t generations = 100;  // after the initial population
    std::uint64_t seed = 0;
    int threads = 0;                      // evaluation threads, 0 = polymath::num_threads()
    std::vector<double> reference_point{};  // optional, for Progress::hypervolume
    std::string checkpoint_path{};          // non-empty: saved after every generation
};

namespace detail {
// Presents a single-task problem as a one-task MultiTaskProblem.
template <class P>
struct OneTask {
    P p;
    std::size_t num_tasks() const { return 1; }
    template <class G>
    auto objectives(std::size_t, const G& g) const {
        return p.objectives(g);
    }
};
}  // namespace detail

template <class Problem, Variation V>
    requires SingleTaskProblem<Problem, typename V::genome_type>
class Nsga2 {
public:
    using Genome = typename V::genome_type;
    using Member = Individual<Genome>;

    Nsga2(Problem problem, V variation, Nsga2Options o)
        : engine_(detail::OneTask<Problem>{std::move(problem)}, std::move(variation), to_mfea(o)) {}

    void on_progress(ProgressCallback cb) { engine_.on_progress(std::move(cb)); }
    void initialize() { engine_.initialize(); }
    void step() { engine_.step(); }
    void run() { engine_.run(); }

    const std::vector<Member>& population() const { return engine_.population(); }
    std::vector<Member> front() const { return engine_.front(0); }
    double hypervolume(const std::vector<double>& ref) const { return engine_.hypervolume(0, ref); }
    std::size_t generation() const noexcept { return engine_.generation(); }
    std::size_t evaluations() const noexcept { return engine_.evaluations(); }

    void save(const std::string& path) const { engine_.save(path); }
    void load(const std::string& path) { engine_.load(path); }

private:
    static MoMfeaOptions to_mfea(const Nsga2Options& o) {
        MoMfeaOptions m;
        m.population_per_task = o.population;
        m.generations = o.generations;
        m.rmp = 1.0;  // irrelevant with one task: every pair is recombined
        m.mutate_after_crossover = true;
        m.seed = o.seed;
        m.threads = o.threads;
        if (!o.reference_point.empty()) m.reference_points = {o.reference_point};
        m.checkpoint_path = o.checkpoint_path;
        return m;
    }
    MoMfea<detail::OneTask<Problem>, V> engine_;
};

}  // namespace polymath::evo
