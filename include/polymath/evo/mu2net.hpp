// polymath/evo/mu2net.hpp — µ2Net (Gesmundo & Dean 2022, arXiv 2205.12755) at
// this library's scale: a multi-task system that grows by cloning layers of a
// frozen parent.
//
// The pieces:
//
//   ComponentPool<C>   the layers of the system ("components"), each with an id,
//                      the task that owns it (the task whose child created it),
//                      a frozen flag, a `kind` string (what a loader needs to
//                      rebuild it) and its parameter count. C is any polymath
//                      module (nn::Module: clone(), freeze(), state_dict()).
//   Route              the ordered component ids a task's forward goes through
//                      (stem, blocks..., head). Inference for a task runs only
//                      its route: pool.forward(route, x, step) visits exactly
//                      those components (and counts the visits: uses(id)).
//   HparamSpace        hyper-parameters as ordered value lists (evo's
//                      AdjacentChoice<double>); a model's hyper-parameters are
//                      an IndexGenome into them, and mutate_hparams moves each
//                      gene, with probability `rate`, to an ADJACENT value
//                      (evo::adjacent_mutation).
//   spawn_child        the child of a parent route: the components whose bit in
//                      clone_mask is 1 are deep-copied (Module::clone()) into
//                      new, trainable components owned by the child's task; the
//                      others stay shared and frozen. The parent's parameters
//                      are never written (its components are frozen, and the
//                      child trains only its own copies).
//   System<C>          the pool + one Route, hyper-parameters, quality and score
//                      per task; params_added(task), active_parameters(route),
//                      prune(), save()/load() (one safetensors file, atomic: the
//                      components as tensors "c<id>.<parameter>", the routes,
//                      hyper-parameters and scores as JSON in the metadata under
//                      "mu2net"; doubles as exact bit patterns).
//   evolve_task        the µ2Net loop for one task: generations of children of
//                      the task's best route (or, for a new task, of a given
//                      parent task's route); each child mutates the parent's
//                      hyper-parameters, clones the layers its hyper-parameters
//                      say, is trained and scored by the caller's function, and
//                      the best child of a generation replaces the task's route
//                      when its score beats the best so far.
//
// Scoring. The paper scores a model by its validation quality with a factor
// that penalises the parameters it adds, so that the system grows only where
// that pays. Here:
//
//     score = quality * size_factor ^ (params_added / reference_params)
//
// params_added = parameters of the components the child cloned (its task owns
// them), reference_params = the parameters of one full route (the root model);
// size_factor in (0, 1] (1 = no penalty). With size_factor 0.9, cloning a whole
// route costs 10% of the quality; cloning only a head of 330 of 6,218
// parameters (examples/mu2net_grow) costs 0.6%. The form and the constant are
// ours (see docs/results/mu2net.md).
//
// Cloning genes. A hyper-parameter named "clone:<position>" with values {0, 1}
// decides whether the child clones the component at that position of the
// parent route (1) or shares it frozen (0). Positions without such a gene are
// cloned iff they are listed in EvolveOptions::always_clone (default: the last
// position, the head: a task's classifier is always its own).
//
// Determinism: every random draw goes through one polymath::Generator (evo::Rng)
// on the calling thread; training is the caller's and is deterministic when the
// caller's is.
//
// What this does not do (the paper does): parents for a new task are not
// sampled among all tasks' models by their score on the new task — the caller
// names the parent task; there is one active model per task (the paper keeps a
// small population); no data-augmentation or image-size genes unless the
// caller adds them.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "polymath/core/error.hpp"
#include "polymath/evo/checkpoint.hpp"
#include "polymath/evo/genome.hpp"
#include "polymath/evo/mutation.hpp"
#include "polymath/evo/rng.hpp"
#include "polymath/io/safetensors.hpp"

namespace polymath::evo::mu2net {

using ComponentId = std::int64_t;
using Route = std::vector<ComponentId>;
using HparamSpace = std::vector<AdjacentChoice<double>>;

// ---- hyper-parameters --------------------------------------------------------

// Every list must be non-empty and the names unique.
inline void check_space(const HparamSpace& space, const char* op) {
    std::set<std::string> names;
    for (const auto& c : space) {
        POLYMATH_CHECK(!c.values.empty(), op, "hyper-parameter '", c.name, "' has an empty value list");
        POLYMATH_CHECK(names.insert(c.name).second, op, "hyper-parameter '", c.name, "' is listed twice");
    }
}

inline void check_genome(const HparamSpace& space, const IndexGenome& g, const char* op) {
    check_space(space, op);
    POLYMATH_CHECK(g.size() == space.size(), op, "hyper-parameter genome has ", g.size(), " genes but the space has ",
                   space.size());
    for (std::size_t i = 0; i < g.size(); ++i)
        POLYMATH_CHECK(g[i] >= 0 && std::size_t(g[i]) < space[i].size(), op, "hyper-parameter '", space[i].name,
                       "': index ", g[i], " outside its list of ", space[i].size(), " values");
}

// The index of the hyper-parameter called `name`, or -1.
inline std::int64_t find_hparam(const HparamSpace& space, const std::string& name) {
    for (std::size_t i = 0; i < space.size(); ++i)
        if (space[i].name == name) return std::int64_t(i);
    return -1;
}

// The genome that picks, for each hyper-parameter, the value closest to
// defaults[name] (the first value when the name is not in `defaults`).
inline IndexGenome hparams_from_values(const HparamSpace& space, const std::map<std::string, double>& defaults) {
    check_space(space, "mu2net::hparams_from_values");
    for (const auto& [n, v] : defaults)
        POLYMATH_CHECK(find_hparam(space, n) >= 0, "mu2net::hparams_from_values", "unknown hyper-parameter '", n,
                       "'");
    IndexGenome g(space.size(), 0);
    for (std::size_t i = 0; i < space.size(); ++i) {
        const auto it = defaults.find(space[i].name);
        if (it == defaults.end()) continue;
        double best = std::numeric_limits<double>::infinity();
        for (std::size_t k = 0; k < space[i].size(); ++k) {
            const double d = std::abs(space[i].values[k] - it->second);
            if (d < best) {
                best = d;
                g[i] = std::int64_t(k);
            }
        }
    }
    return g;
}

// name -> value of a genome.
inline std::map<std::string, double> hparam_values(const HparamSpace& space, const IndexGenome& g) {
    check_genome(space, g, "mu2net::hparam_values");
    std::map<std::string, double> out;
    for (std::size_t i = 0; i < space.size(); ++i) out[space[i].name] = space[i].at(g[i]);
    return out;
}

// Moves each gene, with probability `rate`, to an adjacent value of its list
// (never further than one step; a list of one value never changes). Returns
// how many genes changed.
inline std::size_t mutate_hparams(const HparamSpace& space, IndexGenome& g, double rate, Rng& rng) {
    check_genome(space, g, "mu2net::mutate_hparams");
    return adjacent_mutation(g, choice_sizes(space), rate, rng);
}
inline std::size_t mutate_hparams(const HparamSpace& space, IndexGenome& g, double rate, Generator& gen) {
    Rng rng(gen);
    return mutate_hparams(space, g, rate, rng);
}

// ---- the pool ---------------------------------------------------------------

template <class C>
struct ComponentEntry {
    ComponentId id = -1;
    std::string owner;  // the task whose child created it
    std::string kind;   // what a loader needs to rebuild it (the caller's vocabulary)
    bool frozen = false;
    C module;
    std::int64_t parameters = 0;
    std::int64_t uses = 0;  // forward() visits since reset_uses()
};

template <class C>
class ComponentPool {
public:
    // Adds a component (trainable unless `frozen`); returns its id.
    ComponentId add(C module, std::string owner, std::string kind, bool frozen = false) {
        const ComponentId id = next_id_++;
        insert(id, std::move(module), std::move(owner), std::move(kind), frozen);
        return id;
    }

    bool contains(ComponentId id) const { return entries_.count(id) != 0; }
    std::size_t size() const noexcept { return entries_.size(); }
    ComponentId next_id() const noexcept { return next_id_; }

    ComponentEntry<C>& entry(ComponentId id) {
        auto it = entries_.find(id);
        POLYMATH_CHECK(it != entries_.end(), "mu2net::ComponentPool", "no component with id ", id);
        return it->second;
    }
    const ComponentEntry<C>& entry(ComponentId id) const { return const_cast<ComponentPool*>(this)->entry(id); }
    C& at(ComponentId id) { return entry(id).module; }
    const C& at(ComponentId id) const { return entry(id).module; }

    std::vector<ComponentId> ids() const {
        std::vector<ComponentId> out;
        for (const auto& [id, e] : entries_) out.push_back(id);
        return out;
    }

    // Freezes (no gradient, never trained again) or unfreezes a component.
    void set_frozen(ComponentId id, bool frozen) {
        auto& e = entry(id);
        e.frozen = frozen;
        e.module.set_requires_grad(!frozen);
    }

    // A deep copy of component `id` (Module::clone(): fresh parameters with the
    // same values), trainable, owned by `owner`; the original is not touched.
    ComponentId clone_component(ComponentId id, const std::string& owner) {
        const auto& src = entry(id);
        C copy = src.module.clone();
        return add(std::move(copy), owner, src.kind, /*frozen=*/false);
    }

    void remove(ComponentId id) {
        POLYMATH_CHECK(entries_.erase(id) == 1, "mu2net::ComponentPool::remove", "no component with id ", id);
    }

    std::int64_t parameters(ComponentId id) const { return entry(id).parameters; }
    std::int64_t total_parameters() const {
        std::int64_t n = 0;
        for (const auto& [id, e] : entries_) n += e.parameters;
        return n;
    }
    // Parameters a route activates: each distinct component counted once.
    std::int64_t active_parameters(const Route& route) const {
        check_route(route, "mu2net::active_parameters");
        std::set<ComponentId> seen(route.begin(), route.end());
        std::int64_t n = 0;
        for (ComponentId id : seen) n += entry(id).parameters;
        return n;
    }

    void check_route(const Route& route, const char* op) const {
        POLYMATH_CHECK(!route.empty(), op, "the route is empty");
        for (std::size_t i = 0; i < route.size(); ++i)
            POLYMATH_CHECK(contains(route[i]), op, "route position ", i, " references component ", route[i],
                           ", which is not in the pool");
    }

    // Runs x through the route: x = step(component, x, position) for each
    // position in order; only the route's components are visited (and each
    // visit is counted, see uses()).
    template <class X, class Step>
    X forward(const Route& route, X x, Step&& step) {
        check_route(route, "mu2net::ComponentPool::forward");
        for (std::size_t i = 0; i < route.size(); ++i) {
            auto& e = entry(route[i]);
            ++e.uses;
            x = step(e.module, x, i);
        }
        return x;
    }
    // step = the component's operator().
    template <class X>
    X forward(const Route& route, X x) {
        return forward(route, std::move(x), [](C& c, const X& in, std::size_t) { return c(in); });
    }

    std::int64_t uses(ComponentId id) const { return entry(id).uses; }
    void reset_uses() {
        for (auto& [id, e] : entries_) e.uses = 0;
    }
    // The parameters of every component visited since reset_uses().
    std::int64_t touched_parameters() const {
        std::int64_t n = 0;
        for (const auto& [id, e] : entries_)
            if (e.uses > 0) n += e.parameters;
        return n;
    }

    // (for load) puts a component under a given id.
    void insert(ComponentId id, C module, std::string owner, std::string kind, bool frozen) {
        POLYMATH_CHECK(id >= 0 && !contains(id), "mu2net::ComponentPool", "component id ", id,
                       id < 0 ? " is negative" : " is already used");
        ComponentEntry<C> e;
        e.id = id;
        e.owner = std::move(owner);
        e.kind = std::move(kind);
        e.frozen = frozen;
        e.module = std::move(module);
        e.module.set_requires_grad(!frozen);
        e.parameters = e.module.num_parameters();
        entries_.emplace(id, std::move(e));
        next_id_ = std::max(next_id_, id + 1);
    }
    void set_next_id(ComponentId n) { next_id_ = std::max(next_id_, n); }

private:
    std::map<ComponentId, ComponentEntry<C>> entries_;
    ComponentId next_id_ = 0;
};

// ---- children ---------------------------------------------------------------

struct Child {
    std::string task;
    Route route;                     // the child's route (parent's, cloned positions replaced)
    std::vector<ComponentId> cloned;  // the new components, in route order
    BitGenome clone_mask;            // 1 = cloned at that position
    IndexGenome hparams;
    double quality = 0, score = 0;
    std::int64_t params_added = 0;
};

// The child of `parent_route` for `task`: position i is deep-copied into a new,
// trainable component owned by `task` when clone_mask[i] == 1; every other
// position keeps the parent's component, which is frozen (the parent's
// parameters are never written). A component listed twice in the route is
// cloned once.
template <class C>
Child spawn_child(ComponentPool<C>& pool, const Route& parent_route, const BitGenome& clone_mask,
                  const std::string& task) {
    const char* op = "mu2net::spawn_child";
    pool.check_route(parent_route, op);
    POLYMATH_CHECK(!task.empty(), op, "the task name is empty");
    POLYMATH_CHECK(clone_mask.size() == parent_route.size(), op, "clone mask has ", clone_mask.size(),
                   " bits but the parent route has ", parent_route.size(), " positions");
    Child child;
    child.task = task;
    child.clone_mask = clone_mask;
    child.route = parent_route;
    std::map<ComponentId, ComponentId> copies;
    for (std::size_t i = 0; i < parent_route.size(); ++i) {
        POLYMATH_CHECK(clone_mask[i] <= 1, op, "clone mask bit ", i, " is ", int(clone_mask[i]), ", not 0 or 1");
        const ComponentId src = parent_route[i];
        if (!clone_mask[i]) {
            pool.set_frozen(src, true);
            continue;
        }
        auto it = copies.find(src);
        if (it == copies.end()) {
            it = copies.emplace(src, pool.clone_component(src, task)).first;
            child.cloned.push_back(it->second);
            child.params_added += pool.parameters(it->second);
        }
        child.route[i] = it->second;
    }
    // A component both cloned and shared at different positions stays frozen
    // where shared; the loop above froze it.
    return child;
}

// The child's clone mask from its hyper-parameters ("clone:<position>" genes,
// see the file comment) and the always-cloned positions.
inline BitGenome clone_mask_from_hparams(const HparamSpace& space, const IndexGenome& g, std::size_t route_size,
                                         const std::vector<std::size_t>& always_clone) {
    check_genome(space, g, "mu2net::clone_mask_from_hparams");
    BitGenome mask(route_size, 0);
    for (std::size_t p : always_clone) {
        POLYMATH_CHECK(p < route_size, "mu2net::clone_mask_from_hparams", "always-cloned position ", p,
                       " is outside a route of ", route_size);
        mask[p] = 1;
    }
    for (std::size_t i = 0; i < space.size(); ++i) {
        const std::string& n = space[i].name;
        if (n.rfind("clone:", 0) != 0) continue;
        std::size_t pos = 0;
        try {
            pos = std::stoul(n.substr(6));
        } catch (...) {
            POLYMATH_THROW("mu2net::clone_mask_from_hparams", "hyper-parameter '", n,
                           "' should be clone:<route position>");
        }
        POLYMATH_CHECK(pos < route_size, "mu2net::clone_mask_from_hparams", "hyper-parameter '", n,
                       "' names a position outside a route of ", route_size);
        if (space[i].at(g[i]) != 0.0) mask[pos] = 1;
    }
    return mask;
}

// quality * size_factor ^ (params_added / reference_params) (see the file comment).
inline double mu2net_score(double quality, std::int64_t params_added, std::int64_t reference_params,
                           double size_factor) {
    POLYMATH_CHECK(reference_params > 0, "mu2net::score", "reference parameter count must be positive, got ",
                   reference_params);
    POLYMATH_CHECK(size_factor > 0 && size_factor <= 1, "mu2net::score", "size factor must be in (0, 1], got ",
                   size_factor);
    POLYMATH_CHECK(params_added >= 0, "mu2net::score", "parameters added must be >= 0, got ", params_added);
    return quality * std::pow(size_factor, double(params_added) / double(reference_params));
}

// The index of the best child by score (the first on ties); -1 when none has a
// finite score.
inline std::int64_t select_best(const std::vector<Child>& children) {
    std::int64_t best = -1;
    for (std::size_t i = 0; i < children.size(); ++i)
        if (std::isfinite(children[i].score) && (best < 0 || children[i].score > children[std::size_t(best)].score))
            best = std::int64_t(i);
    return best;
}

// ---- the system -------------------------------------------------------------

struct TaskState {
    Route route;
    IndexGenome hparams;
    double quality = 0, score = -std::numeric_limits<double>::infinity();
    std::string parent;  // the task whose route the accepted model descended from
};

template <class C>
class System {
public:
    System() = default;
    explicit System(HparamSpace space) : space_(std::move(space)) { check_space(space_, "mu2net::System"); }

    ComponentPool<C>& pool() noexcept { return pool_; }
    const ComponentPool<C>& pool() const noexcept { return pool_; }
    const HparamSpace& space() const noexcept { return space_; }
    // Tasks in the order they were introduced.
    const std::vector<std::string>& tasks() const noexcept { return order_; }
    bool has_task(const std::string& t) const { return tasks_.count(t) != 0; }

    const TaskState& task(const std::string& t) const {
        auto it = tasks_.find(t);
        POLYMATH_CHECK(it != tasks_.end(), "mu2net::System", "unknown task '", t, "'", known());
        return it->second;
    }
    const Route& route(const std::string& t) const { return task(t).route; }

    // Sets (or replaces) a task's model. The route must reference components in
    // the pool; the task's components in it are frozen from now on.
    void set_task(const std::string& t, TaskState s) {
        POLYMATH_CHECK(!t.empty(), "mu2net::System::set_task", "the task name is empty");
        pool_.check_route(s.route, "mu2net::System::set_task");
        check_genome(space_, s.hparams, "mu2net::System::set_task");
        for (ComponentId id : s.route) pool_.set_frozen(id, true);
        if (!has_task(t)) order_.push_back(t);
        tasks_[t] = std::move(s);
    }

    // Makes the child the task's model (its components frozen), then removes
    // the components no route references any more.
    void accept(const Child& c, const std::string& parent_task) {
        set_task(c.task, TaskState{c.route, c.hparams, c.quality, c.score, parent_task});
        prune();
    }
    // Removes a rejected child's components.
    void discard(const Child& c) {
        for (ComponentId id : c.cloned)
            if (pool_.contains(id)) pool_.remove(id);
    }

    // Removes every component that no task's route references.
    std::size_t prune() {
        std::set<ComponentId> live;
        for (const auto& [t, s] : tasks_) live.insert(s.route.begin(), s.route.end());
        std::size_t n = 0;
        for (ComponentId id : pool_.ids())
            if (!live.count(id)) pool_.remove(id), ++n;
        return n;
    }

    // Parameters of the components owned by task t (what the task added to the system).
    std::int64_t params_added(const std::string& t) const {
        (void)task(t);
        std::int64_t n = 0;
        for (ComponentId id : pool_.ids())
            if (pool_.entry(id).owner == t) n += pool_.parameters(id);
        return n;
    }
    std::int64_t active_parameters(const Route& r) const { return pool_.active_parameters(r); }
    std::int64_t active_parameters(const std::string& t) const { return pool_.active_parameters(route(t)); }
    std::int64_t total_parameters() const { return pool_.total_parameters(); }

    // Inference for task t: only its route runs.
    template <class X, class Step>
    X forward(const std::string& t, X x, Step&& step) {
        return pool_.forward(route(t), std::move(x), std::forward<Step>(step));
    }

    // ---- save / load ----

    // Routes, hyper-parameters and scores as JSON (also what save() stores).
    nlohmann::json to_json() const {
        nlohmann::json j;
        j["format"] = "polymath.mu2net";
        j["version"] = 1;
        j["next_id"] = pool_.next_id();
        j["space"] = nlohmann::json::array();
        for (const auto& c : space_) j["space"].push_back({{"name", c.name}, {"values", doubles_to_json(c.values)}});
        j["tasks"] = nlohmann::json::array();
        for (const auto& t : order_) {
            const auto& s = tasks_.at(t);
            nlohmann::json hv = nlohmann::json::object();
            for (const auto& [n, v] : hparam_values(space_, s.hparams)) hv[n] = v;
            j["tasks"].push_back({{"name", t},
                                  {"route", s.route},
                                  {"hparams", s.hparams},
                                  {"hparam_values", hv},
                                  {"quality", double_bits(s.quality)},
                                  {"score", double_bits(s.score)},
                                  {"quality_readable", s.quality},
                                  {"parent", s.parent}});
        }
        j["components"] = nlohmann::json::array();
        for (ComponentId id : pool_.ids()) {
            const auto& e = pool_.entry(id);
            j["components"].push_back({{"id", id},
                                       {"owner", e.owner},
                                       {"kind", e.kind},
                                       {"frozen", e.frozen},
                                       {"parameters", e.parameters}});
        }
        return j;
    }

    // One safetensors file, written atomically (temporary + fsync + rename).
    void save(const std::string& path) const {
        io::SafetensorsFile f;
        for (ComponentId id : pool_.ids())
            for (const auto& [n, t] : pool_.at(id).state_dict()) io::put(f, "c" + std::to_string(id) + "." + n, t);
        f.metadata["mu2net"] = to_json().dump();
        io::save_safetensors(path, f);
    }

    // Rebuilds a system saved by save(): make(kind) must return a component of
    // that kind (any values; they are overwritten). Throws, changing nothing
    // the caller holds, on any inconsistency.
    template <class Make>
    static System load(const std::string& path, Make&& make) {
        const char* op = "mu2net::System::load";
        io::SafetensorsFile f = io::load_safetensors(path);
        auto it = f.metadata.find("mu2net");
        POLYMATH_CHECK(it != f.metadata.end(), op, "'", path, "' has no 'mu2net' metadata (not a µ2Net system)");
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(it->second);
        } catch (const std::exception& e) {
            POLYMATH_THROW(op, "'", path, "': the 'mu2net' metadata is not valid JSON: ", e.what());
        }
        try {
            POLYMATH_CHECK(j.value("format", "") == "polymath.mu2net" && j.value("version", 0) == 1, op, "'", path,
                           "': unsupported format/version");
            HparamSpace space;
            for (const auto& c : j.at("space"))
                space.push_back({c.at("name").get<std::string>(), doubles_from_json(c.at("values"), op)});
            System s(std::move(space));
            // Tensors by component.
            std::map<ComponentId, std::vector<std::pair<std::string, Tensor<typename C::value_type>>>> states;
            for (const auto& e : f.tensors) {
                const auto dot = e.name.find('.');
                POLYMATH_CHECK(e.name.size() > 1 && e.name[0] == 'c' && dot != std::string::npos, op, "'", path,
                               "': unexpected tensor '", e.name, "'");
                const ComponentId id = std::stoll(e.name.substr(1, dot - 1));
                states[id].emplace_back(e.name.substr(dot + 1), io::get<typename C::value_type>(f, e.name));
            }
            for (const auto& c : j.at("components")) {
                const ComponentId id = c.at("id").get<ComponentId>();
                C m = make(c.at("kind").get<std::string>());
                m.load_state_dict(states[id]);
                states.erase(id);
                s.pool_.insert(id, std::move(m), c.at("owner").get<std::string>(), c.at("kind").get<std::string>(),
                               c.at("frozen").get<bool>());
            }
            for (const auto& [id, st] : states)
                POLYMATH_CHECK(st.empty(), op, "'", path, "': tensors of component ", id,
                               " which the metadata does not list");
            s.pool_.set_next_id(j.at("next_id").get<ComponentId>());
            for (const auto& t : j.at("tasks")) {
                TaskState ts;
                ts.route = t.at("route").get<Route>();
                ts.hparams = t.at("hparams").get<IndexGenome>();
                ts.quality = double_from_bits(t.at("quality").get<std::string>(), op);
                ts.score = double_from_bits(t.at("score").get<std::string>(), op);
                ts.parent = t.at("parent").get<std::string>();
                // set_task checks the route and genome; it also freezes, which
                // the saved flags already say.
                s.set_task(t.at("name").get<std::string>(), std::move(ts));
            }
            return s;
        } catch (const nlohmann::json::exception& e) {
            POLYMATH_THROW(op, "'", path, "': malformed 'mu2net' metadata: ", e.what());
        } catch (const std::logic_error& e) {  // std::stoll on a tensor name that is not c<id>.<name>
            POLYMATH_THROW(op, "'", path, "': malformed tensor name or metadata: ", e.what());
        }
    }

private:
    std::string known() const {
        std::string s = " (tasks: ";
        for (std::size_t i = 0; i < order_.size(); ++i) s += (i ? ", " : "") + order_[i];
        return s + (order_.empty() ? "none)" : ")");
    }

    ComponentPool<C> pool_;
    HparamSpace space_;
    std::map<std::string, TaskState> tasks_;
    std::vector<std::string> order_;
};

// ---- the evolutionary loop for one task ---------------------------------------

struct EvolveOptions {
    int generations = 2;
    int children = 2;             // per generation
    double mutation_rate = 0.1;   // per hyper-parameter gene
    double size_factor = 0.9;     // see the file comment; 1 = no size penalty
    std::int64_t reference_params = 0;  // > 0 required (e.g. the root route's parameters)
    std::vector<std::size_t> always_clone;  // empty = {last position}
};

struct GenerationLog {
    int generation = 0;
    std::vector<Child> children;  // with quality, score (cloned ids are gone for rejected ones)
    bool improved = false;
    double best_score = 0;
};

// The µ2Net loop for `task`: each generation spawns `children` children of the
// task's current model (for a task not in the system yet: of `parent_task`'s
// model; its hyper-parameters are inherited, then mutated), and calls
// train_eval(system, child, hparam values) -> validation quality (higher is
// better), which trains the child's cloned components in place. The best child
// of the generation replaces the task's model when its score beats the task's
// best score so far; the others' components are removed. `on_child` (optional)
// is called after each child is scored.
template <class C, class TrainEval>
std::vector<GenerationLog> evolve_task(System<C>& sys, const std::string& task, const std::string& parent_task,
                                       const EvolveOptions& o, Generator& gen, TrainEval&& train_eval,
                                       const std::function<void(const Child&)>& on_child = {}) {
    const char* op = "mu2net::evolve_task";
    POLYMATH_CHECK(o.generations >= 1 && o.children >= 1, op, "generations and children must be >= 1, got ",
                   o.generations, " and ", o.children);
    POLYMATH_CHECK(o.reference_params > 0, op, "reference_params must be positive (e.g. the root route's size)");
    if (!sys.has_task(task)) (void)sys.task(parent_task);  // Error naming the known tasks
    Rng rng(gen);
    std::vector<GenerationLog> logs;
    for (int g = 0; g < o.generations; ++g) {
        const bool exists = sys.has_task(task);
        const std::string parent = exists ? task : parent_task;
        const TaskState ps = sys.task(parent);
        std::vector<std::size_t> always = o.always_clone;
        if (always.empty()) always.push_back(ps.route.size() - 1);
        GenerationLog log;
        log.generation = g;
        for (int k = 0; k < o.children; ++k) {
            IndexGenome h = ps.hparams;
            mutate_hparams(sys.space(), h, o.mutation_rate, rng);
            const BitGenome mask = clone_mask_from_hparams(sys.space(), h, ps.route.size(), always);
            Child c = spawn_child(sys.pool(), ps.route, mask, task);
            c.hparams = h;
            c.quality = train_eval(sys, c, hparam_values(sys.space(), h));
            // The child's cost is its own new parameters plus what its task
            // already owns in the shared part of its route.
            std::int64_t added = c.params_added;
            for (std::size_t i = 0; i < c.route.size(); ++i)
                if (!mask[i] && sys.pool().entry(c.route[i]).owner == task) added += sys.pool().parameters(c.route[i]);
            c.params_added = added;
            c.score = mu2net_score(c.quality, added, o.reference_params, o.size_factor);
            for (ComponentId id : c.cloned) sys.pool().set_frozen(id, true);
            if (on_child) on_child(c);
            log.children.push_back(std::move(c));
        }
        const std::int64_t b = select_best(log.children);
        const double best_so_far = exists ? sys.task(task).score : -std::numeric_limits<double>::infinity();
        for (std::size_t k = 0; k < log.children.size(); ++k) {
            if (std::int64_t(k) == b && log.children[k].score > best_so_far) {
                sys.accept(log.children[k], exists ? sys.task(task).parent : parent_task);
                log.improved = true;
            } else {
                sys.discard(log.children[k]);
            }
        }
        log.best_score = sys.has_task(task) ? sys.task(task).score : -std::numeric_limits<double>::infinity();
        logs.push_back(std::move(log));
    }
    return logs;
}

}  // namespace polymath::evo::mu2net
