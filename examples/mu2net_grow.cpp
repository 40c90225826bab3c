// mu2net_grow — µ2Net (Gesmundo & Dean 2022, arXiv 2205.12755) at this
// machine's scale: a multi-task system that grows by cloning layers of a frozen
// parent, one task at a time, on the bundled data.
//
// Tasks, in the order they arrive:
//   mnist    MNIST digits (data/mnist), 1 x 28 x 28
//   fashion  Fashion-MNIST (data/fashion-mnist), 1 x 28 x 28
//   cifar    CIFAR-10 (data/cifar10) converted to GRAYSCALE (0.299 R + 0.587 G +
//            0.114 B), 1 x 32 x 32, so that every task can share the 1-channel
//            stem (a 3-channel task would need its own stem, shared with nobody)
//   speech   spoken digits (data/speech-digits, FSDD; takes 0-4 = test): a
//            log-mel spectrogram (40 mels x 80 frames of 10 ms) as a 1 x 40 x 80
//            image
// Each task's training set loses its last 10% (after a seeded shuffle) to a
// validation split: µ2Net selects children on validation accuracy, the tables
// report test accuracy.
//
// The root model (trained on mnist first, all of it trainable) is a small CNN
// of four components: stem conv(1->8) + ReLU + max-pool 2, block1 conv(8->16),
// block2 conv(16->32) (same form), head global-average-pool + linear(32->10).
// Then for every new task: `--generations` generations of `--children`
// children. A child inherits its parent's hyper-parameters, mutates each to an
// adjacent value with probability `--mutation` (learning rate, label smoothing,
// dropout before the head, and whether to clone the stem, block1 and block2;
// the head is always cloned), clones those layers (Module::clone(), trainable,
// owned by the task), shares the rest frozen, trains its clones for `--steps`
// steps (Adam, batch `--batch`), and is scored on validation accuracy x
// size_factor^(params added / root params). The best child of a generation
// replaces the task's model if its score beats the best so far. Generation 0
// of a new task descends from the task before it.
//
// Baseline: each task trained alone from scratch (a fresh root-sized CNN, all
// parameters trainable, root hyper-parameters) for as many steps as µ2Net spent
// on that task in all its children together.
//
//   mu2net_grow [--data data] [--out out/mu2net] [--quick] [--seed 1] [--threads N]
//               [--root-steps 2000] [--steps 400] [--generations 3] [--children 3]
//               [--batch 32] [--mutation 0.25] [--size-factor 0.9] [--eval-max 2000]
//
// Writes to --out: results.md, results.csv, routes.json (the evolved route of
// every task), system.safetensors (the whole system: components + routes +
// hyper-parameters, reloadable with mu2net::System::load), growth.png
// (system parameters vs independent models, when gnuplot is installed).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/data/batching.hpp>
#include <polymath/data/progress.hpp>
#include <polymath/data/readers.hpp>
#include <polymath/evo/mu2net.hpp>
#include <polymath/nn.hpp>
#include <polymath/optim.hpp>
#include <polymath/polymath.hpp>

#include "example_util.hpp"

using namespace polymath;
using example::write_file;
namespace fs = std::filesystem;
namespace mu = polymath::evo::mu2net;

namespace {

struct Args {
    std::string data = "data", out = "out/mu2net";
    bool quick = false;
    std::uint64_t seed = 1;
    int threads = 0;
    std::int64_t root_steps = 2000, steps = 400, generations = 3, children = 3, batch = 32, eval_max = 2000;
    double mutation = 0.25, size_factor = 0.9;
};

Args parse(int argc, char** argv) {
    Args a;
    bool set_root = false, set_steps = false, set_gen = false, set_children = false, set_eval = false;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("option " + s + " needs a value");
            return argv[++i];
        };
        auto num = [&]() -> std::int64_t {
            const std::string v = val();
            std::size_t used = 0;
            std::int64_t x = 0;
            try {
                x = std::stoll(v, &used);
            } catch (...) {
                used = 0;
            }
            if (used != v.size() || v.empty()) throw Error("option " + s + " needs a whole number, got '" + v + "'");
            return x;
        };
        auto real = [&]() -> double {
            const std::string v = val();
            std::size_t used = 0;
            double x = 0;
            try {
                x = std::stod(v, &used);
            } catch (...) {
                used = 0;
            }
            if (used != v.size() || v.empty()) throw Error("option " + s + " needs a number, got '" + v + "'");
            return x;
        };
        if (s == "--data") a.data = val();
        else if (s == "--out") a.out = val();
        else if (s == "--quick") a.quick = true;
        else if (s == "--seed") a.seed = std::uint64_t(num());
        else if (s == "--threads") a.threads = int(num());
        else if (s == "--root-steps") a.root_steps = num(), set_root = true;
        else if (s == "--steps") a.steps = num(), set_steps = true;
        else if (s == "--generations") a.generations = num(), set_gen = true;
        else if (s == "--children") a.children = num(), set_children = true;
        else if (s == "--batch") a.batch = num();
        else if (s == "--eval-max") a.eval_max = num(), set_eval = true;
        else if (s == "--mutation") a.mutation = real();
        else if (s == "--size-factor") a.size_factor = real();
        else if (s == "-h" || s == "--help") {
            std::printf("see the comment at the top of examples/mu2net_grow.cpp\n");
            std::exit(0);
        } else throw Error("unknown option '" + s + "' (see --help)");
    }
    if (a.quick) {
        if (!set_root) a.root_steps = 80;
        if (!set_steps) a.steps = 25;
        if (!set_gen) a.generations = 1;
        if (!set_children) a.children = 2;
        if (!set_eval) a.eval_max = 300;
    }
    if (a.root_steps < 1 || a.steps < 1 || a.generations < 1 || a.children < 1 || a.batch < 1 || a.eval_max < 1)
        throw Error("--root-steps, --steps, --generations, --children, --batch and --eval-max must be >= 1");
    if (a.threads < 0) throw Error("--threads must be >= 0");
    if (!(a.mutation >= 0 && a.mutation <= 1)) throw Error("--mutation must be in [0, 1]");
    if (!(a.size_factor > 0 && a.size_factor <= 1)) throw Error("--size-factor must be in (0, 1]");
    return a;
}

// ---------------------------------------------------------------- data ----

struct Split {
    Tensor<float> x;  // [N, 1, H, W]
    Tensor<std::int64_t> y;
    std::int64_t size() const { return y.numel(); }
};

struct TaskData {
    std::string name, input;
    Split train, val, test;
};

// Standardises with the training images' mean and deviation.
void standardize(std::vector<Tensor<float>*> xs) {
    const Tensor<float>& tr = *xs[0];
    double s = 0, s2 = 0;
    for (std::int64_t i = 0; i < tr.numel(); ++i) s += tr.data()[i], s2 += double(tr.data()[i]) * tr.data()[i];
    const double m = s / double(tr.numel()), sd = std::sqrt(std::max(s2 / double(tr.numel()) - m * m, 1e-12));
    for (Tensor<float>* t : xs)
        for (std::int64_t i = 0; i < t->numel(); ++i) t->data()[i] = float((t->data()[i] - m) / sd);
}

Split take(const Split& s, const std::vector<std::int64_t>& idx) {
    Tensor<std::int64_t> ix = Tensor<std::int64_t>::from_vector(idx);
    return {ops::index_select(s.x, 0, ix).contiguous(), ops::index_select(s.y, 0, ix).contiguous()};
}

// Moves the last 10% of a seeded shuffle of `train` into a validation split.
void split_validation(TaskData& d, std::uint64_t seed) {
    Generator g(seed);
    std::vector<std::int64_t> order = data::shuffled_indices(d.train.size(), g);
    const std::size_t nval = std::max<std::size_t>(1, order.size() / 10);
    std::vector<std::int64_t> tr(order.begin(), order.end() - std::ptrdiff_t(nval)), va(order.end() - std::ptrdiff_t(nval), order.end());
    std::sort(tr.begin(), tr.end());
    std::sort(va.begin(), va.end());
    d.val = take(d.train, va);
    d.train = take(d.train, tr);
}

TaskData load_idx_task(const std::string& name, const std::string& dir) {
    TaskData d{name, "1x28x28", {}, {}, {}};
    auto conv = [](const data::MnistSplit& s) {
        auto [img, lab] = s;
        const std::int64_t n = img.dims[0];
        Split out{Tensor<float>::empty({n, 1, 28, 28}), Tensor<std::int64_t>::empty({n})};
        for (std::int64_t i = 0; i < n * 784; ++i) out.x.data()[i] = img.data[std::size_t(i)] / 255.0f;
        for (std::int64_t i = 0; i < n; ++i) out.y.data()[i] = lab.data[std::size_t(i)];
        return out;
    };
    d.train = conv(data::load_mnist(dir, true));
    d.test = conv(data::load_mnist(dir, false));
    standardize({&d.train.x, &d.test.x});
    return d;
}

TaskData load_cifar_gray(const std::string& dir) {
    TaskData d{"cifar", "1x32x32 (gray)", {}, {}, {}};
    auto conv = [](const data::CifarBatch& b) {
        const std::int64_t n = b.size();
        Split out{Tensor<float>::empty({n, 1, 32, 32}), b.labels};
        const std::uint8_t* p = b.images.data();
        for (std::int64_t i = 0; i < n; ++i)
            for (std::int64_t j = 0; j < 1024; ++j)
                out.x.data()[i * 1024 + j] = (0.299f * p[i * 3072 + j] + 0.587f * p[i * 3072 + 1024 + j] +
                                              0.114f * p[i * 3072 + 2048 + j]) / 255.0f;
        return out;
    };
    d.train = conv(data::load_cifar10(dir, true));
    d.test = conv(data::load_cifar10(dir, false));
    standardize({&d.train.x, &d.test.x});
    return d;
}

constexpr std::int64_t kFrames = 80, kMels = 40;

TaskData load_speech(const std::string& dir) {
    struct Item {
        std::string path;
        int digit = 0, take = 0;
    };
    std::vector<Item> items;
    if (!fs::is_directory(dir)) throw Error("speech data folder " + dir + " does not exist");
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".wav") continue;
        const std::string name = e.path().stem().string();
        const auto a = name.find('_'), b = name.rfind('_');
        Item it{e.path().string()};
        try {
            if (a == std::string::npos || b == a) throw 0;
            it.digit = std::stoi(name.substr(0, a));
            it.take = std::stoi(name.substr(b + 1));
        } catch (...) {
            throw Error("speech file " + e.path().string() + ": expected {digit}_{speaker}_{take}.wav");
        }
        if (it.digit < 0 || it.digit > 9) throw Error("speech file " + e.path().string() + ": digit out of 0..9");
        items.push_back(it);
    }
    if (items.empty()) throw Error("no .wav files in " + dir);
    std::sort(items.begin(), items.end(), [](const Item& x, const Item& y) { return x.path < y.path; });
    std::vector<Tensor<float>> specs(items.size());
    parallel_for(0, std::int64_t(items.size()), 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) {
            data::WavAudio w = data::read_wav(items[std::size_t(i)].path);
            data::MelOptions o;
            o.sample_rate = w.sample_rate;
            o.fmax = w.sample_rate / 2.0;
            specs[std::size_t(i)] = data::log_mel_spectrogram(w.samples, o);  // [frames, mels]
        }
    });
    std::int64_t ntr = 0, nte = 0;
    for (const auto& it : items) (it.take < 5 ? nte : ntr) += 1;
    TaskData d{"speech", "1x40x80 (log-mel)", {}, {}, {}};
    d.train = {Tensor<float>::zeros({ntr, 1, kMels, kFrames}), Tensor<std::int64_t>::empty({ntr})};
    d.test = {Tensor<float>::zeros({nte, 1, kMels, kFrames}), Tensor<std::int64_t>::empty({nte})};
    std::int64_t itr = 0, ite = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        Split& s = items[i].take < 5 ? d.test : d.train;
        const std::int64_t row = items[i].take < 5 ? ite++ : itr++;
        s.y.data()[row] = items[i].digit;
        const Tensor<float>& sp = specs[i];
        // Per-utterance normalisation, first kFrames frames (zero-padded), mels as rows.
        double m = 0, m2 = 0;
        for (std::int64_t j = 0; j < sp.numel(); ++j) m += sp.data()[j], m2 += double(sp.data()[j]) * sp.data()[j];
        m /= double(sp.numel());
        const double sd = std::sqrt(std::max(m2 / double(sp.numel()) - m * m, 1e-12));
        const std::int64_t frames = std::min<std::int64_t>(kFrames, sp.size(0));
        for (std::int64_t t = 0; t < frames; ++t)
            for (std::int64_t c = 0; c < kMels; ++c)
                s.x.data()[(row * kMels + c) * kFrames + t] = float((sp.data()[t * kMels + c] - m) / sd);
    }
    return d;
}

// ----------------------------------------------------------- the model ----

// One component: a conv layer (conv 3x3 pad 1 + ReLU + max-pool 2) or a head
// (global average pool + dropout + linear). `kind` rebuilds it on load.
struct Layer : nn::Module<Layer, float> {
    std::string kind;
    nn::Conv2d<float> conv;
    nn::Linear<float> fc;

    static Layer make(const std::string& kind, Generator& g) {
        Layer l;
        l.kind = kind;
        int a = 0, b = 0;
        if (std::sscanf(kind.c_str(), "conv:%d:%d", &a, &b) == 2) l.conv = nn::Conv2d<float>(a, b, 3, {.padding = 1}, g);
        else if (std::sscanf(kind.c_str(), "head:%d:%d", &a, &b) == 2) l.fc = nn::Linear<float>(a, b, {}, g);
        else throw Error("unknown component kind '" + kind + "'");
        return l;
    }
    Var<float> forward(const Var<float>& x, double drop, Generator& g) const {
        if (conv.weight.defined()) return max_pool2d(relu(conv(x)), 2);
        Var<float> h = nn::GlobalAvgPool<float>{}(x);
        if (drop > 0) h = dropout(h, drop, is_training(), g);
        return fc(h);
    }
    template <class V>
    void visit(V& v) {
        v.module("conv", conv);
        v.module("fc", fc);
    }
};

const std::vector<std::string> kKinds = {"conv:1:8", "conv:8:16", "conv:16:32", "head:32:10"};
const std::vector<std::string> kPositions = {"stem", "block1", "block2", "head"};

mu::HparamSpace hparam_space() {
    return {{"lr", {1e-4, 3e-4, 1e-3, 3e-3, 1e-2}},
            {"label_smoothing", {0.0, 0.05, 0.1, 0.2, 0.3}},
            {"dropout", {0.0, 0.1, 0.2, 0.3, 0.5}},
            {"clone:0", {0, 1}},
            {"clone:1", {0, 1}},
            {"clone:2", {0, 1}}};
}
const std::map<std::string, double> kRootHparams = {
    {"lr", 3e-3}, {"label_smoothing", 0.0}, {"dropout", 0.0}, {"clone:0", 0}, {"clone:1", 0}, {"clone:2", 1}};

using System = mu::System<Layer>;

// Trains the trainable parameters of `route` on `d.train` for `steps` steps.
std::int64_t total_train_steps = 0;
void train_route(System& sys, const mu::Route& route, const TaskData& d, const std::map<std::string, double>& h,
                 std::int64_t steps, std::int64_t batch, Generator& g, const std::string& label) {
    std::vector<nn::NamedParameter<float>> params;
    std::set<mu::ComponentId> seen;
    for (auto id : route)
        if (seen.insert(id).second)
            for (auto& p : sys.pool().at(id).named_parameters(true))
                params.push_back({"c" + std::to_string(id) + "." + p.name, p.var});
    if (params.empty()) throw Error("internal: route has no trainable parameters");
    optim::Adam<float> opt(params, {.lr = h.at("lr")});
    const double drop = h.at("dropout"), ls = h.at("label_smoothing");
    for (auto id : seen) sys.pool().at(id).train();
    std::vector<std::int64_t> order;
    std::size_t pos = 0;
    data::ProgressBar bar(steps, label);
    double ema = -1;
    for (std::int64_t s = 0; s < steps; ++s) {
        if (pos + std::size_t(batch) > order.size()) order = data::shuffled_indices(d.train.size(), g), pos = 0;
        Split b = take(d.train, std::vector<std::int64_t>(order.begin() + std::ptrdiff_t(pos), order.begin() + std::ptrdiff_t(pos) + batch));
        pos += std::size_t(batch);
        Var<float> logits = sys.pool().forward(route, Var<float>(b.x), [&](Layer& l, const Var<float>& x, std::size_t) {
            return l.forward(x, drop, g);
        });
        Var<float> loss = cross_entropy(logits, b.y, {.label_smoothing = ls});
        opt.zero_grad();
        loss.backward();
        opt.step();
        ema = ema < 0 ? loss.item() : 0.95 * ema + 0.05 * loss.item();
        char st[64];
        std::snprintf(st, sizeof st, "loss %.3f", ema);
        bar.update(1, st);
    }
    bar.finish();
    for (auto id : seen) sys.pool().at(id).eval();
    total_train_steps += steps;
}

// Accuracy (%) of `route` on at most `max` examples of `s`, evenly strided.
double accuracy(System& sys, const mu::Route& route, const Split& s, std::int64_t max, Generator& g) {
    NoGradGuard ng;
    const std::int64_t total = s.size(), n = std::min(max, total);
    std::int64_t correct = 0;
    for (std::int64_t b = 0; b < n; b += 250) {
        const std::int64_t m = std::min<std::int64_t>(250, n - b);
        std::vector<std::int64_t> idx(static_cast<std::size_t>(m));
        for (std::int64_t i = 0; i < m; ++i) idx[std::size_t(i)] = (b + i) * total / n;
        Split part = take(s, idx);
        Var<float> logits = sys.pool().forward(route, Var<float>(part.x), [&](Layer& l, const Var<float>& x, std::size_t) {
            return l.forward(x, 0.0, g);
        });
        Tensor<std::int64_t> pred = ops::argmax(logits.value(), 1);
        for (std::int64_t i = 0; i < m; ++i) correct += pred.data()[i] == part.y.data()[i];
    }
    return 100.0 * double(correct) / double(n);
}

// A fresh root-sized model (all trainable) in `sys`, owned by `owner`.
mu::Route fresh_route(System& sys, const std::string& owner, Generator& g) {
    mu::Route r;
    for (const auto& k : kKinds) r.push_back(sys.pool().add(Layer::make(k, g), owner, k));
    return r;
}

std::string route_text(const System& sys, const mu::Route& r) {
    std::string s;
    for (std::size_t i = 0; i < r.size(); ++i)
        s += (i ? " > " : "") + kPositions[i] + "#" + std::to_string(r[i]) + "(" + sys.pool().entry(r[i]).owner + ")";
    return s;
}

std::string hparam_text(const System& sys, const std::string& t) {
    const auto v = mu::hparam_values(sys.space(), sys.task(t).hparams);
    char buf[128];
    std::snprintf(buf, sizeof buf, "lr %g, ls %g, dropout %g", v.at("lr"), v.at("label_smoothing"), v.at("dropout"));
    return buf;
}

struct Row {
    std::string task, input;
    double val = 0, test = 0, scratch = 0;
    std::int64_t added = 0, active = 0, steps = 0, system_after = 0;
    std::string route, hparams;
};

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    if (a.threads > 0) set_num_threads(a.threads);
    fs::create_directories(a.out);
    const auto t0 = std::chrono::steady_clock::now();
    auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

    // Data.
    std::vector<TaskData> tasks;
    for (const char* sub : {"mnist", "fashion-mnist", "cifar10", "speech-digits/recordings"})
        if (!fs::is_directory(a.data + "/" + sub))
            throw Error("data folder " + a.data + "/" + sub + " does not exist (see --data)");
    std::printf("loading data from %s ...\n", a.data.c_str());
    std::fflush(stdout);
    tasks.push_back(load_idx_task("mnist", a.data + "/mnist"));
    tasks.push_back(load_idx_task("fashion", a.data + "/fashion-mnist"));
    tasks.push_back(load_cifar_gray(a.data + "/cifar10"));
    tasks.push_back(load_speech(a.data + "/speech-digits/recordings"));
    for (std::size_t t = 0; t < tasks.size(); ++t) {
        split_validation(tasks[t], a.seed * 1000 + t);
        if (a.quick) {  // smaller evaluation sets keep the smoke run short
            std::vector<std::int64_t> idx;
            for (std::int64_t i = 0; i < std::min<std::int64_t>(a.eval_max, tasks[t].test.size()); ++i)
                idx.push_back(i * tasks[t].test.size() / std::min<std::int64_t>(a.eval_max, tasks[t].test.size()));
            tasks[t].test = take(tasks[t].test, idx);
        }
        std::printf("  %-8s %-18s %6lld train / %5lld validation / %5lld test\n", tasks[t].name.c_str(),
                    tasks[t].input.c_str(), (long long)tasks[t].train.size(), (long long)tasks[t].val.size(),
                    (long long)tasks[t].test.size());
    }
    std::printf("data ready in %.1f s\n", secs());

    Generator g(a.seed);
    System sys(hparam_space());
    const evo::IndexGenome root_h = mu::hparams_from_values(sys.space(), kRootHparams);
    std::vector<Row> rows;

    // Root: mnist, trained from scratch.
    {
        const mu::Route r = fresh_route(sys, "mnist", g);
        const auto hv = mu::hparam_values(sys.space(), root_h);
        train_route(sys, r, tasks[0], hv, a.root_steps, a.batch, g, "root mnist");
        const double val = accuracy(sys, r, tasks[0].val, a.eval_max, g);
        sys.set_task("mnist", {r, root_h, val / 100.0, val / 100.0, ""});
        Row row;
        row.task = "mnist";
        row.input = tasks[0].input;
        row.val = val;
        row.steps = a.root_steps;
        rows.push_back(row);
    }
    const std::int64_t root_params = sys.active_parameters("mnist");
    std::printf("root model: %lld parameters (stem %lld, block1 %lld, block2 %lld, head %lld); validation %.2f%%\n",
                (long long)root_params, (long long)sys.pool().parameters(sys.route("mnist")[0]),
                (long long)sys.pool().parameters(sys.route("mnist")[1]),
                (long long)sys.pool().parameters(sys.route("mnist")[2]),
                (long long)sys.pool().parameters(sys.route("mnist")[3]), rows[0].val);

    // New tasks, one at a time.
    std::ostringstream log;
    for (std::size_t t = 1; t < tasks.size(); ++t) {
        const TaskData& d = tasks[t];
        mu::EvolveOptions o;
        o.generations = int(a.generations);
        o.children = int(a.children);
        o.mutation_rate = a.mutation;
        o.size_factor = a.size_factor;
        o.reference_params = root_params;
        int child_no = 0;
        const std::string parent = tasks[t - 1].name;
        auto logs = mu::evolve_task(
            sys, d.name, parent, o, g,
            [&](System& s, const mu::Child& c, const std::map<std::string, double>& h) {
                ++child_no;
                const int gen_no = (child_no - 1) / int(a.children), k = (child_no - 1) % int(a.children);
                train_route(s, c.route, d, h, a.steps, a.batch, g,
                            d.name + " g" + std::to_string(gen_no) + " c" + std::to_string(k));
                return accuracy(s, c.route, d.val, a.eval_max, g) / 100.0;
            },
            [&](const mu::Child& c) {
                std::string cl;
                for (std::size_t i = 0; i < c.clone_mask.size(); ++i)
                    if (c.clone_mask[i]) cl += (cl.empty() ? "" : "+") + kPositions[i];
                const auto h = mu::hparam_values(sys.space(), c.hparams);
                char buf[256];
                std::snprintf(buf, sizeof buf,
                              "  %-8s child %d: clones %-24s lr %-7g ls %-5g dropout %-4g -> val %.2f%%, +%lld params, score %.4f\n",
                              d.name.c_str(), child_no, cl.c_str(), h.at("lr"), h.at("label_smoothing"),
                              h.at("dropout"), 100 * c.quality, (long long)c.params_added, c.score);
                std::printf("%s", buf);
                std::fflush(stdout);
                log << buf;
            });
        for (const auto& l : logs)
            std::printf("  %s generation %d: %s (best score %.4f)\n", d.name.c_str(), l.generation,
                        l.improved ? "improved" : "no child beat the parent", l.best_score);
        Row row;
        row.task = d.name;
        row.input = d.input;
        row.val = 100 * sys.task(d.name).quality;
        row.steps = a.generations * a.children * a.steps;
        rows.push_back(row);
    }

    // Test accuracy, routes, parameters; inference touches only the route.
    std::int64_t independent = 0;
    nlohmann::json routes = nlohmann::json::object();
    for (std::size_t t = 0; t < tasks.size(); ++t) {
        Row& row = rows[t];
        sys.pool().reset_uses();
        row.test = accuracy(sys, sys.route(row.task), tasks[t].test, tasks[t].test.size(), g);
        const std::int64_t touched = sys.pool().touched_parameters();
        row.active = sys.active_parameters(row.task);
        row.added = sys.params_added(row.task);
        row.route = route_text(sys, sys.route(row.task));
        row.hparams = hparam_text(sys, row.task);
        independent += root_params;
        std::printf("inference %-8s touches %lld parameters = its route's %lld (system: %lld)\n", row.task.c_str(),
                    (long long)touched, (long long)row.active, (long long)sys.total_parameters());
        if (touched != row.active) throw Error("inference touched parameters outside the route of " + row.task);
        nlohmann::json rj;
        rj["route"] = sys.route(row.task);
        rj["components"] = nlohmann::json::array();
        for (std::size_t i = 0; i < sys.route(row.task).size(); ++i) {
            const auto id = sys.route(row.task)[i];
            rj["components"].push_back({{"position", kPositions[i]}, {"id", id}, {"owner", sys.pool().entry(id).owner},
                                        {"kind", sys.pool().entry(id).kind}, {"parameters", sys.pool().parameters(id)}});
        }
        rj["hparams"] = mu::hparam_values(sys.space(), sys.task(row.task).hparams);
        rj["validation_accuracy"] = row.val;
        rj["test_accuracy"] = row.test;
        rj["params_added"] = row.added;
        rj["active_parameters"] = row.active;
        routes[row.task] = rj;
        std::printf("  route %-8s %s  [%s]\n", row.task.c_str(), row.route.c_str(), row.hparams.c_str());
    }
    const std::string sys_path = a.out + "/system.safetensors";
    sys.save(sys_path);
    write_file(a.out + "/routes.json", routes.dump(2) + "\n");

    // Isolation check on the saved system: reload it, poison every component
    // outside a task's route with NaN, and compare the task's logits bit for bit.
    {
        Generator mk(0);
        for (std::size_t t = 0; t < tasks.size(); ++t) {
            System copy = System::load(sys_path, [&](const std::string& k) { return Layer::make(k, mk); });
            const mu::Route& r = copy.route(tasks[t].name);
            const std::set<mu::ComponentId> in(r.begin(), r.end());
            for (auto id : copy.pool().ids())
                if (!in.count(id))
                    for (auto& p : copy.pool().at(id).named_parameters()) {
                        Tensor<float> w = p.var.value();  // shares the storage
                        w.fill_(std::nanf(""));
                    }
            Split x = take(tasks[t].test, {0, 1, 2, 3});
            NoGradGuard ng;
            auto step = [&](Layer& l, const Var<float>& v, std::size_t) { return l.forward(v, 0.0, mk); };
            for (auto id : copy.pool().ids()) copy.pool().at(id).eval();
            Tensor<float> y1 = sys.pool().forward(sys.route(tasks[t].name), Var<float>(x.x), step).value().contiguous();
            Tensor<float> y2 = copy.pool().forward(r, Var<float>(x.x), step).value().contiguous();
            for (std::int64_t i = 0; i < y1.numel(); ++i)
                if (!std::isfinite(y2.data()[i]) || y1.data()[i] != y2.data()[i])
                    throw Error("task " + tasks[t].name + " read a component outside its route");
        }
        std::printf("isolation: every task's logits are bit-identical with all other components set to NaN "
                    "(system reloaded from %s)\n", sys_path.c_str());
    }

    // Baseline: each task alone from scratch, same number of steps.
    for (std::size_t t = 0; t < tasks.size(); ++t) {
        if (t == 0) {
            rows[t].scratch = rows[t].test;  // the root is a from-scratch model
            continue;
        }
        System alone(hparam_space());
        Generator gs(a.seed + 100 + t);
        const mu::Route r = fresh_route(alone, tasks[t].name, gs);
        train_route(alone, r, tasks[t], mu::hparam_values(alone.space(), root_h), rows[t].steps, a.batch, gs,
                    "scratch " + tasks[t].name);
        rows[t].scratch = accuracy(alone, r, tasks[t].test, tasks[t].test.size(), gs);
    }

    // Tables.
    std::ostringstream md, csv;
    md << "| task | input | µ2Net test acc % | from scratch, same steps % | training steps | params added | "
          "active params | system params after |\n|---|---|---:|---:|---:|---:|---:|---:|\n";
    csv << "task,input,mu2net_test_acc,mu2net_val_acc,scratch_test_acc,steps,params_added,active_params,system_params_after\n";
    std::int64_t cum = 0;
    std::ostringstream growth;
    growth << "tasks,mu2net_params,independent_params\n";
    for (std::size_t t = 0; t < rows.size(); ++t) {
        Row& r = rows[t];
        cum += r.added;
        r.system_after = cum;
        growth << t + 1 << "," << cum << "," << root_params * std::int64_t(t + 1) << "\n";
        char buf[512];
        std::snprintf(buf, sizeof buf, "| %s | %s | %.2f | %.2f%s | %lld | %lld | %lld | %lld |\n", r.task.c_str(),
                      r.input.c_str(), r.test, r.scratch, t == 0 ? " (root)" : "", (long long)r.steps,
                      (long long)r.added, (long long)r.active, (long long)cum);
        md << buf;
        csv << r.task << "," << r.input << "," << r.test << "," << r.val << "," << r.scratch << "," << r.steps << ","
            << r.added << "," << r.active << "," << cum << "\n";
    }
    md << "\nSystem: " << sys.total_parameters() << " parameters for " << rows.size() << " tasks; "
       << independent << " for " << rows.size() << " independent models (" << root_params << " each).\n\nRoutes:\n\n";
    for (const auto& r : rows) md << "- " << r.task << ": " << r.route << " [" << r.hparams << "]\n";
    char cfg[512];
    std::snprintf(cfg, sizeof cfg,
                  "\nroot steps %lld; per new task %lld generations x %lld children x %lld steps; batch %lld; "
                  "mutation %g; size factor %g; seed %llu; %.0f s in all (%lld training steps).\n",
                  (long long)a.root_steps, (long long)a.generations, (long long)a.children, (long long)a.steps,
                  (long long)a.batch, a.mutation, a.size_factor, (unsigned long long)a.seed, secs(),
                  (long long)total_train_steps);
    md << cfg << "\nChildren:\n\n```\n" << log.str() << "```\n";
    write_file(a.out + "/results.md", md.str());
    write_file(a.out + "/results.csv", csv.str());
    write_file(a.out + "/growth.csv", growth.str());

    std::string plot_note;
    {
        std::ostringstream gp;
        gp << "set terminal pngcairo size 800,500 noenhanced\nset datafile separator ','\n"
           << "set output '" << a.out << "/growth.png'\n"
           << "set title 'parameters as tasks arrive (mnist, fashion, cifar, speech)'\n"
           << "set xlabel 'tasks'\nset ylabel 'parameters'\nset key left top\nset xtics 1\nset yrange [0:*]\n"
           << "plot '" << a.out << "/growth.csv' skip 1 using 1:3 with linespoints title 'independent models', "
           << "'' skip 1 using 1:2 with linespoints title 'µ2Net system'\n";
        plot_note = example::gnuplot(a.out + "/growth", gp.str(), a.out + "/growth.png", "growth.csv has the numbers");
    }

    std::printf("\n%s\n", md.str().c_str());
    std::printf("written: %s/results.md, results.csv, growth.csv, routes.json, system.safetensors\n%s\n",
                a.out.c_str(), plot_note.c_str());
    return 0;
} catch (const std::exception& e) {
    std::string msg = e.what();  // one line, even for readers that list what they tried
    for (auto& ch : msg)
        if (ch == '\n') ch = ' ';
    std::fprintf(stderr, "mu2net_grow: error: %s\n", msg.c_str());
    return 1;
}
