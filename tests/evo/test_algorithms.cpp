// NSGA-II on ZDT1/ZDT2, MO-MFEA and MFEA on toy multi-task problems,
// determinism across thread counts, checkpoints and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>
#include <string>
#include <vector>

#include <polymath/evo.hpp>  // the umbrella: checks that it compiles on its own

using namespace polymath;

namespace {

struct Zdt {
    int which = 1;  // 1: convex front f2 = 1 - sqrt(f1); 2: concave f2 = 1 - f1^2
    std::vector<double> objectives(const evo::RealGenome& x) const {
        double s = 0;
        for (std::size_t i = 1; i < x.size(); ++i) s += x[i];
        const double f1 = x[0], g = 1.0 + 9.0 * s / double(x.size() - 1);
        const double r = f1 / g;
        return {f1, g * (which == 1 ? 1.0 - std::sqrt(r) : 1.0 - r * r)};
    }
};

// Hypervolume of the true front against (1.1, 1.1): the area under 1.1 - f2*(x)
// for x in [0, 1] (composite Simpson, 2e5 intervals) plus the strip x in [1, 1.1].
double true_front_hv(int which) {
    auto h = [&](double x) { return 1.1 - (which == 1 ? 1.0 - std::sqrt(x) : 1.0 - x * x); };
    const int n = 200000;
    double s = h(0) + h(1);
    for (int i = 1; i < n; ++i) s += (i % 2 ? 4 : 2) * h(double(i) / n);
    return s / (3.0 * n) + 0.1 * 1.1;
}

template <class Algo>
void check_same_population(const Algo& a, const Algo& b) {
    const auto& pa = a.population();
    const auto& pb = b.population();
    REQUIRE(pa.size() == pb.size());
    for (std::size_t i = 0; i < pa.size(); ++i) {
        CHECK(pa[i].genome == pb[i].genome);  // exact, bit for bit (doubles compared with ==)
        CHECK(pa[i].objectives == pb[i].objectives);
        CHECK(pa[i].task == pb[i].task);
        CHECK(pa[i].rank == pb[i].rank);
        CHECK((pa[i].crowding == pb[i].crowding));
    }
    CHECK(a.evaluations() == b.evaluations());
    CHECK(a.generation() == b.generation());
}

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("polymath_evo_" + name + "_" + std::to_string(::getpid()))).string();
}

// Two mask tasks over 24 bits with known optimal masks: objective 0 is the
// mask density, objective 1 the "loss" = number of the task's needed bits that
// the mask drops. The only mask with loss 0 and the smallest density is the
// needed set itself.
struct ToyMasks {
    std::vector<evo::BitGenome> needed;
    std::size_t num_tasks() const { return needed.size(); }
    std::vector<double> objectives(std::size_t task, const evo::BitGenome& m) const {
        double on = 0, missing = 0;
        for (std::size_t i = 0; i < m.size(); ++i) {
            on += m[i];
            missing += needed[task][i] && !m[i];
        }
        return {on / double(m.size()), missing};
    }
};

ToyMasks make_toy_masks() {
    evo::BitGenome a(24, 0), b(24, 0);
    for (std::size_t i = 0; i < 24; ++i) {
        a[i] = i < 6;          // the first six groups
        b[i] = i % 5 == 2;     // 2, 7, 12, 17, 22
    }
    return {{a, b}};
}

// Two single-objective tasks with different optima on [0, 1]^8.
struct TwoSpheres {
    std::size_t num_tasks() const { return 2; }
    double cost(std::size_t task, const evo::RealGenome& x) const {
        const double c = task == 0 ? 0.2 : 0.7;
        double s = 0;
        for (double v : x) s += (v - c) * (v - c);
        return s;
    }
};

}  // namespace

TEST_CASE("NSGA-II reaches >= 0.98 of the true front's hypervolume on ZDT1 and ZDT2 within 25,000 evaluations") {
    for (int which : {1, 2}) {
        CAPTURE(which);
        evo::Nsga2 algo(Zdt{which}, evo::RealVariation{evo::RealBounds(30, 0.0, 1.0)},
                        {.population = 100, .generations = 249, .seed = 2024, .reference_point = {1.1, 1.1}});
        std::size_t calls = 0, last_evals = 0;
        double last_hv = 0;
        algo.on_progress([&](const evo::Progress& p) {
            CHECK(p.generation == calls);
            CHECK(p.evaluations == 100 * (calls + 1));
            last_evals = p.evaluations;
            last_hv = p.hypervolume.at(0);
            ++calls;
        });
        algo.run();
        CHECK(calls == 250);
        CHECK(algo.evaluations() == 25000);
        CHECK(last_evals == 25000);
        const double hv = algo.hypervolume({1.1, 1.1}), ref = true_front_hv(which);
        CHECK(hv == last_hv);
        MESSAGE("ZDT" << which << ": hypervolume " << hv << " of " << ref << " (" << hv / ref << ")");
        CHECK(hv >= 0.98 * ref);
        CHECK(hv <= ref);
    }
    // Check of the integration itself: 1.21 - (1 - 2/3) - 0.11 + 0.11 ... in closed form.
    CHECK(true_front_hv(1) == doctest::Approx(0.1 + 2.0 / 3.0 + 0.11).epsilon(1e-9));
    CHECK(true_front_hv(2) == doctest::Approx(0.1 + 1.0 / 3.0 + 0.11).epsilon(1e-9));
}

TEST_CASE("NSGA-II gives identical populations for 1 and 2 evaluation threads") {
    auto run = [](int threads) {
        evo::Nsga2 a(Zdt{1}, evo::RealVariation{evo::RealBounds(30, 0.0, 1.0)},
                     {.population = 40, .generations = 15, .seed = 9, .threads = threads});
        a.run();
        return a;
    };
    check_same_population(run(1), run(2));
}

TEST_CASE("checkpoint resume is bit-identical to an uninterrupted run") {
    const std::string path = temp_path("nsga2.json");
    const evo::RealVariation var{evo::RealBounds(30, 0.0, 1.0)};
    evo::Nsga2 straight(Zdt{2}, var, {.population = 40, .generations = 20, .seed = 77});
    straight.run();

    evo::Nsga2 first(Zdt{2}, var, {.population = 40, .generations = 9, .seed = 77, .checkpoint_path = path});
    first.run();  // saved after every generation; the last save is generation 9
    // Written as temp + rename: no temporary file is left next to the checkpoint.
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
        CHECK(e.path().string().rfind(path + ".tmp", 0) != 0);
    evo::Nsga2 resumed(Zdt{2}, var, {.population = 40, .generations = 20, .seed = 12345});  // seed comes from the file
    resumed.load(path);
    CHECK(resumed.generation() == 9);
    resumed.run();
    check_same_population(straight, resumed);
    std::filesystem::remove(path);

    // MO-MFEA with bit genomes (stored as '0'/'1' strings).
    const std::string mpath = temp_path("momfea.json");
    const evo::BitVariation bits{.bits = 24};
    evo::MoMfea m1(make_toy_masks(), bits, {.population_per_task = 20, .generations = 12, .seed = 3});
    m1.run();
    evo::MoMfea m2(make_toy_masks(), bits, {.population_per_task = 20, .generations = 5, .seed = 3});
    m2.run();
    m2.save(mpath);
    evo::MoMfea m3(make_toy_masks(), bits, {.population_per_task = 20, .generations = 12, .seed = 3});
    m3.load(mpath);
    m3.run();
    check_same_population(m1, m3);
    std::filesystem::remove(mpath);

    // MFEA (costs per task, skill factors, scalar fitness).
    const std::string fpath = temp_path("mfea.json");
    const evo::RealVariation reals{evo::RealBounds(8, 0.0, 1.0)};
    evo::Mfea f1(TwoSpheres{}, reals, {.population = 30, .generations = 14, .seed = 8});
    f1.run();
    evo::Mfea f2(TwoSpheres{}, reals, {.population = 30, .generations = 6, .seed = 8});
    f2.run();
    f2.save(fpath);
    evo::Mfea f3(TwoSpheres{}, reals, {.population = 30, .generations = 14, .seed = 0});
    f3.load(fpath);
    f3.run();
    REQUIRE(f1.population().size() == f3.population().size());
    for (std::size_t i = 0; i < f1.population().size(); ++i) {
        CHECK(f1.population()[i].genome == f3.population()[i].genome);
        CHECK(f1.population()[i].costs == f3.population()[i].costs);
        CHECK(f1.population()[i].skill == f3.population()[i].skill);
        CHECK(f1.population()[i].fitness == f3.population()[i].fitness);
    }
    CHECK(f1.evaluations() == f3.evaluations());
    evo::Mfea other(TwoSpheres{}, reals, {.population = 31});
    CHECK_THROWS_WITH_AS(other.load(fpath), doctest::Contains("holds 2 tasks and 30 individuals"), Error);
    std::filesystem::remove(fpath);
}

TEST_CASE("checkpoint load rejects missing, malformed and mismatched files, naming the path") {
    const evo::BitVariation bits{.bits = 24};
    evo::MoMfea m(make_toy_masks(), bits, {.population_per_task = 10, .generations = 1});
    CHECK_THROWS_WITH_AS(m.load("/nonexistent/evo.json"), doctest::Contains("cannot open '/nonexistent/evo.json'"),
                         Error);
    const std::string path = temp_path("bad.json");
    { std::ofstream(path) << "{not json"; }
    CHECK_THROWS_WITH_AS(m.load(path), doctest::Contains("is not valid JSON"), Error);
    m.run();
    m.save(path);
    evo::MoMfea other(make_toy_masks(), bits, {.population_per_task = 11, .generations = 1});
    CHECK_THROWS_WITH_AS(other.load(path), doctest::Contains("holds 2 tasks x 10 individuals, this run has 2 x 11"),
                         Error);
    std::filesystem::remove(path);
}

TEST_CASE("MO-MFEA finds the known optimal mask of each of two toy tasks") {
    evo::MoMfea algo(make_toy_masks(), evo::BitVariation{.bits = 24},
                     {.population_per_task = 40, .generations = 80, .rmp = 0.3, .seed = 5,
                      .reference_points = {{1.1, 7.0}, {1.1, 6.0}}});
    std::vector<double> hv;
    algo.on_progress([&](const evo::Progress& p) { hv = p.hypervolume; });
    algo.run();
    const ToyMasks toy = make_toy_masks();
    for (std::size_t t = 0; t < 2; ++t) {
        CAPTURE(t);
        bool found = false;
        for (const auto& m : algo.front(t)) found = found || m.genome == toy.needed[t];
        CHECK(found);
        // The whole true front: every subset size k of the needed set (loss |needed| - k).
        std::set<std::pair<double, double>> pts;
        for (const auto& m : algo.front(t)) pts.insert({m.objectives[0], m.objectives[1]});
        const double need = t == 0 ? 6 : 5;
        CHECK(pts.size() == need + 1);
        for (const auto& [d, l] : pts) CHECK(d * 24 + l == need);
        CHECK(algo.task_population(t).size() == 40);
        // Hypervolume of that front: staircase of (k/24, need - k), k = 0..need.
        double ref_hv = 0;
        for (int k = 0; k <= need; ++k) {
            const double x = k / 24.0, next = k < need ? (k + 1) / 24.0 : 1.1;
            ref_hv += (next - x) * ((t == 0 ? 7.0 : 6.0) - (need - k));
        }
        CHECK(hv.at(t) == doctest::Approx(ref_hv));
    }
}

TEST_CASE("MO-MFEA: task ids out of range, NaN objectives and empty populations are errors") {
    const evo::BitVariation bits{.bits = 24};
    evo::MoMfea algo(make_toy_masks(), bits, {.population_per_task = 10, .generations = 2});
    algo.run();
    CHECK_THROWS_WITH_AS(algo.front(2), doctest::Contains("task id 2 out of range for 2 tasks"), Error);
    CHECK_THROWS_WITH_AS(algo.hypervolume(5, {1, 1}), doctest::Contains("task id 5 out of range for 2 tasks"), Error);
    CHECK_THROWS_WITH_AS(evo::MoMfea(make_toy_masks(), bits, {.population_per_task = 0}),
                         doctest::Contains("empty population"), Error);
    CHECK_THROWS_WITH_AS(evo::MoMfea(make_toy_masks(), bits, {.rmp = 1.5}), doctest::Contains("rmp must be in [0, 1]"),
                         Error);

    struct NanTask {
        std::size_t num_tasks() const { return 1; }
        std::vector<double> objectives(std::size_t, const evo::BitGenome& m) const {
            return {double(m[0]), m[1] ? std::nan("") : 0.0};
        }
    };
    evo::MoMfea bad(NanTask{}, bits, {.population_per_task = 10, .generations = 2});
    CHECK_THROWS_WITH_AS(bad.run(), doctest::Contains("objective 1 of task 0 is NaN"), Error);
    evo::Nsga2 empty(Zdt{1}, evo::RealVariation{evo::RealBounds(30, 0.0, 1.0)}, {.population = 2});
    CHECK_NOTHROW(empty.run());
    CHECK_THROWS_WITH_AS(evo::Nsga2(Zdt{1}, evo::RealVariation{evo::RealBounds(30, 0.0, 1.0)}, {.population = 0}),
                         doctest::Contains("empty population"), Error);
}

TEST_CASE("MFEA solves two single-objective tasks with different optima at once") {
    evo::Mfea algo(TwoSpheres{}, evo::RealVariation{evo::RealBounds(8, 0.0, 1.0)},
                   {.population = 60, .generations = 150, .rmp = 0.3, .seed = 11});
    std::vector<double> best;
    std::size_t calls = 0;
    algo.on_progress([&](const evo::Progress& p) {
        best = p.best_cost;
        ++calls;
    });
    algo.run();
    CHECK(calls == 151);
    CHECK(algo.evaluations() == 60 * 2 + 150 * 60);
    for (std::size_t t = 0; t < 2; ++t) {
        const auto& b = algo.best(t);
        CHECK(b.costs[t] < 1e-3);
        CHECK(best[t] == b.costs[t]);
        const double c = t == 0 ? 0.2 : 0.7;
        for (double v : b.genome) CHECK(std::abs(v - c) < 0.03);
    }
    // Both skill factors survive in the population.
    std::size_t skill0 = 0;
    for (const auto& m : algo.population()) skill0 += m.skill == 0;
    CHECK(skill0 > 0);
    CHECK(skill0 < 60);
    CHECK_THROWS_WITH_AS(algo.best(2), doctest::Contains("task id 2 out of range for 2 tasks"), Error);

    struct NanCost {
        std::size_t num_tasks() const { return 2; }
        double cost(std::size_t t, const evo::RealGenome& x) const { return t == 1 && x[0] > 0.5 ? std::nan("") : x[0]; }
    };
    evo::Mfea bad(NanCost{}, evo::RealVariation{evo::RealBounds(2, 0.0, 1.0)}, {.population = 20, .generations = 2});
    CHECK_THROWS_WITH_AS(bad.run(), doctest::Contains("on task 1 is NaN"), Error);
    CHECK_THROWS_WITH_AS(evo::Mfea(TwoSpheres{}, evo::RealVariation{evo::RealBounds(2, 0.0, 1.0)}, {.population = 0}),
                         doctest::Contains("empty population"), Error);
}

TEST_CASE("parallel_evaluate fills every slot once for any thread count and passes errors on") {
    for (int threads : {0, 1, 2}) {
        std::vector<int> hits(1000, 0);
        evo::parallel_evaluate(hits.size(), [&](std::size_t i) { hits[i] += int(i % 7); }, threads);
        for (std::size_t i = 0; i < hits.size(); ++i) CHECK(hits[i] == int(i % 7));
        CHECK_THROWS_WITH_AS(evo::parallel_evaluate(
                                 100, [](std::size_t i) { POLYMATH_CHECK(i != 42, "toy", "individual ", i, " failed"); },
                                 threads),
                             doctest::Contains("individual 42 failed"), Error);
    }
    CHECK_THROWS_WITH_AS(evo::parallel_evaluate(1, [](std::size_t) {}, -1), doctest::Contains("thread count must be >= 0"),
                         Error);
}
