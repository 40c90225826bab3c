// evolve_masks — "Jack and Masters of All Trades" (arXiv 2205.00671) at this
// machine's scale: one shared network pretrained on several tasks, then
// MO-MFEA evolves one binary mask per task over groups of the shared
// parameters, and each task's chosen mask is fine-tuned.
//
// Two parts (--parts image,airq):
//   image  a small ResNet-style CNN (stem conv 1->W, max pool, residual block
//          of two WxW convs, stride-2 conv W->2W, residual block of two 2Wx2W
//          convs, global average pool; one Linear(2W, 10) head per task)
//          pretrained jointly on MNIST and Fashion-MNIST (data/mnist,
//          data/fashion-mnist). Mask groups: every output channel of every
//          trunk conv weight (biases and heads are not masked).
//   airq   a 2-layer bidirectional LSTM (hidden H per direction; the paper
//          uses 2x128) + one Linear(2H, 1) head per station, pretrained
//          jointly on the 4 bundled Beijing stations (each station a task):
//          predict next hour's PM2.5 from a 10-hour window of the 11 numeric
//          columns (NaN forward-filled, standardised with the training part's
//          statistics per station); chronological split (first 80 % of hours
//          for training, of which the last --val windows are the validation
//          batch; the rest for test); RMSE in µg/m³ on test hours whose PM2.5
//          was not missing. Mask groups: every row of every LSTM weight
//          (weight_ih / weight_hh, gate rows; biases and heads not masked).
//
// Per part:
//   1. joint pretraining: each step one batch of every task, losses summed,
//      Adam (lr 1e-3); checkpointed to <out>/<part>_pretrained.ckpt;
//   2. MO-MFEA (evo::MoMfea, one task per dataset/station): genome = one bit
//      per group; objectives = (mask density ||β||_1 / dim, the task's loss on
//      its fixed validation batch with the mask applied). Objectives are
//      evaluated in parallel, each evaluation on a model clone taken from a
//      pool (one clone per concurrently running evaluation, i.e. per thread)
//      with evo::MaskGuard; the final fronts are scored on the test sets with
//      evo::evaluate_masks (one clone per thread). The population is
//      checkpointed every generation (<out>/<part>_population.json); --resume
//      continues from it and from the pretrained checkpoint;
//   3. per task, the chosen mask = the front member with the lowest
//      validation loss among those with density <= --max-density (if none,
//      the sparsest front member);
//   4. fine-tuning per task for --ft-epochs epochs (Adam lr 5e-4, x0.95 per
//      epoch, as the paper): (a) the masked network — masked rows are zero
//      before training, their gradients are zeroed before each step (so Adam's
//      moments for them stay 0) and the mask is re-applied after each step,
//      so they stay exactly zero; (b) the unmasked network (full fine-tune
//      baseline), same budget. Only the trunk and the task's own head train.
//
// Output in --out (default out/evolve_masks): <part>_table.{md,csv} (per
// task: pretrained shared, masked before fine-tune, masked after fine-tune,
// full fine-tune, mask density), <part>_front_<task>.csv, <part>_hv.csv,
// <part>_fronts.png and <part>_hv.png (gnuplot, when installed), results.md.
//
//   evolve_masks [--data data] [--out out/evolve_masks] [--parts image,airq]
//                [--pop 24] [--gens 60] [--rmp 0.3] [--seed 1] [--threads N]
//                [--pre-steps 1500] [--ft-epochs 3] [--ft-train 8000] [--val 512]
//                [--max-density 0.75] [--init-density 0.8] [--width 16]
//                [--hidden 32] [--quick] [--resume]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/data/batching.hpp>
#include <polymath/data/progress.hpp>
#include <polymath/data/readers.hpp>
#include <polymath/evo.hpp>
#include <polymath/io.hpp>
#include <polymath/nn.hpp>
#include <polymath/optim.hpp>
#include <polymath/polymath.hpp>

#include "example_util.hpp"

#if POLYMATH_HAS_TBB
#include <tbb/task_arena.h>
#endif

using namespace polymath;
namespace fs = std::filesystem;

namespace {

struct Args {
    std::string data = "data", out = "out/evolve_masks";
    std::vector<std::string> parts = {"image", "airq"};
    std::int64_t pop = 24, gens = 60, pre_steps = 1500, ft_epochs = 3, ft_train = 8000, val = 512, width = 16,
                 hidden = 32, batch = 64;
    double rmp = 0.3, max_density = 0.75, init_density = 0.8;
    std::uint64_t seed = 1;
    int threads = 0;
    bool quick = false, resume = false;
};

Args parse(int argc, char** argv) {
    Args a;
    bool set_pop = false, set_gens = false, set_pre = false, set_ft = false, set_ftn = false, set_val = false;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("option " + s + " needs a value");
            return argv[++i];
        };
        auto num = [&]() -> std::int64_t {
            const std::string v = val();
            std::size_t used = 0;
            std::int64_t r = 0;
            try {
                r = std::stoll(v, &used);
            } catch (...) {
                used = 0;
            }
            if (used != v.size() || v.empty()) throw Error("option " + s + " needs a whole number, got '" + v + "'");
            return r;
        };
        auto real = [&]() -> double {
            const std::string v = val();
            std::size_t used = 0;
            double r = 0;
            try {
                r = std::stod(v, &used);
            } catch (...) {
                used = 0;
            }
            if (used != v.size() || v.empty() || !std::isfinite(r))
                throw Error("option " + s + " needs a number, got '" + v + "'");
            return r;
        };
        if (s == "--data") a.data = val();
        else if (s == "--out") a.out = val();
        else if (s == "--parts") a.parts = example::split_list(val());
        else if (s == "--pop") a.pop = num(), set_pop = true;
        else if (s == "--gens") a.gens = num(), set_gens = true;
        else if (s == "--rmp") a.rmp = real();
        else if (s == "--seed") {
            const auto v = num();
            if (v < 0) throw Error("--seed must be >= 0");
            a.seed = std::uint64_t(v);
        } else if (s == "--threads") a.threads = int(num());
        else if (s == "--pre-steps") a.pre_steps = num(), set_pre = true;
        else if (s == "--ft-epochs") a.ft_epochs = num(), set_ft = true;
        else if (s == "--ft-train") a.ft_train = num(), set_ftn = true;
        else if (s == "--val") a.val = num(), set_val = true;
        else if (s == "--batch") a.batch = num();
        else if (s == "--max-density") a.max_density = real();
        else if (s == "--init-density") a.init_density = real();
        else if (s == "--width") a.width = num();
        else if (s == "--hidden") a.hidden = num();
        else if (s == "--quick") a.quick = true;
        else if (s == "--resume") a.resume = true;
        else if (s == "-h" || s == "--help") {
            std::printf("see the comment at the top of examples/evolve_masks.cpp\n");
            std::exit(0);
        } else throw Error("unknown option '" + s + "' (see --help)");
    }
    if (a.quick) {  // a < 1 minute smoke run
        if (!set_pop) a.pop = 6;
        if (!set_gens) a.gens = 2;
        if (!set_pre) a.pre_steps = 30;
        if (!set_ft) a.ft_epochs = 1;
        if (!set_ftn) a.ft_train = 256;
        if (!set_val) a.val = 128;
    }
    if (a.parts.empty()) throw Error("--parts is empty (parts: image, airq)");
    for (const auto& p : a.parts)
        if (p != "image" && p != "airq") throw Error("unknown part '" + p + "' (parts: image, airq)");
    if (a.pop < 2) throw Error("--pop must be >= 2, got " + std::to_string(a.pop));
    if (a.gens < 0) throw Error("--gens must be >= 0");
    if (a.pre_steps < 0 || a.ft_epochs < 0) throw Error("--pre-steps and --ft-epochs must be >= 0");
    if (a.ft_train < 1 || a.val < 1 || a.batch < 1) throw Error("--ft-train, --val and --batch must be >= 1");
    if (a.width < 1 || a.hidden < 1) throw Error("--width and --hidden must be >= 1");
    if (a.threads < 0) throw Error("--threads must be >= 0");
    if (a.rmp < 0 || a.rmp > 1) throw Error("--rmp must be in [0, 1]");
    if (a.max_density <= 0 || a.max_density > 1) throw Error("--max-density must be in (0, 1]");
    if (a.init_density < 0 || a.init_density > 1) throw Error("--init-density must be in [0, 1]");
    return a;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---------------------------------------------------------------- data ----

// One task: inputs [N, ...]; labels int64 (classification) or float (regression).
struct TaskData {
    std::string name;
    Tensor<float> x_train, x_val, x_test;
    Tensor<std::int64_t> c_train, c_val, c_test;
    Tensor<float> r_train, r_val, r_test;  // standardised targets
    double scale = 1.0;                   // target std (original units per standardised unit)
};

template <class T>
Tensor<T> gather_rows(const Tensor<T>& x, const std::vector<std::int64_t>& idx) {
    Shape s = x.shape();
    const std::int64_t row = x.numel() / std::max<std::int64_t>(x.size(0), 1);
    s[0] = std::int64_t(idx.size());
    Tensor<T> out = Tensor<T>::empty(s);
    for (std::size_t i = 0; i < idx.size(); ++i)
        std::memcpy(out.data() + std::int64_t(i) * row, x.data() + idx[i] * row, sizeof(T) * std::size_t(row));
    return out;
}
template <class T>
Tensor<T> rows(const Tensor<T>& x, std::int64_t begin, std::int64_t end) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = begin; i < end; ++i) idx.push_back(i);
    return gather_rows(x, idx);
}

void load_images(const std::string& dir, const std::string& name, std::int64_t val, TaskData& t) {
    if (!fs::is_directory(dir)) throw Error("data folder '" + dir + "' does not exist (see --data)");
    auto conv = [](const data::MnistSplit& s, Tensor<float>& x, Tensor<std::int64_t>& y) {
        const std::int64_t n = s.images.dims[0];
        x = Tensor<float>::empty({n, 1, 28, 28});
        y = Tensor<std::int64_t>::empty({n});
        for (std::int64_t i = 0; i < n * 784; ++i) x.data()[i] = (s.images.data[std::size_t(i)] / 255.0f - 0.5f) / 0.3f;
        for (std::int64_t i = 0; i < n; ++i) y.data()[i] = s.labels.data[std::size_t(i)];
    };
    Tensor<float> x;
    Tensor<std::int64_t> y;
    conv(data::load_mnist(dir, true), x, y);
    const std::int64_t n = x.size(0);
    if (n <= val) throw Error("'" + dir + "' has " + std::to_string(n) + " training images, need more than --val");
    t.name = name;
    // The validation batch: the last `val` training images (never trained on).
    t.x_train = rows(x, 0, n - val);
    t.c_train = rows(y, 0, n - val);
    t.x_val = rows(x, n - val, n);
    t.c_val = rows(y, n - val, n);
    conv(data::load_mnist(dir, false), t.x_test, t.c_test);
}

constexpr std::int64_t kWindow = 10;
const char* const kAirColumns[] = {"PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "RAIN", "WSPM"};
constexpr std::int64_t kAirFeatures = 11;

void load_station(const std::string& path, const std::string& name, std::int64_t val, TaskData& t) {
    if (!fs::exists(path)) throw Error("air-quality file '" + path + "' does not exist (see --data)");
    const data::CsvTable tab = data::read_csv(path);
    const std::int64_t T = std::int64_t(tab.rows());
    if (T < 100) throw Error("'" + path + "' has only " + std::to_string(T) + " rows");
    const std::int64_t split = T * 8 / 10;
    std::vector<std::vector<double>> cols;
    std::vector<char> target_missing(std::size_t(T), 0);
    for (std::int64_t c = 0; c < kAirFeatures; ++c) {
        std::vector<double> v = tab.numeric(kAirColumns[c]);
        if (c == 0)
            for (std::int64_t r = 0; r < T; ++r) target_missing[std::size_t(r)] = std::isnan(v[std::size_t(r)]);
        data::forward_fill(v);
        // Standardise with the training part's statistics.
        double s = 0, s2 = 0;
        for (std::int64_t r = 0; r < split; ++r) s += v[std::size_t(r)], s2 += v[std::size_t(r)] * v[std::size_t(r)];
        const double mean = s / double(split), sd = std::sqrt(std::max(1e-12, s2 / double(split) - mean * mean));
        if (std::isnan(mean)) throw Error("'" + path + "': column " + kAirColumns[c] + " has no values");
        for (auto& x : v) x = (x - mean) / sd;
        if (c == 0) t.scale = sd;
        cols.push_back(std::move(v));
    }
    // Window ending at hour e-1 predicts hour e; windows whose target was missing are dropped.
    auto make = [&](std::int64_t from, std::int64_t to, Tensor<float>& x, Tensor<float>& y) {
        std::vector<std::int64_t> ends;
        for (std::int64_t e = std::max(from, kWindow); e < to; ++e)
            if (!target_missing[std::size_t(e)]) ends.push_back(e);
        const std::int64_t n = std::int64_t(ends.size());
        x = Tensor<float>::empty({n, kWindow, kAirFeatures});
        y = Tensor<float>::empty({n});
        for (std::int64_t i = 0; i < n; ++i) {
            const std::int64_t e = ends[std::size_t(i)];
            for (std::int64_t k = 0; k < kWindow; ++k)
                for (std::int64_t c = 0; c < kAirFeatures; ++c)
                    x.data()[(i * kWindow + k) * kAirFeatures + c] = float(cols[std::size_t(c)][std::size_t(e - kWindow + k)]);
            y.data()[i] = float(cols[0][std::size_t(e)]);
        }
    };
    Tensor<float> x, y;
    make(0, split, x, y);
    const std::int64_t n = x.size(0);
    if (n <= val) throw Error("'" + path + "' has too few training windows for --val");
    t.name = name;
    t.x_train = rows(x, 0, n - val);
    t.r_train = rows(y, 0, n - val);
    t.x_val = rows(x, n - val, n);
    t.r_val = rows(y, n - val, n);
    make(split, T, t.x_test, t.r_test);
}

// ---------------------------------------------------------------- models ----

struct ResBlock : nn::Module<ResBlock, float> {
    nn::Conv2d<float> conv1, conv2;
    ResBlock() = default;
    ResBlock(std::int64_t ch, Generator& g) : conv1(ch, ch, 3, {.padding = 1}, g), conv2(ch, ch, 3, {.padding = 1}, g) {}
    Var<float> operator()(const Var<float>& x) const { return relu(conv2(relu(conv1(x))) + x); }
    template <class V>
    void visit(V& v) {
        v.module("conv1", conv1);
        v.module("conv2", conv2);
    }
};

struct ImageNet : nn::Module<ImageNet, float> {
    nn::Conv2d<float> stem, down;
    ResBlock block1, block2;
    std::vector<nn::Linear<float>> heads;
    ImageNet() = default;
    ImageNet(std::int64_t w, std::size_t tasks, Generator& g)
        : stem(1, w, 3, {.padding = 1}, g), down(w, 2 * w, 3, {.stride = 2, .padding = 1}, g), block1(w, g),
          block2(2 * w, g) {
        for (std::size_t t = 0; t < tasks; ++t) heads.emplace_back(2 * w, 10, nn::LinearOptions{}, g);
    }
    Var<float> forward(const Var<float>& x, std::size_t task) const {
        Var<float> h = max_pool2d(relu(stem(x)), 2);  // [N, W, 14, 14]
        h = block1(h);
        h = block2(relu(down(h)));                     // [N, 2W, 7, 7]
        return heads[task](global_avg_pool(h));        // [N, 10]
    }
    template <class V>
    void visit(V& v) {
        v.module("stem", stem);
        v.module("block1", block1);
        v.module("down", down);
        v.module("block2", block2);
        for (std::size_t t = 0; t < heads.size(); ++t) v.module("head" + std::to_string(t), heads[t]);
    }
};

struct AirNet : nn::Module<AirNet, float> {
    nn::LSTM<float> lstm;
    std::vector<nn::Linear<float>> heads;
    AirNet() = default;
    AirNet(std::int64_t hidden, std::size_t tasks, Generator& g)
        : lstm(kAirFeatures, hidden, {.num_layers = 2, .bidirectional = true}, g) {
        for (std::size_t t = 0; t < tasks; ++t) heads.emplace_back(2 * hidden, 1, nn::LinearOptions{}, g);
    }
    Var<float> forward(const Var<float>& x, std::size_t task) const {
        const auto r = lstm(x);                                      // [B, L, 2H]
        return heads[task](select(r.output, 1, x.size(1) - 1));      // [B, 1]
    }
    template <class V>
    void visit(V& v) {
        v.module("lstm", lstm);
        for (std::size_t t = 0; t < heads.size(); ++t) v.module("head" + std::to_string(t), heads[t]);
    }
};

// ---------------------------------------------------------------- part ----

struct Part {
    std::string name;      // image | airq
    bool regression = false;
    std::string metric;    // "accuracy %" or "RMSE (µg/m³)"
    std::vector<TaskData> tasks;
    evo::GroupingPolicy policy;
    double loss_ref = 0;   // hypervolume reference point: (1, loss_ref)
};

template <class Net>
Var<float> batch_loss(const Net& net, const Part& p, std::size_t task, const Tensor<float>& x,
                      const Tensor<std::int64_t>& c, const Tensor<float>& r) {
    Var<float> out = net.forward(Var<float>(x), task);
    if (!p.regression) return cross_entropy(out, c);
    return mse_loss(reshape(out, {out.size(0)}), Var<float>(r));
}

template <class Net>
double val_loss(const Net& net, const Part& p, std::size_t task) {
    NoGradGuard ng;
    const TaskData& t = p.tasks[task];
    return double(batch_loss(net, p, task, t.x_val, t.c_val, t.r_val).item());
}

// Test metric: accuracy % or RMSE in original units.
template <class Net>
double test_metric(const Net& net, const Part& p, std::size_t task) {
    NoGradGuard ng;
    const TaskData& t = p.tasks[task];
    const std::int64_t n = t.x_test.size(0);
    double acc = 0;
    for (std::int64_t b = 0; b < n; b += 1000) {
        const std::int64_t len = std::min<std::int64_t>(1000, n - b);
        const Tensor<float> out = net.forward(Var<float>(rows(t.x_test, b, b + len)), task).value().contiguous();
        for (std::int64_t i = 0; i < len; ++i) {
            if (p.regression) {
                const double d = double(out.data()[i]) - double(t.r_test.data()[b + i]);
                acc += d * d;
            } else {
                std::int64_t best = 0;
                for (std::int64_t k = 1; k < 10; ++k)
                    if (out.data()[i * 10 + k] > out.data()[i * 10 + best]) best = k;
                acc += best == t.c_test.data()[b + i];
            }
        }
    }
    return p.regression ? std::sqrt(acc / double(n)) * t.scale : 100.0 * acc / double(n);
}

// Trains `net` on the given tasks (one batch of each per step, losses summed).
// `trainable`: parameter names to optimise; `zero_rows`: called after backward
// (to zero masked gradients) and after each step (to re-zero masked values).
template <class Net, class Hook>
void train(Net& net, const Part& p, const std::vector<std::size_t>& tasks, std::int64_t steps,
           std::int64_t steps_per_epoch, double lr, double gamma, std::int64_t batch, std::int64_t max_train,
           Generator& gen, const std::string& label, Hook&& hook, const std::vector<std::string>& skip_prefixes) {
    std::vector<nn::NamedParameter<float>> params;
    for (auto& np : net.named_parameters()) {
        bool skip = false;
        for (const auto& s : skip_prefixes) skip = skip || np.name.rfind(s, 0) == 0;
        if (!skip) params.push_back(np);
    }
    optim::Adam<float> opt(params, {.lr = lr});
    const optim::ExponentialDecay sched{.base = lr, .gamma = gamma, .steps_per_epoch = std::max<std::int64_t>(1, steps_per_epoch)};
    data::ProgressBar bar(steps, label);
    double ema = 0;
    for (std::int64_t s = 0; s < steps; ++s) {
        optim::apply_schedule(opt, sched, s);
        Var<float> loss;
        for (std::size_t task : tasks) {
            const TaskData& t = p.tasks[task];
            const std::int64_t n = std::min(t.x_train.size(0), max_train);
            std::vector<std::int64_t> idx(std::size_t(std::min(batch, n)));
            const Tensor<float> u = rand<float>({std::int64_t(idx.size())}, gen);
            for (std::size_t i = 0; i < idx.size(); ++i)
                idx[i] = std::min<std::int64_t>(n - 1, std::int64_t(double(u.data()[i]) * double(n)));
            Tensor<std::int64_t> c;
            Tensor<float> r;
            if (p.regression) r = gather_rows(t.r_train, idx);
            else c = gather_rows(t.c_train, idx);
            Var<float> l = batch_loss(net, p, task, gather_rows(t.x_train, idx), c, r);
            loss = loss.defined() ? loss + l : l;
        }
        const double lv = loss.item();
        if (!std::isfinite(lv)) throw Error(label + ": loss became " + std::to_string(lv) + " at step " + std::to_string(s));
        opt.zero_grad();
        loss.backward();
        hook(false);
        opt.step();
        hook(true);
        ema = s == 0 ? lv : 0.95 * ema + 0.05 * lv;
        char st[64];
        std::snprintf(st, sizeof st, "loss %.4f", ema);
        bar.update(1, st);
    }
    bar.finish();
}

// Zeroes the rows (values, or gradients) of the groups whose bit is 0.
template <class Net>
void zero_masked(Net& net, const evo::ParameterGroups& groups, const evo::BitGenome& mask, bool grads) {
    std::vector<Var<float>> by_tensor(groups.names.size());
    for (auto& np : net.named_parameters())
        for (std::size_t i = 0; i < groups.names.size(); ++i)
            if (groups.names[i] == np.name) by_tensor[i] = np.var;
    for (std::size_t g = 0; g < groups.size(); ++g) {
        if (mask[g]) continue;
        const auto& gr = groups.groups[g];
        Var<float>& v = by_tensor[gr.tensor];
        if (grads && !v.grad().defined()) continue;
        Tensor<float> t = grads ? v.grad() : v.value();
        const std::int64_t rn = groups.row_numel[gr.tensor];
        std::fill_n(t.data() + gr.row_begin * rn, (gr.row_end - gr.row_begin) * rn, 0.0f);
    }
}

double bit_density(const evo::BitGenome& g) {
    double k = 0;
    for (auto b : g) k += b;
    return g.empty() ? 0 : k / double(g.size());
}

// The MO-MFEA problem: (density, validation loss) of a mask on a task.
template <class Net>
struct MaskProblem {
    struct Shared {
        const Net* proto = nullptr;
        const Part* part = nullptr;
        evo::ParameterGroups groups;
        std::mutex mu;
        std::vector<std::unique_ptr<Net>> all;  // the clones (one per concurrent evaluation)
        std::vector<Net*> free;
    };
    std::shared_ptr<Shared> s;

    std::size_t num_tasks() const { return s->part->tasks.size(); }
    std::vector<double> objectives(std::size_t task, const evo::BitGenome& g) const {
        Net* m = nullptr;
        {
            std::lock_guard<std::mutex> lk(s->mu);
            if (s->free.empty()) {
                s->all.push_back(std::make_unique<Net>(s->proto->clone()));
                m = s->all.back().get();
            } else {
                m = s->free.back();
                s->free.pop_back();
            }
        }
        double loss = 0;
        auto body = [&] {
            evo::MaskGuard guard(*m, s->groups, g);
            loss = val_loss(*m, *s->part, task);
        };
#if POLYMATH_HAS_TBB
        tbb::task_arena alone(1);  // this evaluation's kernels stay on its thread
        alone.execute(body);
#else
        body();
#endif
        {
            std::lock_guard<std::mutex> lk(s->mu);
            s->free.push_back(m);
        }
        if (!std::isfinite(loss)) loss = 1e6;
        return {bit_density(g), loss};
    }
};

struct Row {
    std::string task;
    double pretrained = 0, masked_before = 0, masked_after = 0, full_ft = 0, density = 0, elem_density = 0, val_loss = 0;
    std::size_t front_size = 0;
};

std::string fmt(double v, int prec = 2) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
}

template <class Net>
std::vector<Row> run_part(const Args& a, Part& p, Net& net, std::ostringstream& md) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string pre = a.out + "/" + p.name;
    const std::size_t K = p.tasks.size();
    Generator gen(a.seed * 7919 + (p.name == "image" ? 1 : 2));
    std::vector<std::size_t> all_tasks(K);
    for (std::size_t t = 0; t < K; ++t) all_tasks[t] = t;
    const bool lower_better = p.regression;

    // 1. pretraining (or its checkpoint).
    const std::string ckpt = pre + "_pretrained.ckpt";
    if (a.resume && fs::exists(ckpt)) {
        io::load_checkpoint(ckpt, net);
        std::printf("[%s] resumed the pretrained network from %s\n", p.name.c_str(), ckpt.c_str());
    } else {
        train(net, p, all_tasks, a.pre_steps, 1 << 30, 1e-3, 1.0, a.batch, std::int64_t(1) << 40, gen,
              p.name + " pretrain", [](bool) {}, {});
        io::save_checkpoint(ckpt, net);
    }
    std::printf("[%s] pretrained (%lld parameters) in %.1f s\n", p.name.c_str(), (long long)net.num_parameters(),
                seconds_since(t0));
    std::vector<Row> rows_out(K);
    for (std::size_t t = 0; t < K; ++t) {
        rows_out[t].task = p.tasks[t].name;
        rows_out[t].pretrained = test_metric(net, p, t);
    }

    // 2. MO-MFEA over per-task masks.
    auto shared = std::make_shared<typename MaskProblem<Net>::Shared>();
    shared->proto = &net;
    shared->part = &p;
    shared->groups = evo::make_groups(net, p.policy);
    const evo::ParameterGroups& groups = shared->groups;
    std::printf("[%s] mask groups:\n%s", p.name.c_str(), groups.describe().c_str());
    std::printf("[%s] mask dimension %zu (paper: 18,944 for ResNet-18, 4,096 for the 2x128 BiLSTM)\n", p.name.c_str(),
                groups.size());
    evo::MoMfeaOptions mo;
    mo.population_per_task = std::size_t(a.pop);
    mo.generations = std::size_t(a.gens);
    mo.rmp = a.rmp;
    mo.seed = a.seed;
    mo.threads = a.threads;
    mo.reference_points.assign(K, {1.0, p.loss_ref});
    mo.checkpoint_path = pre + "_population.json";
    evo::MoMfea algo(MaskProblem<Net>{shared},
                     evo::BitVariation{.bits = groups.size(), .init_density = a.init_density}, mo);
    // Hypervolume per generation (kept in <part>_hv.csv; read back on --resume).
    std::vector<std::vector<double>> hv;  // hv[g] = per task
    const std::string hv_path = pre + "_hv.csv";
    auto write_hv = [&] {
        std::ofstream f(hv_path);
        f << "generation";
        for (const auto& t : p.tasks) f << ',' << t.name;
        f << '\n';
        for (std::size_t g = 0; g < hv.size(); ++g) {
            f << g;
            for (double v : hv[g]) f << ',' << v;
            f << '\n';
        }
    };
    bool resumed = false;
    if (a.resume && fs::exists(mo.checkpoint_path)) {
        algo.load(mo.checkpoint_path);
        resumed = true;
        std::ifstream f(hv_path);
        std::string line;
        std::getline(f, line);
        while (std::getline(f, line) && hv.size() <= algo.generation()) {
            auto cells = example::split_list(line);
            std::vector<double> r;
            for (std::size_t i = 1; i < cells.size(); ++i) r.push_back(std::stod(cells[i]));
            if (r.size() == K) hv.push_back(r);
        }
        std::printf("[%s] resumed the population at generation %zu from %s\n", p.name.c_str(), algo.generation(),
                    mo.checkpoint_path.c_str());
    }
    {
        // Generations still to run (+1 for the initial population of a fresh run).
        const std::int64_t todo = resumed ? std::max<std::int64_t>(0, a.gens - std::int64_t(algo.generation())) : a.gens + 1;
        data::ProgressBar bar(todo, p.name + " evolve");
        algo.on_progress([&](const evo::Progress& pr) {
            hv.resize(pr.generation + 1);
            hv[pr.generation] = pr.hypervolume;
            write_hv();
            std::string st = "gen " + std::to_string(pr.generation) + " hv";
            for (double v : pr.hypervolume) st += " " + fmt(v, 3);
            bar.update(1, st);
        });
        algo.run();
        bar.finish();
    }
    std::printf("[%s] evolution: %zu generations, %zu evaluations, %.1f s so far\n", p.name.c_str(), algo.generation(),
                algo.evaluations(), seconds_since(t0));

    // 3. fronts, scored on the test sets with evaluate_masks; the chosen mask per task.
    std::vector<evo::BitGenome> chosen(K);
    for (std::size_t t = 0; t < K; ++t) {
        auto front = algo.front(t);
        std::sort(front.begin(), front.end(), [](const auto& x, const auto& y) { return x.objectives[0] < y.objectives[0]; });
        std::vector<evo::BitGenome> masks;
        for (const auto& m : front) masks.push_back(m.genome);
        const auto test = evo::evaluate_masks(
            net, groups, masks, [&](Net& m, std::size_t) { return test_metric(m, p, t); }, a.threads);
        std::ofstream f(pre + "_front_" + p.tasks[t].name + ".csv");
        f << "density,val_loss,element_density,test_metric\n";
        std::size_t pick = front.size();
        for (std::size_t i = 0; i < front.size(); ++i) {
            f << front[i].objectives[0] << ',' << front[i].objectives[1] << ',' << groups.density(front[i].genome) << ','
              << test[i] << '\n';
            if (front[i].objectives[0] <= a.max_density + 1e-12 &&
                (pick == front.size() || front[i].objectives[1] < front[pick].objectives[1]))
                pick = i;
        }
        if (pick == front.size()) pick = 0;  // none under the threshold: the sparsest
        chosen[t] = front[pick].genome;
        rows_out[t].density = front[pick].objectives[0];
        rows_out[t].val_loss = front[pick].objectives[1];
        rows_out[t].elem_density = groups.density(chosen[t]);
        rows_out[t].masked_before = test[pick];
        rows_out[t].front_size = front.size();
    }

    // 4. fine-tuning per task: masked, and full (baseline).
    for (std::size_t t = 0; t < K; ++t) {
        const std::int64_t n = std::min(p.tasks[t].x_train.size(0), a.ft_train);
        const std::int64_t spe = std::max<std::int64_t>(1, n / a.batch);
        std::vector<std::string> skip;  // other tasks' heads
        for (std::size_t o = 0; o < K; ++o)
            if (o != t) skip.push_back("head" + std::to_string(o) + ".");
        {
            Net m = net.clone();
            zero_masked(m, groups, chosen[t], false);
            Generator g2(a.seed * 31 + t);
            train(m, p, {t}, spe * a.ft_epochs, spe, 5e-4, 0.95, a.batch, n, g2, p.name + " ft masked " + p.tasks[t].name,
                  [&](bool after) { zero_masked(m, groups, chosen[t], !after); }, skip);
            rows_out[t].masked_after = test_metric(m, p, t);
        }
        {
            Net m = net.clone();
            Generator g2(a.seed * 31 + t);
            train(m, p, {t}, spe * a.ft_epochs, spe, 5e-4, 0.95, a.batch, n, g2, p.name + " ft full " + p.tasks[t].name,
                  [](bool) {}, skip);
            rows_out[t].full_ft = test_metric(m, p, t);
        }
    }

    // 5. table.
    const std::string unit = p.metric;
    std::ostringstream tab;
    tab << "| task | pretrained shared | masked, before fine-tune | masked, after fine-tune | full fine-tune | mask density (bits) | "
           "density (elements) | front size |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
    std::ofstream csv(pre + "_table.csv");
    csv << "task,metric,pretrained_shared,masked_before_ft,masked_after_ft,full_ft,mask_density_bits,mask_density_elements,"
           "val_loss,front_size\n";
    for (const auto& r : rows_out) {
        tab << "| " << r.task << " | " << fmt(r.pretrained) << " | " << fmt(r.masked_before) << " | " << fmt(r.masked_after)
            << " | " << fmt(r.full_ft) << " | " << fmt(r.density, 3) << " | " << fmt(r.elem_density, 3) << " | "
            << r.front_size << " |\n";
        csv << r.task << ',' << (lower_better ? "rmse" : "accuracy_pct") << ',' << r.pretrained << ',' << r.masked_before
            << ',' << r.masked_after << ',' << r.full_ft << ',' << r.density << ',' << r.elem_density << ',' << r.val_loss
            << ',' << r.front_size << '\n';
    }
    std::ofstream(pre + "_table.md") << "Metric: " << unit << "\n\n" << tab.str();
    std::printf("\n[%s] %s on the test sets (%s):\n%s\n", p.name.c_str(), unit.c_str(),
                lower_better ? "lower is better" : "higher is better", tab.str().c_str());
    md << "## " << p.name << " — " << unit << " (" << (lower_better ? "lower" : "higher") << " is better)\n\n"
       << "Mask dimension " << groups.size() << " over " << groups.numel() << " parameters; hypervolume reference point (density 1, loss "
       << fmt(p.loss_ref, 3) << "); part time " << fmt(seconds_since(t0), 1) << " s.\n\n"
       << tab.str() << "\n";

    // 6. plots.
    if (example::have_gnuplot()) {
        std::ostringstream gp;
        gp << "set datafile separator ','\nset terminal pngcairo size 900,600\nset key outside right\nset grid\n";
        gp << "set output '" << pre << "_fronts.png'\nset title '" << p.name
           << ": final Pareto fronts (MO-MFEA)'\nset xlabel 'mask density ||beta||_1 / dim'\nset ylabel 'validation loss'\nplot ";
        for (std::size_t t = 0; t < K; ++t)
            gp << (t ? ", " : "") << "'" << pre << "_front_" << p.tasks[t].name << ".csv' every ::1 using 1:2 with linespoints title '"
               << p.tasks[t].name << "'";
        gp << "\nset output '" << pre << "_hv.png'\nset title '" << p.name << ": hypervolume per generation, ref (1, "
           << fmt(p.loss_ref, 3) << ")'\nset xlabel 'generation'\nset ylabel 'hypervolume'\nplot ";
        for (std::size_t t = 0; t < K; ++t)
            gp << (t ? ", " : "") << "'" << hv_path << "' every ::1 using 1:" << t + 2 << " with linespoints title '"
               << p.tasks[t].name << "'";
        gp << "\n";
        const std::string note = example::gnuplot(pre + "_plots", gp.str(), pre + "_fronts.png, " + pre + "_hv.png",
                                                  "the numbers are in the CSV files");
        if (note.rfind("plot: ", 0) != 0) std::printf("[%s] %s\n", p.name.c_str(), note.c_str());
    } else {
        std::printf("[%s] gnuplot not found: no PNG\n", p.name.c_str());
    }
    return rows_out;
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    if (a.threads > 0) set_num_threads(a.threads);
    fs::create_directories(a.out);
    const auto t0 = std::chrono::steady_clock::now();
    std::ostringstream md;
    md << "# evolve_masks results\n\nCommand: `evolve_masks";
    for (int i = 1; i < argc; ++i) md << ' ' << argv[i];
    md << "`; " << num_threads() << " threads, pop " << a.pop << " per task, " << a.gens << " generations, rmp " << a.rmp
       << ", max density " << a.max_density << ", init density " << a.init_density << ", fine-tune " << a.ft_epochs
       << " epoch(s) of at most " << a.ft_train << " examples.\n\n";
    for (const auto& part : a.parts) {
        if (part == "image") {
            Part p;
            p.name = "image";
            p.metric = "accuracy %";
            p.tasks.resize(2);
            load_images(a.data + "/mnist", "mnist", a.val, p.tasks[0]);
            load_images(a.data + "/fashion-mnist", "fashion", a.val, p.tasks[1]);
            p.policy.include = {"stem.weight", "block*.weight", "down.weight"};
            p.loss_ref = std::log(10.0);
            Generator g(a.seed);
            ImageNet net(a.width, 2, g);
            run_part(a, p, net, md);
        } else {
            const char* stations[] = {"Aotizhongxin", "Changping", "Dongsi", "Guanyuan"};
            Part p;
            p.name = "airq";
            p.regression = true;
            p.metric = "RMSE of next-hour PM2.5 (ug/m3)";
            p.tasks.resize(4);
            for (int s = 0; s < 4; ++s)
                load_station(a.data + "/air-quality/PRSA_Data_" + stations[s] + "_20130301-20170228.csv.gz", stations[s],
                             a.val, p.tasks[std::size_t(s)]);
            p.policy.include = {"lstm.weight_*"};
            p.loss_ref = 1.0;  // MSE in standardised units (1 = predicting the training mean)
            Generator g(a.seed + 100);
            AirNet net(a.hidden, 4, g);
            run_part(a, p, net, md);
        }
    }
    std::ofstream(a.out + "/results.md") << md.str();
    std::printf("done in %.1f s; tables, fronts, hypervolumes and plots in %s\n", seconds_since(t0), a.out.c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "evolve_masks: error: %s\n", e.what());
    return 1;
}
