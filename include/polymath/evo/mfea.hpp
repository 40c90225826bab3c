// polymath/evo/mfea.hpp — the multifactorial evolutionary algorithm (MFEA;
// Gupta, Ong & Feng, "Multifactorial evolution: toward evolutionary
// multitasking", IEEE TEVC 2016): one population solving K single-objective
// tasks at once.
//
//   struct Two {                                   // a multi-task cost problem
//       std::size_t num_tasks() const { return 2; }
//       double cost(std::size_t task, const evo::RealGenome& x) const;
//   };
//   evo::Mfea algo(Two{}, evo::RealVariation{evo::RealBounds(10, 0.0, 1.0)},
//                  {.population = 100, .generations = 200, .rmp = 0.3});
//   algo.run();
//   const auto& best = algo.best(1);               // best individual for task 1
//
// Definitions (paper, section III): the factorial cost of individual i on task
// t is its cost there (+inf if not evaluated on t); its factorial rank on t is
// its 1-based position when the population is ordered by that cost (ties by
// index); its skill factor is the task of its best rank among the tasks it was
// evaluated on (ties: lower task id); its scalar fitness is 1 / best rank.
// A generation: random parent pairs; assortative mating (same skill factor, or
// rmp: crossover, children mutated when mutate_after_crossover; otherwise each
// parent mutated); vertical cultural transmission (a crossover child imitates
// parent a or b with probability 1/2); offspring evaluated only on their
// imitated task; elitist survival of the `population` best scalar fitnesses
// over parents + offspring (ties by index). The initial population is
// evaluated on every task. Evaluation is parallel and deterministic, and
// save()/load() resume bit-identically, as in MO-MFEA (evo/mo_mfea.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/core/philox.hpp"
#include "polymath/evo/checkpoint.hpp"
#include "polymath/evo/evaluate.hpp"
#include "polymath/evo/progress.hpp"
#include "polymath/evo/rng.hpp"
#include "polymath/evo/variation.hpp"

namespace polymath::evo {

template <class P, class G>
concept MultiTaskCostProblem = requires(const P& p, const G& g, std::size_t task) {
    { p.num_tasks() } -> std::convertible_to<std::size_t>;
    { p.cost(task, g) } -> std::convertible_to<double>;
};

struct MfeaOptions {
    std::size_t population = 100;
    std::size_t generations = 100;  // after the initial population
    double rmp = 0.3;
    bool mutate_after_crossover = true;
    std::uint64_t seed = 0;
    int threads = 0;
};

template <class G>
struct MfeaIndividual {
    G genome;
    std::vector<double> costs;  // factorial costs per task, +inf where not evaluated
    std::size_t skill = 0;      // skill factor
    double fitness = 0.0;       // scalar fitness, 1 / best factorial rank
};

template <class Problem, Variation V>
    requires MultiTaskCostProblem<Problem, typename V::genome_type>
class Mfea {
public:
    using Genome = typename V::genome_type;
    using Member = MfeaIndividual<Genome>;

    Mfea(Problem problem, V variation, MfeaOptions o)
        : problem_(std::move(problem)), variation_(std::move(variation)), opt_(o), gen_(o.seed) {
        tasks_ = problem_.num_tasks();
        POLYMATH_CHECK(tasks_ > 0, "evo::Mfea", "the problem has 0 tasks");
        POLYMATH_CHECK(opt_.population >= 2, "evo::Mfea", "empty population: population must be >= 2, got ",
                       opt_.population);
        POLYMATH_CHECK(opt_.rmp >= 0.0 && opt_.rmp <= 1.0, "evo::Mfea", "rmp must be in [0, 1], got ", opt_.rmp);
        resolve_threads(opt_.threads);
    }

    void on_progress(ProgressCallback cb) { progress_ = std::move(cb); }

    void initialize() {
        Rng rng(gen_);
        pop_.assign(opt_.population, Member{});
        for (auto& m : pop_) {
            m.genome = variation_.random(rng);
            m.costs.assign(tasks_, 0.0);
        }
        // Every individual on every task: one slot per (individual, task).
        parallel_evaluate(
            pop_.size() * tasks_,
            [&](std::size_t k) { pop_[k / tasks_].costs[k % tasks_] = problem_.cost(k % tasks_, pop_[k / tasks_].genome); },
            opt_.threads);
        for (std::size_t i = 0; i < pop_.size(); ++i)
            for (std::size_t t = 0; t < tasks_; ++t) check_cost(pop_[i].costs[t], t, i);
        evaluations_ = pop_.size() * tasks_;
        generation_ = 0;
        pop_ = survive(std::move(pop_));
        initialized_ = true;
        report();
    }

    void step() {
        if (!initialized_) {
            initialize();
            return;
        }
        Rng rng(gen_);
        const std::size_t n = pop_.size();
        constexpr double inf = std::numeric_limits<double>::infinity();
        std::vector<Member> kids;
        kids.reserve(n + 1);
        while (kids.size() < n) {
            const Member& a = pop_[rng.below(n)];
            const Member& b = pop_[rng.below(n)];
            Member c1, c2;
            if (a.skill == b.skill || rng.bernoulli(opt_.rmp)) {
                auto kid = variation_.crossover(a.genome, b.genome, rng);
                c1.genome = std::move(kid.first);
                c2.genome = std::move(kid.second);
                if (opt_.mutate_after_crossover) {
                    variation_.mutate(c1.genome, rng);
                    variation_.mutate(c2.genome, rng);
                }
                c1.skill = rng.bernoulli(0.5) ? a.skill : b.skill;
                c2.skill = rng.bernoulli(0.5) ? a.skill : b.skill;
            } else {
                c1.genome = a.genome;
                c2.genome = b.genome;
                variation_.mutate(c1.genome, rng);
                variation_.mutate(c2.genome, rng);
                c1.skill = a.skill;
                c2.skill = b.skill;
            }
            c1.costs.assign(tasks_, inf);
            c2.costs.assign(tasks_, inf);
            kids.push_back(std::move(c1));
            if (kids.size() < n) kids.push_back(std::move(c2));
        }
        parallel_evaluate(
            kids.size(), [&](std::size_t i) { kids[i].costs[kids[i].skill] = problem_.cost(kids[i].skill, kids[i].genome); },
            opt_.threads);
        for (std::size_t i = 0; i < kids.size(); ++i) check_cost(kids[i].costs[kids[i].skill], kids[i].skill, i);
        evaluations_ += kids.size();
        std::vector<Member> all = std::move(pop_);
        for (auto& k : kids) all.push_back(std::move(k));
        pop_ = survive(std::move(all));
        ++generation_;
        report();
    }

    void run() {
        if (!initialized_) initialize();
        while (generation_ < opt_.generations) step();
    }

    const std::vector<Member>& population() const { return pop_; }
    std::size_t generation() const noexcept { return generation_; }
    std::size_t evaluations() const noexcept { return evaluations_; }
    std::size_t num_tasks() const noexcept { return tasks_; }

    // The individual with the lowest cost on `task` (ties: first in the population).
    const Member& best(std::size_t task) const {
        POLYMATH_CHECK(task < tasks_, "evo::Mfea::best", "task id ", task, " out of range for ", tasks_, " tasks");
        POLYMATH_CHECK(!pop_.empty(), "evo::Mfea::best", "empty population: call run() or initialize() first");
        std::size_t b = 0;
        for (std::size_t i = 1; i < pop_.size(); ++i)
            if (pop_[i].costs[task] < pop_[b].costs[task]) b = i;
        return pop_[b];
    }

    // ---- checkpoints (as MoMfea: exact, atomic; see evo/checkpoint.hpp) -------
    void save(const std::string& path) const {
        POLYMATH_CHECK(initialized_, "evo::Mfea::save", "nothing to save to '", path,
                       "': the population is not initialized");
        nlohmann::json j;
        j["format"] = "polymath.evo.Mfea";
        j["version"] = 1;
        j["num_tasks"] = tasks_;
        j["population"] = opt_.population;
        j["generation"] = generation_;
        j["evaluations"] = evaluations_;
        j["seed"] = gen_.seed();
        j["offset"] = gen_.offset();
        nlohmann::json pop = nlohmann::json::array();
        for (const auto& m : pop_) {
            nlohmann::json e;
            e["skill"] = m.skill;
            e["fitness"] = double_bits(m.fitness);
            e["costs"] = doubles_to_json(m.costs);
            e["genome"] = genome_to_json(m.genome);
            pop.push_back(std::move(e));
        }
        j["individuals"] = std::move(pop);
        write_file_atomic(path, j.dump());
    }

    // Replaces the state with the checkpoint's (nothing changes on error).
    void load(const std::string& path) {
        static constexpr const char* op = "evo::Mfea::load";
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(read_file(path, op));
        } catch (const nlohmann::json::exception& e) {
            POLYMATH_THROW(op, "'", path, "' is not valid JSON: ", e.what());
        }
        try {
            POLYMATH_CHECK(j.value("format", "") == "polymath.evo.Mfea" && j.value("version", 0) == 1, op, "'", path,
                           "' is not a version-1 Mfea checkpoint");
            const auto k = j.at("num_tasks").get<std::size_t>();
            const auto n = j.at("population").get<std::size_t>();
            POLYMATH_CHECK(k == tasks_ && n == opt_.population, op, "'", path, "' holds ", k, " tasks and ", n,
                           " individuals, this run has ", tasks_, " and ", opt_.population);
            std::vector<Member> pop;
            for (const auto& e : j.at("individuals")) {
                Member m;
                m.skill = e.at("skill").get<std::size_t>();
                POLYMATH_CHECK(m.skill < tasks_, op, "task id ", m.skill, " out of range for ", tasks_, " tasks");
                m.fitness = double_from_bits(e.at("fitness").get<std::string>(), op);
                m.costs = doubles_from_json(e.at("costs"), op);
                POLYMATH_CHECK(m.costs.size() == tasks_, op, "an individual has ", m.costs.size(), " costs for ",
                               tasks_, " tasks");
                m.genome = GenomeCodec<Genome>::from_json(e.at("genome"), op);
                pop.push_back(std::move(m));
            }
            POLYMATH_CHECK(pop.size() == n, op, "'", path, "' lists ", pop.size(), " individuals, expected ", n);
            const auto seed = j.at("seed").get<std::uint64_t>();
            const auto offset = j.at("offset").get<std::uint64_t>();
            const auto generation = j.at("generation").get<std::size_t>();
            const auto evaluations = j.at("evaluations").get<std::size_t>();
            POLYMATH_CHECK(offset % 4 == 0, op, "'", path, "': generator offset ", offset, " is not a multiple of 4");
            restore_generator(gen_, seed, offset);
            generation_ = generation;
            evaluations_ = evaluations;
            pop_ = std::move(pop);
            initialized_ = true;
        } catch (const nlohmann::json::exception& e) {
            POLYMATH_THROW(op, "'", path, "' is malformed: ", e.what());
        }
    }

private:
    void check_cost(double c, std::size_t task, std::size_t i) const {
        POLYMATH_CHECK(!std::isnan(c), "evo::Mfea", "cost of individual ", i, " on task ", task,
                       " is NaN (generation ", generation_, ")");
    }

    // Factorial ranks per task, skill factors, scalar fitness; keeps the best.
    std::vector<Member> survive(std::vector<Member> all) {
        const std::size_t n = all.size();
        std::vector<std::size_t> best_rank(n, std::numeric_limits<std::size_t>::max());
        std::vector<std::size_t> ord(n);
        for (std::size_t t = 0; t < tasks_; ++t) {
            std::iota(ord.begin(), ord.end(), std::size_t(0));
            std::stable_sort(ord.begin(), ord.end(),
                             [&](std::size_t a, std::size_t b) { return all[a].costs[t] < all[b].costs[t]; });
            for (std::size_t r = 0; r < n; ++r) {
                Member& m = all[ord[r]];
                if (!std::isfinite(m.costs[t]) && m.costs[t] > 0) continue;  // not evaluated on t
                if (r + 1 < best_rank[ord[r]]) {
                    best_rank[ord[r]] = r + 1;
                    m.skill = t;
                }
            }
        }
        for (std::size_t i = 0; i < n; ++i) all[i].fitness = 1.0 / double(best_rank[i]);
        std::iota(ord.begin(), ord.end(), std::size_t(0));
        std::stable_sort(ord.begin(), ord.end(), [&](std::size_t a, std::size_t b) { return all[a].fitness > all[b].fitness; });
        std::vector<Member> next;
        next.reserve(opt_.population);
        for (std::size_t k = 0; k < opt_.population && k < n; ++k) next.push_back(std::move(all[ord[k]]));
        return next;
    }

    void report() {
        if (!progress_) return;
        Progress p;
        p.generation = generation_;
        p.generations = opt_.generations;
        p.evaluations = evaluations_;
        for (std::size_t t = 0; t < tasks_; ++t) p.best_cost.push_back(best(t).costs[t]);
        progress_(p);
    }

    Problem problem_;
    V variation_;
    MfeaOptions opt_;
    Generator gen_;
    std::size_t tasks_ = 0;
    std::vector<Member> pop_;
    std::size_t generation_ = 0, evaluations_ = 0;
    bool initialized_ = false;
    ProgressCallback progress_;
};

}  // namespace polymath::evo
