// µ2Net (evo/mu2net.hpp): adjacent-only mutation, bit-identical parents after a
// child trains, no gradient into shared components, routes isolated from other
// tasks' components, selection, save/load, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <polymath/evo/mu2net.hpp>
#include <polymath/nn.hpp>
#include <polymath/optim.hpp>
#include <polymath/polymath.hpp>

using namespace polymath;
namespace mu = polymath::evo::mu2net;
using polymath::evo::IndexGenome;

namespace {

using Lin = nn::Linear<float>;

// Raw bytes of every parameter of a module, to compare bit for bit.
std::vector<std::vector<unsigned char>> bytes_of(const Lin& m) {
    std::vector<std::vector<unsigned char>> out;
    for (const auto& p : m.named_parameters()) {
        Tensor<float> t = p.var.value().contiguous();
        std::vector<unsigned char> b(std::size_t(t.numel()) * sizeof(float));
        std::memcpy(b.data(), t.data(), b.size());
        out.push_back(std::move(b));
    }
    return out;
}

// Kind strings "lin:<in>:<out>" rebuild the components on load.
Lin make_lin(const std::string& kind) {
    int in = 0, out = 0;
    REQUIRE(std::sscanf(kind.c_str(), "lin:%d:%d", &in, &out) == 2);
    Generator g(99);
    return Lin(in, out, {}, g);
}

// A 3-layer root route 4 -> 8 -> 8 -> 3 owned by task "a".
mu::System<Lin> make_system(Generator& gen) {
    mu::HparamSpace space = {{"lr", {1e-3, 3e-3, 1e-2, 3e-2}}, {"clone:0", {0, 1}}, {"clone:1", {0, 1}}};
    mu::System<Lin> sys(space);
    mu::Route r;
    r.push_back(sys.pool().add(Lin(4, 8, {}, gen), "a", "lin:4:8"));
    r.push_back(sys.pool().add(Lin(8, 8, {}, gen), "a", "lin:8:8"));
    r.push_back(sys.pool().add(Lin(8, 3, {}, gen), "a", "lin:8:3"));
    sys.set_task("a", {r, mu::hparams_from_values(space, {{"lr", 1e-2}}), 0.5, 0.5, ""});
    return sys;
}

auto relu_step = [](Lin& l, const Var<float>& x, std::size_t pos) {
    Var<float> y = l(x);
    return pos + 1 < 3 ? relu(y) : y;
};

// A few SGD steps of the child's trainable parameters on a fixed regression.
void train_child(mu::System<Lin>& sys, const mu::Child& c, Generator& gen, int steps = 5) {
    std::vector<nn::NamedParameter<float>> params;
    for (auto id : c.cloned)
        for (auto& p : sys.pool().at(id).named_parameters(true)) params.push_back({std::to_string(id) + "." + p.name, p.var});
    REQUIRE(!params.empty());
    optim::SGD<float> opt(params, {.lr = 0.1});
    Tensor<float> x = randn<float>({16, 4}, gen), y = randn<float>({16, 3}, gen);
    for (int s = 0; s < steps; ++s) {
        Var<float> out = sys.pool().forward(c.route, Var<float>(x), relu_step);
        Var<float> d = out - Var<float>(y);
        Var<float> loss = mean(d * d);
        opt.zero_grad();
        loss.backward();
        opt.step();
    }
}

}  // namespace

TEST_CASE("mu2net: mutation only ever moves a hyper-parameter to an adjacent value") {
    // Exhaustive over list sizes 1..6 and every starting index, many draws each:
    // a gene changes by exactly one step or not at all; at rate 1 it always
    // changes (lists of >= 2 values), and both neighbours of an inner value occur.
    Generator gen(7);
    for (std::size_t n = 1; n <= 6; ++n) {
        std::vector<double> values;
        for (std::size_t k = 0; k < n; ++k) values.push_back(double(k) * 10 + 1);
        const mu::HparamSpace space = {{"h", values}};
        for (std::int64_t start = 0; start < std::int64_t(n); ++start) {
            bool saw_up = false, saw_down = false;
            for (int rep = 0; rep < 200; ++rep) {
                IndexGenome g{start};
                const std::size_t changed = mu::mutate_hparams(space, g, 1.0, gen);
                REQUIRE(g[0] >= 0);
                REQUIRE(g[0] < std::int64_t(n));
                if (n == 1) {
                    CHECK(changed == 0);
                    CHECK(g[0] == start);
                    continue;
                }
                CHECK(changed == 1);
                CHECK(std::abs(g[0] - start) == 1);
                saw_up |= g[0] == start + 1;
                saw_down |= g[0] == start - 1;
                // The value itself is the list's neighbour.
                CHECK(std::abs(mu::hparam_values(space, g).at("h") - values[std::size_t(start)]) == doctest::Approx(10));
            }
            if (n >= 2) {
                CHECK(saw_up == (start + 1 < std::int64_t(n)));
                CHECK(saw_down == (start > 0));
            }
        }
    }
    // At rate 0.3 over many genes: never more than one step, and about 30% change.
    mu::HparamSpace space;
    for (int i = 0; i < 50; ++i) space.push_back({"g" + std::to_string(i), {1, 2, 3, 4, 5}});
    std::size_t total = 0, draws = 0;
    for (int rep = 0; rep < 100; ++rep) {
        IndexGenome g(50, 2), before = g;
        total += mu::mutate_hparams(space, g, 0.3, gen);
        draws += 50;
        for (std::size_t i = 0; i < g.size(); ++i) CHECK(std::abs(g[i] - before[i]) <= 1);
    }
    CHECK(double(total) / double(draws) == doctest::Approx(0.3).epsilon(0.1));
}

TEST_CASE("mu2net: cloning leaves the parent bit-identical after the child trains; shared parts get no gradient") {
    Generator gen(1);
    mu::System<Lin> sys = make_system(gen);
    const mu::Route parent = sys.route("a");
    std::vector<std::vector<std::vector<unsigned char>>> before;
    for (auto id : parent) before.push_back(bytes_of(sys.pool().at(id)));

    mu::Child c = mu::spawn_child(sys.pool(), parent, {0, 1, 1}, "b");
    REQUIRE(c.cloned.size() == 2);
    CHECK(c.route[0] == parent[0]);  // shared
    CHECK(c.route[1] != parent[1]);
    CHECK(c.route[2] != parent[2]);
    CHECK(c.params_added == 8 * 8 + 8 + 8 * 3 + 3);
    // The clones start equal to the parent's layers (deep copies, not handles).
    CHECK(bytes_of(sys.pool().at(c.route[1])) == before[1]);
    CHECK(sys.pool().entry(c.route[1]).owner == "b");
    CHECK(!sys.pool().entry(c.route[1]).frozen);
    CHECK(sys.pool().entry(parent[0]).frozen);

    train_child(sys, c, gen);
    // The child really moved, the parent did not move by a single bit.
    CHECK(bytes_of(sys.pool().at(c.route[1])) != before[1]);
    for (std::size_t i = 0; i < parent.size(); ++i) CHECK(bytes_of(sys.pool().at(parent[i])) == before[i]);
    // The shared (frozen) component received no gradient at all.
    for (const auto& p : sys.pool().at(parent[0]).named_parameters()) {
        CHECK(!p.var.requires_grad());
        CHECK(!p.var.grad().defined());
    }
    // The child's cloned components did.
    for (const auto& p : sys.pool().at(c.route[1]).named_parameters()) CHECK(p.var.grad().defined());
}

TEST_CASE("mu2net: a task's forward never reads another task's cloned components") {
    Generator gen(2);
    mu::System<Lin> sys = make_system(gen);
    mu::Child c = mu::spawn_child(sys.pool(), sys.route("a"), {0, 1, 1}, "b");
    c.hparams = sys.task("a").hparams;
    train_child(sys, c, gen, 2);
    sys.accept(c, "a");
    REQUIRE(sys.tasks().size() == 2);

    Tensor<float> x = randn<float>({5, 4}, gen);
    auto run = [&](const std::string& t) {
        NoGradGuard ng;
        return sys.forward(t, Var<float>(x), relu_step).value().contiguous();
    };
    const Tensor<float> ya = run("a");
    // Poison task b's own components with NaN.
    for (auto id : sys.route("b"))
        if (sys.pool().entry(id).owner == "b")
            for (auto& p : sys.pool().at(id).named_parameters()) {
                        Tensor<float> w = p.var.value();  // shares the storage
                        w.fill_(std::nanf(""));
                    }
    sys.pool().reset_uses();
    const Tensor<float> ya2 = run("a");
    for (std::int64_t i = 0; i < ya2.numel(); ++i) {
        CHECK(std::isfinite(ya2.data()[i]));
        CHECK(std::memcmp(&ya.data()[i], &ya2.data()[i], sizeof(float)) == 0);
    }
    // Only a's route was visited: the parameters touched are its active parameters.
    for (auto id : sys.route("b"))
        if (sys.pool().entry(id).owner == "b") CHECK(sys.pool().uses(id) == 0);
    CHECK(sys.pool().touched_parameters() == sys.active_parameters("a"));
    CHECK(sys.active_parameters("a") == 4 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3);
    // b reads its poisoned layers (and a's shared stem).
    const Tensor<float> yb = run("b");
    CHECK(std::isnan(yb.data()[0]));
    CHECK(sys.params_added("b") == 8 * 8 + 8 + 8 * 3 + 3);
    CHECK(sys.params_added("a") == sys.active_parameters("a"));
    CHECK(sys.total_parameters() == sys.params_added("a") + sys.params_added("b"));
}

TEST_CASE("mu2net: scoring and selection keep the better child") {
    CHECK(mu::mu2net_score(0.8, 0, 100, 0.9) == doctest::Approx(0.8));
    CHECK(mu::mu2net_score(0.8, 100, 100, 0.9) == doctest::Approx(0.72));
    CHECK(mu::mu2net_score(0.8, 50, 100, 0.81) == doctest::Approx(0.72));
    std::vector<mu::Child> kids(3);
    kids[0].score = 0.5;
    kids[1].score = 0.7;
    kids[2].score = std::nan("");
    CHECK(mu::select_best(kids) == 1);
    kids[1].score = 0.5;
    CHECK(mu::select_best(kids) == 0);  // first on ties

    // evolve_task: children that score higher by construction win, the
    // losers' components are removed, the winner is frozen and routed.
    Generator gen(3);
    mu::System<Lin> sys = make_system(gen);
    const std::int64_t root = sys.active_parameters("a");
    mu::EvolveOptions o;
    o.generations = 3;
    o.children = 3;
    o.mutation_rate = 0.5;
    o.size_factor = 0.9;
    o.reference_params = root;
    int calls = 0;
    std::vector<double> qualities = {0.2, 0.6, 0.4, 0.3, 0.5, 0.1, 0.9, 0.8, 0.7};
    auto logs = mu::evolve_task(sys, "b", "a", o, gen, [&](mu::System<Lin>&, const mu::Child&, const std::map<std::string, double>& h) {
        CHECK(h.count("lr") == 1);
        return qualities[std::size_t(calls++)];
    });
    CHECK(calls == 9);
    REQUIRE(logs.size() == 3);
    CHECK(logs[0].improved);  // first generation of a new task: the best child is kept
    const auto& c0 = logs[0].children;
    const std::int64_t b0 = mu::select_best(c0);
    CHECK(b0 >= 0);
    // Scores follow the formula.
    for (const auto& c : c0) CHECK(c.score == doctest::Approx(mu::mu2net_score(c.quality, c.params_added, root, 0.9)));
    // The final route is the best-scoring child of all generations that improved.
    double best = -1;
    for (const auto& l : logs)
        for (const auto& c : l.children) best = std::max(best, c.score);
    CHECK(sys.task("b").score == doctest::Approx(best));
    // Only live components remain: a's route + b's owned ones.
    std::set<mu::ComponentId> live(sys.route("a").begin(), sys.route("a").end());
    live.insert(sys.route("b").begin(), sys.route("b").end());
    CHECK(sys.pool().size() == live.size());
    for (auto id : sys.route("b")) CHECK(sys.pool().entry(id).frozen);
    // The head (last position) is always b's own.
    CHECK(sys.pool().entry(sys.route("b").back()).owner == "b");
}

TEST_CASE("mu2net: save/load round trip is exact") {
    Generator gen(4);
    mu::System<Lin> sys = make_system(gen);
    mu::Child c = mu::spawn_child(sys.pool(), sys.route("a"), {0, 1, 1}, "b");
    c.hparams = {2, 0, 1};
    c.quality = 0.1 + 0.2;  // not exactly representable in decimal
    c.score = 1.0 / 3.0;
    train_child(sys, c, gen, 2);
    sys.accept(c, "a");
    const auto path = (std::filesystem::temp_directory_path() / "polymath_mu2net_test.safetensors").string();
    sys.save(path);
    mu::System<Lin> back = mu::System<Lin>::load(path, make_lin);
    CHECK(back.tasks() == sys.tasks());
    for (const auto& t : sys.tasks()) {
        CHECK(back.route(t) == sys.route(t));
        CHECK(back.task(t).hparams == sys.task(t).hparams);
        CHECK(back.task(t).quality == sys.task(t).quality);
        CHECK(back.task(t).score == sys.task(t).score);
        CHECK(back.task(t).parent == sys.task(t).parent);
        CHECK(back.params_added(t) == sys.params_added(t));
    }
    CHECK(back.pool().ids() == sys.pool().ids());
    CHECK(back.pool().next_id() == sys.pool().next_id());
    for (auto id : sys.pool().ids()) {
        CHECK(bytes_of(back.pool().at(id)) == bytes_of(sys.pool().at(id)));
        CHECK(back.pool().entry(id).owner == sys.pool().entry(id).owner);
        CHECK(back.pool().entry(id).frozen == sys.pool().entry(id).frozen);
    }
    CHECK(back.to_json() == sys.to_json());
    Tensor<float> x = randn<float>({3, 4}, gen);
    NoGradGuard ng;
    const Tensor<float> y1 = sys.forward("b", Var<float>(x), relu_step).value().contiguous();
    const Tensor<float> y2 = back.forward("b", Var<float>(x), relu_step).value().contiguous();
    CHECK(std::memcmp(y1.data(), y2.data(), std::size_t(y1.numel()) * sizeof(float)) == 0);
    std::filesystem::remove(path);
}

TEST_CASE("mu2net: errors") {
    Generator gen(5);
    mu::System<Lin> sys = make_system(gen);
    // Unknown task.
    CHECK_THROWS_WITH_AS(sys.route("zzz"), doctest::Contains("unknown task 'zzz'"), Error);
    CHECK_THROWS_AS(sys.params_added("zzz"), Error);
    mu::EvolveOptions o;
    o.reference_params = 10;
    CHECK_THROWS_WITH_AS(mu::evolve_task(sys, "new", "nope", o, gen,
                                         [](mu::System<Lin>&, const mu::Child&, const std::map<std::string, double>&) {
                                             return 0.0;
                                         }),
                         doctest::Contains("unknown task 'nope'"), Error);
    // A route referencing a missing component.
    mu::Route bad = sys.route("a");
    bad[1] = 12345;
    CHECK_THROWS_WITH_AS(sys.set_task("c", {bad, sys.task("a").hparams, 0, 0, ""}),
                         doctest::Contains("component 12345"), Error);
    CHECK_THROWS_AS(sys.active_parameters(bad), Error);
    CHECK_THROWS_AS(mu::spawn_child(sys.pool(), bad, {0, 0, 1}, "c"), Error);
    Tensor<float> x = randn<float>({2, 4}, gen);
    CHECK_THROWS_AS(sys.pool().forward(bad, Var<float>(x), relu_step), Error);
    // Mask of the wrong length.
    CHECK_THROWS_AS(mu::spawn_child(sys.pool(), sys.route("a"), {1, 1}, "c"), Error);
    // Empty hyper-parameter list.
    mu::HparamSpace empty = {{"lr", {1e-3}}, {"dropout", {}}};
    IndexGenome g{0, 0};
    CHECK_THROWS_WITH_AS(mu::mutate_hparams(empty, g, 0.5, gen), doctest::Contains("'dropout' has an empty value list"),
                         Error);
    CHECK_THROWS_AS(mu::System<Lin>{empty}, Error);
    // A genome index outside its list.
    IndexGenome out{0, 7, 0};
    CHECK_THROWS_AS(mu::mutate_hparams(sys.space(), out, 0.5, gen), Error);
    // Scoring arguments.
    CHECK_THROWS_AS(mu::mu2net_score(0.5, 1, 0, 0.9), Error);
    CHECK_THROWS_AS(mu::mu2net_score(0.5, 1, 10, 1.5), Error);
    // Loading something that is not a µ2Net system, and a missing file.
    const auto path = (std::filesystem::temp_directory_path() / "polymath_mu2net_bad.safetensors").string();
    io::SafetensorsFile f;
    io::put(f, "w", Tensor<float>{1, 2});
    io::save_safetensors(path, f);
    CHECK_THROWS_WITH_AS(mu::System<Lin>::load(path, make_lin), doctest::Contains("no 'mu2net' metadata"), Error);
    CHECK_THROWS_AS(mu::System<Lin>::load(path + ".missing", make_lin), Error);
    // A saved system with a stray tensor, and one whose route lost a component.
    sys.save(path);
    io::SafetensorsFile saved = io::load_safetensors(path);
    io::SafetensorsFile stray = saved;
    io::put(stray, "cq.weight", Tensor<float>{1});
    io::save_safetensors(path, stray);
    CHECK_THROWS_WITH_AS(mu::System<Lin>::load(path, make_lin), doctest::Contains("malformed tensor name"), Error);
    io::SafetensorsFile lost = saved;
    auto meta = nlohmann::json::parse(lost.metadata.at("mu2net"));
    meta["components"].erase(meta["components"].begin() + 1);
    lost.metadata["mu2net"] = meta.dump();
    std::vector<io::TensorEntry> kept;
    for (auto& e : lost.tensors)
        if (e.name.rfind("c1.", 0) != 0) kept.push_back(e);
    lost.tensors = kept;
    io::save_safetensors(path, lost);
    CHECK_THROWS_WITH_AS(mu::System<Lin>::load(path, make_lin), doctest::Contains("component 1"), Error);
    std::filesystem::remove(path);
}
