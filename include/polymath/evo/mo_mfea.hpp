// polymath/evo/mo_mfea.hpp — the multi-objective multifactorial evolutionary
// algorithm (MO-MFEA; Gupta, Ong, Feng & Tan, "Multiobjective multifactorial
// optimization in evolutionary multitasking", IEEE Trans. Cybernetics 2017),
// as used by "Jack and Masters of All Trades" (arXiv 2205.00671) to evolve
// one mask per task.
//
//   struct Masks {                                  // a MultiTaskProblem
//       std::size_t num_tasks() const { return 2; }
//       std::vector<double> objectives(std::size_t task, const evo::BitGenome& g) const;
//   };
//   evo::MoMfea algo(Masks{}, evo::BitVariation{.bits = 64}, {.population_per_task = 60, .generations = 120});
//   algo.run();
//   auto best = algo.front(0);                      // task 0's non-dominated individuals
//
// Each task owns `population_per_task` individuals (its skill factor). A
// generation:
//   1. parents: binary tournaments over the whole population by (rank within
//      the parent's task, crowding distance);
//   2. assortative mating: parents of the same task, or of different tasks
//      with probability rmp, are recombined (children then mutated when
//      mutate_after_crossover, as NSGA-II does); otherwise each parent is
//      copied and mutated;
//   3. vertical cultural transmission: a child of a crossover imitates (takes
//      the task of) parent a or b with probability 1/2 each; a mutant keeps its
//      parent's task;
//   4. offspring are evaluated on their task only, in parallel (oneTBB);
//   5. per task, NSGA-II survival over that task's parents + offspring keeps
//      population_per_task of them.
// With one task this is exactly NSGA-II (evo/nsga2.hpp builds on it).
//
// Determinism: every random draw happens on the calling thread from one
// Philox Generator (seed in the options); evaluation only fills slots. Runs
// are identical for any thread count, and save()/load() store the population,
// the generator state and the counters exactly, so a resumed run is
// bit-identical to an uninterrupted one (given a deterministic problem).
// The problem's objectives() is called concurrently and must be thread-safe.
#pragma once
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "polymath/core/error.hpp"
#include "polymath/core/philox.hpp"
#include "polymath/evo/checkpoint.hpp"
#include "polymath/evo/evaluate.hpp"
#include "polymath/evo/hypervolume.hpp"
#include "polymath/evo/individual.hpp"
#include "polymath/evo/progress.hpp"
#include "polymath/evo/rng.hpp"
#include "polymath/evo/selection.hpp"
#include "polymath/evo/variation.hpp"

namespace polymath::evo {

template <class P, class G>
concept MultiTaskProblem = requires(const P& p, const G& g, std::size_t task) {
    { p.num_tasks() } -> std::convertible_to<std::size_t>;
    { p.objectives(task, g) };
};

struct MoMfeaOptions {
    std::size_t population_per_task = 60;
    std::size_t generations = 100;  // generations after the initial population
    double rmp = 0.3;               // random mating probability across tasks
    bool mutate_after_crossover = true;
    std::uint64_t seed = 0;
    int threads = 0;  // evaluation threads, 0 = polymath::num_threads()
    // Per task, the reference point of the hypervolume in Progress (optional).
    std::vector<std::vector<double>> reference_points{};
    // Non-empty: save() there (atomically) after every generation.
    std::string checkpoint_path{};
};

template <class Problem, Variation V>
    requires MultiTaskProblem<Problem, typename V::genome_type>
class MoMfea {
public:
    using Genome = typename V::genome_type;
    using Member = Individual<Genome>;

    MoMfea(Problem problem, V variation, MoMfeaOptions options)
        : problem_(std::move(problem)), variation_(std::move(variation)), opt_(std::move(options)),
          gen_(opt_.seed) {
        tasks_ = problem_.num_tasks();
        POLYMATH_CHECK(tasks_ > 0, "evo::MoMfea", "the problem has 0 tasks");
        POLYMATH_CHECK(opt_.population_per_task > 0, "evo::MoMfea",
                       "empty population: population_per_task must be >= 1");
        POLYMATH_CHECK(opt_.rmp >= 0.0 && opt_.rmp <= 1.0, "evo::MoMfea", "rmp must be in [0, 1], got ", opt_.rmp);
        POLYMATH_CHECK(opt_.reference_points.empty() || opt_.reference_points.size() == tasks_, "evo::MoMfea",
                       "reference_points has ", opt_.reference_points.size(), " entries for ", tasks_, " tasks");
        resolve_threads(opt_.threads);
    }

    void on_progress(ProgressCallback cb) { progress_ = std::move(cb); }

    // Random initial population (task-major: task 0's individuals first),
    // evaluated; generation 0.
    void initialize() {
        Rng rng(gen_);
        pop_.clear();
        for (std::size_t t = 0; t < tasks_; ++t)
            for (std::size_t i = 0; i < opt_.population_per_task; ++i) {
                Member m;
                m.genome = variation_.random(rng);
                m.task = t;
                pop_.push_back(std::move(m));
            }
        evaluate(pop_);
        evaluations_ = pop_.size();
        generation_ = 0;
        std::vector<Member> all = std::move(pop_);
        pop_ = survive(std::move(all));
        initialized_ = true;
        after_generation();
    }

    // One generation (initializes first if needed).
    void step() {
        if (!initialized_) {
            initialize();
            return;
        }
        Rng rng(gen_);
        const std::size_t n = pop_.size();
        std::vector<std::size_t> pool(n), rank(n);
        std::vector<double> crowd(n);
        for (std::size_t i = 0; i < n; ++i) {
            pool[i] = i;
            rank[i] = pop_[i].rank;
            crowd[i] = pop_[i].crowding;
        }
        std::vector<Member> kids;
        kids.reserve(n + 1);
        while (kids.size() < n) {
            const Member& a = pop_[binary_tournament(pool, rank, crowd, rng)];
            const Member& b = pop_[binary_tournament(pool, rank, crowd, rng)];
            Member c1, c2;
            if (a.task == b.task || rng.bernoulli(opt_.rmp)) {
                auto kid = variation_.crossover(a.genome, b.genome, rng);
                c1.genome = std::move(kid.first);
                c2.genome = std::move(kid.second);
                if (opt_.mutate_after_crossover) {
                    variation_.mutate(c1.genome, rng);
                    variation_.mutate(c2.genome, rng);
                }
                c1.task = rng.bernoulli(0.5) ? a.task : b.task;
                c2.task = rng.bernoulli(0.5) ? a.task : b.task;
            } else {
                c1.genome = a.genome;
                c2.genome = b.genome;
                variation_.mutate(c1.genome, rng);
                variation_.mutate(c2.genome, rng);
                c1.task = a.task;
                c2.task = b.task;
            }
            kids.push_back(std::move(c1));
            if (kids.size() < n) kids.push_back(std::move(c2));
        }
        evaluate(kids);
        evaluations_ += kids.size();
        std::vector<Member> all = std::move(pop_);
        for (auto& k : kids) all.push_back(std::move(k));
        pop_ = survive(std::move(all));
        ++generation_;
        after_generation();
    }

    // Runs until options.generations generations are done (resumes after load()).
    void run() {
        if (!initialized_) initialize();
        while (generation_ < opt_.generations) step();
    }

    const std::vector<Member>& population() const { return pop_; }
    std::size_t generation() const noexcept { return generation_; }
    std::size_t evaluations() const noexcept { return evaluations_; }
    std::size_t num_tasks() const noexcept { return tasks_; }
    const MoMfeaOptions& options() const noexcept { return opt_; }
    const Problem& problem() const noexcept { return problem_; }
    const Generator& generator() const noexcept { return gen_; }

    // The individuals of `task` (in survival order, best first).
    std::vector<Member> task_population(std::size_t task) const {
        check_task(task, "evo::MoMfea::task_population");
        std::vector<Member> out;
        for (const auto& m : pop_)
            if (m.task == task) out.push_back(m);
        return out;
    }
    // The first front of `task`.
    std::vector<Member> front(std::size_t task) const {
        check_task(task, "evo::MoMfea::front");
        std::vector<Member> out;
        for (const auto& m : pop_)
            if (m.task == task && m.rank == 0) out.push_back(m);
        return out;
    }
    // Hypervolume of task's first front against `ref` (2 or 3 objectives).
    double hypervolume(std::size_t task, const std::vector<double>& ref) const {
        check_task(task, "evo::MoMfea::hypervolume");
        std::vector<std::vector<double>> pts;
        for (const auto& m : pop_)
            if (m.task == task && m.rank == 0) pts.push_back(m.objectives);
        return evo::hypervolume(pts, ref);
    }

    // ---- checkpoints ---------------------------------------------------------
    void save(const std::string& path) const {
        POLYMATH_CHECK(initialized_, "evo::MoMfea::save", "nothing to save to '", path,
                       "': the population is not initialized");
        nlohmann::json j;
        j["format"] = "polymath.evo.MoMfea";
        j["version"] = 1;
        j["num_tasks"] = tasks_;
        j["population_per_task"] = opt_.population_per_task;
        j["generation"] = generation_;
        j["evaluations"] = evaluations_;
        j["seed"] = gen_.seed();
        j["offset"] = gen_.offset();
        nlohmann::json pop = nlohmann::json::array();
        for (const auto& m : pop_) {
            nlohmann::json e;
            e["task"] = m.task;
            e["rank"] = m.rank;
            e["crowding"] = double_bits(m.crowding);
            e["objectives"] = doubles_to_json(m.objectives);
            e["genome"] = genome_to_json(m.genome);
            pop.push_back(std::move(e));
        }
        j["population"] = std::move(pop);
        write_file_atomic(path, j.dump());
    }

    // Replaces the state with the checkpoint's; run() then continues to
    // options.generations. Throws (changing nothing) if the file is not a
    // MoMfea checkpoint of this problem's task count and population size.
    void load(const std::string& path) {
        static constexpr const char* op = "evo::MoMfea::load";
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(read_file(path, op));
        } catch (const nlohmann::json::exception& e) {
            POLYMATH_THROW(op, "'", path, "' is not valid JSON: ", e.what());
        }
        try {
            POLYMATH_CHECK(j.value("format", "") == "polymath.evo.MoMfea" && j.value("version", 0) == 1, op, "'",
                           path, "' is not a version-1 MoMfea checkpoint");
            const auto k = j.at("num_tasks").get<std::size_t>();
            const auto per = j.at("population_per_task").get<std::size_t>();
            POLYMATH_CHECK(k == tasks_ && per == opt_.population_per_task, op, "'", path, "' holds ", k,
                           " tasks x ", per, " individuals, this run has ", tasks_, " x ", opt_.population_per_task);
            std::vector<Member> pop;
            for (const auto& e : j.at("population")) {
                Member m;
                m.task = e.at("task").get<std::size_t>();
                check_task(m.task, op);
                m.rank = e.at("rank").get<std::size_t>();
                m.crowding = double_from_bits(e.at("crowding").get<std::string>(), op);
                m.objectives = doubles_from_json(e.at("objectives"), op);
                m.genome = GenomeCodec<Genome>::from_json(e.at("genome"), op);
                pop.push_back(std::move(m));
            }
            POLYMATH_CHECK(pop.size() == k * per, op, "'", path, "' holds ", pop.size(), " individuals, expected ",
                           k * per);
            const auto seed = j.at("seed").get<std::uint64_t>();
            const auto offset = j.at("offset").get<std::uint64_t>();
            const auto generation = j.at("generation").get<std::size_t>();
            const auto evaluations = j.at("evaluations").get<std::size_t>();
            POLYMATH_CHECK(offset % 4 == 0, op, "'", path, "': generator offset ", offset,
                           " is not a multiple of 4");
            // Everything parsed: only now is the state replaced.
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
    void check_task(std::size_t task, const char* op) const {
        POLYMATH_CHECK(task < tasks_, op, "task id ", task, " out of range for ", tasks_, " tasks");
    }

    void evaluate(std::vector<Member>& members) {
        parallel_evaluate(
            members.size(),
            [&](std::size_t i) {
                check_task(members[i].task, "evo::MoMfea");
                const auto r = problem_.objectives(members[i].task, members[i].genome);
                members[i].objectives.assign(std::begin(r), std::end(r));
            },
            opt_.threads);
        // Checked afterwards, in index order, so the error names the same
        // individual for any thread count.
        std::vector<std::size_t> m_of(tasks_, std::numeric_limits<std::size_t>::max());
        for (std::size_t i = 0; i < members.size(); ++i) {
            const auto& m = members[i];
            POLYMATH_CHECK(!m.objectives.empty(), "evo::MoMfea", "task ", m.task, " returned no objectives");
            auto& want = m_of[m.task];
            if (want == std::numeric_limits<std::size_t>::max()) want = m.objectives.size();
            POLYMATH_CHECK(m.objectives.size() == want, "evo::MoMfea", "task ", m.task, " returned ",
                           m.objectives.size(), " objectives, earlier ", want);
            for (std::size_t o = 0; o < m.objectives.size(); ++o)
                POLYMATH_CHECK(!std::isnan(m.objectives[o]), "evo::MoMfea", "objective ", o, " of task ", m.task,
                               " is NaN (offspring ", i, " of generation ", generation_, ")");
        }
    }

    // Per task, NSGA-II survival over the candidates of that task.
    std::vector<Member> survive(std::vector<Member> all) {
        std::vector<Member> next;
        next.reserve(tasks_ * opt_.population_per_task);
        for (std::size_t t = 0; t < tasks_; ++t) {
            std::vector<std::size_t> idx;
            std::vector<std::vector<double>> objs;
            for (std::size_t i = 0; i < all.size(); ++i)
                if (all[i].task == t) {
                    idx.push_back(i);
                    objs.push_back(all[i].objectives);
                }
            const std::size_t keep = std::min(opt_.population_per_task, idx.size());
            if (keep == 0) continue;
            const Survival s = nsga2_survival(objs, keep);
            for (std::size_t k : s.survivors) {
                Member m = std::move(all[idx[k]]);
                m.rank = s.rank[k];
                m.crowding = s.crowding[k];
                next.push_back(std::move(m));
            }
        }
        return next;
    }

    void after_generation() {
        if (progress_) {
            Progress p;
            p.generation = generation_;
            p.generations = opt_.generations;
            p.evaluations = evaluations_;
            p.hypervolume.assign(tasks_, std::numeric_limits<double>::quiet_NaN());
            for (std::size_t t = 0; t < tasks_ && !opt_.reference_points.empty(); ++t) {
                const auto& ref = opt_.reference_points[t];
                if (ref.size() == 2 || ref.size() == 3) p.hypervolume[t] = hypervolume(t, ref);
            }
            progress_(p);
        }
        if (!opt_.checkpoint_path.empty()) save(opt_.checkpoint_path);
    }

    Problem problem_;
    V variation_;
    MoMfeaOptions opt_;
    Generator gen_;
    std::size_t tasks_ = 0;
    std::vector<Member> pop_;
    std::size_t generation_ = 0, evaluations_ = 0;
    bool initialized_ = false;
    ProgressCallback progress_;
};

}  // namespace polymath::evo
