// peft_transfer — parameter-efficient transfer of a small ViT pretrained on
// MNIST to Fashion-MNIST and to spoken digits: linear probe, Head2Toe,
// adapters, LoRA (rank 4 and 8), VPT shallow/deep and full fine-tuning,
// side by side (issue #8).
//
// Backbone (built here from polymath layers, so every PEFT method applies):
// a 28x28 image is cut into 16 patches of 7x7 (49 values, row-major), a Linear
// patch embedding (49 -> d) plus a learned position embedding [16, d], `depth`
// pre-LN transformer blocks (h += attention(LN(h)); h += fc2(gelu(fc1(LN(h))))),
// mean over the 16 patch tokens (prompt tokens are not pooled), LayerNorm and a
// Linear head. Pretrained on the bundled MNIST (20k train, 10k test); the
// weights are cached in <out>/backbone.safetensors and reused when the
// config (sizes, seed, epochs, training-set size) matches.
//
// Target tasks (each with a FRESH head, Adam, the same number of epochs and
// batch size for every gradient-trained method):
//   fashion  Fashion-MNIST sample (5k train / 2k test), standardised with the
//            training set's mean and deviation.
//   speech   spoken digits (FSDD, takes 0-4 = test): log-mel [80 frames, 40 mels]
//            (per-utterance standardised, first 80 frames, zero-padded) resized
//            to a 28x28 "image" by adaptive average pooling (time -> 28 rows,
//            mels -> 28 columns, as torch.adaptive_avg_pool2d), then patched
//            like the images.
// Methods:
//   linear     frozen backbone, only the new head trains (on the last layer).
//   head2toe   peft::head2toe on the frozen backbone: taps on the patch
//              embedding, every attention, every MLP hidden layer (fc1) and
//              every block output, each pooled to <= 256 features, groups of 32
//              features; the backbone runs ONCE over train and test, then a
//              group-lasso probe, then probes retrained on a fraction of the
//              groups. The fraction is chosen on a validation split (every 5th
//              training example) and the probe retrained on all training data.
//              Its probes use the library's full-batch proximal gradient
//              (head2toe::ProbeOptions, step --probe-lr 0.1 rather than the
//              library's 0.5, which oscillates on 2,560 standardised features;
//              --probe-steps 300 steps), not Adam.
//   adapter    bottleneck-8 adapters after every attention and every fc2.
//   lora-r4/8  LoRA on the Q and V projections of every attention (alpha 8).
//   vpt-shallow 8 prompt tokens prepended to the patch embeddings.
//   vpt-deep   8 prompt tokens prepended, then new ones replacing them after
//              every block but the last.
//   full       every parameter trains.
// Frozen-backbone methods use --peft-lr (default 3e-3), full fine-tuning and
// pretraining use --lr (default 1e-3).
//
// Output (<out>, default out/peft_transfer): results.md, results.csv,
// head2toe_sweep.csv, accuracy_vs_params.png (gnuplot, when installed).
// "trainable" counts the parameters that receive gradients (new head
// included); "extra storage" is the bytes of parameters a task has to keep
// beyond the shared backbone (= trainable parameters x 4 bytes; for Head2Toe the
// probe plus its standardisation mean and 1/std).
//
//   peft_transfer [--data data] [--out out/peft_transfer] [--epochs 5]
//                 [--pretrain-epochs 4] [--batch 64] [--lr 1e-3] [--peft-lr 3e-3]
//                 [--dim 64] [--depth 3] [--heads 4] [--probe-steps 300] [--probe-lr 0.1]
//                 [--tasks fashion,speech] [--quick] [--threads N] [--seed 1]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <polymath/data/batching.hpp>
#include <polymath/data/progress.hpp>
#include <polymath/data/readers.hpp>
#include <polymath/io.hpp>
#include <polymath/nn.hpp>
#include <polymath/optim.hpp>
#include <polymath/peft.hpp>
#include <polymath/polymath.hpp>

#include "example_util.hpp"

using namespace polymath;
using example::write_file;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kSide = 28, kPatch = 7, kTokens = 16, kPatchDim = kPatch * kPatch;
constexpr std::int64_t kFrames = 80, kMels = 40;

struct Args {
    std::string data = "data", out = "out/peft_transfer";
    std::vector<std::string> tasks = {"fashion", "speech"};
    std::int64_t epochs = 5, pretrain_epochs = 4, batch = 64, dim = 64, depth = 3, heads = 4, probe_steps = 300;
    double lr = 1e-3, peft_lr = 3e-3, probe_lr = 0.1;
    bool quick = false;
    std::uint64_t seed = 1;
    int threads = 0;
};

Args parse(int argc, char** argv) {
    Args a;
    bool epochs_set = false, pre_set = false, steps_set = false;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("option " + s + " needs a value");
            return argv[++i];
        };
        auto num = [&]() -> std::int64_t {
            const std::string v = val();
            try {
                std::size_t used = 0;
                const long long r = std::stoll(v, &used);
                if (used != v.size()) throw 0;
                return r;
            } catch (...) {
                throw Error("option " + s + " needs a whole number, got '" + v + "'");
            }
        };
        auto real = [&]() -> double {
            const std::string v = val();
            try {
                std::size_t used = 0;
                const double r = std::stod(v, &used);
                if (used != v.size()) throw 0;
                return r;
            } catch (...) {
                throw Error("option " + s + " needs a number, got '" + v + "'");
            }
        };
        if (s == "--data") a.data = val();
        else if (s == "--out") a.out = val();
        else if (s == "--tasks") a.tasks = example::split_list(val());
        else if (s == "--epochs") a.epochs = num(), epochs_set = true;
        else if (s == "--pretrain-epochs") a.pretrain_epochs = num(), pre_set = true;
        else if (s == "--batch") a.batch = num();
        else if (s == "--dim") a.dim = num();
        else if (s == "--depth") a.depth = num();
        else if (s == "--heads") a.heads = num();
        else if (s == "--probe-steps") a.probe_steps = num(), steps_set = true;
        else if (s == "--lr") a.lr = real();
        else if (s == "--peft-lr") a.peft_lr = real();
        else if (s == "--probe-lr") a.probe_lr = real();
        else if (s == "--quick") a.quick = true;
        else if (s == "--seed") a.seed = std::uint64_t(num());
        else if (s == "--threads") a.threads = int(num());
        else if (s == "-h" || s == "--help") {
            std::printf("see the comment at the top of examples/peft_transfer.cpp\n");
            std::exit(0);
        } else throw Error("unknown option '" + s + "' (see --help)");
    }
    if (a.quick) {
        if (!epochs_set) a.epochs = 1;
        if (!pre_set) a.pretrain_epochs = 1;
        if (!steps_set) a.probe_steps = 100;
    }
    if (a.epochs < 1 || a.pretrain_epochs < 0 || a.batch < 1 || a.probe_steps < 1)
        throw Error("--epochs, --batch and --probe-steps must be >= 1, --pretrain-epochs >= 0");
    if (a.dim < 8 || a.depth < 1 || a.heads < 1 || a.dim % a.heads != 0)
        throw Error("--dim (>= 8) must be a multiple of --heads, --depth >= 1");
    if (!(a.lr > 0) || !(a.peft_lr > 0) || !(a.probe_lr > 0)) throw Error("--lr, --peft-lr and --probe-lr must be positive");
    if (a.threads < 0) throw Error("--threads must be >= 0");
    if (a.tasks.empty()) throw Error("--tasks is empty");
    for (const auto& t : a.tasks)
        if (t != "fashion" && t != "speech") throw Error("unknown task '" + t + "' (tasks: fashion, speech)");
    return a;
}

// ---------------------------------------------------------------- model ----

// Linear patch embedding + learned position embedding; runs output hooks so
// that VPT prompts go right after it.
struct PatchEmbed : nn::Module<PatchEmbed, float> {
    static constexpr bool runs_output_hooks = true;
    nn::Linear<float> proj;
    Var<float> pos;  // [kTokens, d]
    PatchEmbed() = default;
    PatchEmbed(std::int64_t d, Generator& g)
        : proj(kPatchDim, d, {}, g), pos(nn::init::normal<float>({kTokens, d}, 0.0, 0.02, g), true) {}
    Var<float> forward(const Var<float>& x) const { return add(proj(x), pos); }
    Var<float> operator()(const Var<float>& x) const { return this->run_output_hooks(forward(x)); }
    std::int64_t output_features() const { return proj.out_features(); }
    template <class V>
    void visit(V& v) {
        v.module("proj", proj);
        v.parameter("pos", pos);
    }
};

// Pre-LN transformer block; runs output hooks (VPT-deep replaces prompts on its output).
struct Block : nn::Module<Block, float> {
    static constexpr bool runs_output_hooks = true;
    nn::LayerNorm<float> ln1, ln2;
    nn::MultiheadAttention<float> attention;
    nn::Linear<float> fc1, fc2;
    Block() = default;
    Block(std::int64_t d, std::int64_t heads, Generator& g)
        : ln1(d), ln2(d), attention(d, heads, {}, g), fc1(d, 2 * d, {}, g), fc2(2 * d, d, {}, g) {}
    Var<float> forward(const Var<float>& x) const {
        const Var<float> h = add(x, attention(ln1(x)));
        return add(h, fc2(gelu(fc1(ln2(h)))));
    }
    Var<float> operator()(const Var<float>& x) const { return this->run_output_hooks(forward(x)); }
    std::int64_t output_features() const { return fc2.out_features(); }
    template <class V>
    void visit(V& v) {
        v.module("ln1", ln1);
        v.module("attention", attention);
        v.module("ln2", ln2);
        v.module("fc1", fc1);
        v.module("fc2", fc2);
    }
};

struct ViT : nn::Module<ViT, float> {
    PatchEmbed embed;
    nn::ModuleList<Block> blocks;
    nn::LayerNorm<float> norm;
    nn::Linear<float> head;
    ViT() = default;
    ViT(std::int64_t d, std::int64_t depth, std::int64_t heads, std::int64_t classes, Generator& g)
        : embed(d, g), norm(d), head(d, classes, {}, g) {
        for (std::int64_t i = 0; i < depth; ++i) blocks.push_back(Block(d, heads, g));
    }
    // x [B, 16, 49] -> pooled features [B, d] (mean over the 16 patch tokens, after any prompts).
    Var<float> features(const Var<float>& x) const {
        Var<float> h = embed(x);
        for (const auto& b : blocks) h = b(h);
        return norm(mean(narrow(h, 1, h.size(1) - kTokens, kTokens), {1}));
    }
    Var<float> operator()(const Var<float>& x) const { return head(features(x)); }
    template <class V>
    void visit(V& v) {
        v.module("embed", embed);
        v.module("blocks", blocks);
        v.module("norm", norm);
        v.module("head", head);
    }
};

// ----------------------------------------------------------------- data ----

struct Task {
    std::string name, title;
    Tensor<float> x_train, x_test;  // [N, 16, 49]
    Tensor<std::int64_t> y_train, y_test;
    std::int64_t classes = 10;
};

// [N, 28, 28] -> [N, 16, 49]: token pr*4+pc holds pixel (pr*7+i, pc*7+j) at i*7+j.
Tensor<float> patchify(const Tensor<float>& img) {
    const std::int64_t N = img.size(0);
    Tensor<float> out = Tensor<float>::empty({N, kTokens, kPatchDim});
    const float* s = img.data();
    float* d = out.data();
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t pr = 0; pr < 4; ++pr)
            for (std::int64_t pc = 0; pc < 4; ++pc)
                for (std::int64_t i = 0; i < kPatch; ++i)
                    for (std::int64_t j = 0; j < kPatch; ++j)
                        d[((n * kTokens) + pr * 4 + pc) * kPatchDim + i * kPatch + j] =
                            s[(n * kSide + pr * kPatch + i) * kSide + pc * kPatch + j];
    return out;
}

// Standardises train and test with the training set's mean and deviation (one scalar each).
void standardize(Tensor<float>& train, Tensor<float>& test) {
    double s = 0, s2 = 0;
    for (std::int64_t i = 0; i < train.numel(); ++i) s += train.data()[i], s2 += double(train.data()[i]) * train.data()[i];
    const double m = s / double(train.numel()), sd = std::sqrt(std::max(s2 / double(train.numel()) - m * m, 1e-12));
    for (Tensor<float>* t : {&train, &test})
        for (std::int64_t i = 0; i < t->numel(); ++i) t->data()[i] = float((t->data()[i] - m) / sd);
}

Task load_idx_task(const std::string& name, const std::string& title, const std::string& dir, std::int64_t max_train,
                   std::int64_t max_test) {
    if (!fs::is_directory(dir)) throw Error("data folder " + dir + " does not exist (see --data)");
    auto tr = data::load_mnist(dir, true, max_train);
    auto te = data::load_mnist(dir, false, max_test);
    Task t;
    t.name = name;
    t.title = title;
    auto convert = [](const data::MnistSplit& s, Tensor<float>& x, Tensor<std::int64_t>& y) {
        const std::int64_t n = s.images.dims[0];
        x = Tensor<float>::empty({n, kSide, kSide});
        y = Tensor<std::int64_t>::empty({n});
        for (std::int64_t i = 0; i < n * kSide * kSide; ++i) x.data()[i] = s.images.data[std::size_t(i)] / 255.0f;
        for (std::int64_t i = 0; i < n; ++i) y.data()[i] = s.labels.data[std::size_t(i)];
    };
    convert(tr, t.x_train, t.y_train);
    convert(te, t.x_test, t.y_test);
    standardize(t.x_train, t.x_test);
    t.x_train = patchify(t.x_train);
    t.x_test = patchify(t.x_test);
    return t;
}

// Adaptive average pooling of a [H, W] map to [oh, ow] (torch.adaptive_avg_pool2d bins).
void adaptive_pool2d(const float* src, std::int64_t H, std::int64_t W, float* dst, std::int64_t oh, std::int64_t ow) {
    for (std::int64_t i = 0; i < oh; ++i) {
        const std::int64_t r0 = i * H / oh, r1 = ((i + 1) * H + oh - 1) / oh;
        for (std::int64_t j = 0; j < ow; ++j) {
            const std::int64_t c0 = j * W / ow, c1 = ((j + 1) * W + ow - 1) / ow;
            double acc = 0;
            for (std::int64_t r = r0; r < r1; ++r)
                for (std::int64_t c = c0; c < c1; ++c) acc += src[r * W + c];
            dst[i * ow + j] = float(acc / double((r1 - r0) * (c1 - c0)));
        }
    }
}

// FSDD: {digit}_{speaker}_{take}.wav, takes 0-4 = test. Every `keep`-th file only (--quick).
Task load_speech_task(const std::string& dir, std::int64_t keep) {
    struct Item {
        std::string path;
        int digit, take;
    };
    if (!fs::is_directory(dir)) throw Error("speech data folder " + dir + " does not exist (see --data)");
    std::vector<Item> items;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (e.path().extension() != ".wav") continue;
        const auto a = name.find('_'), b = name.rfind('_');
        if (a == std::string::npos || b == a)
            throw Error("speech file " + e.path().string() + ": expected digit_speaker_take.wav");
        try {
            items.push_back({e.path().string(), std::stoi(name.substr(0, a)), std::stoi(name.substr(b + 1))});
        } catch (...) {
            throw Error("speech file " + e.path().string() + ": expected digit_speaker_take.wav");
        }
        if (items.back().digit < 0 || items.back().digit > 9)
            throw Error("speech file " + e.path().string() + ": digit not in 0..9");
    }
    if (items.empty()) throw Error("no .wav files in " + dir);
    std::sort(items.begin(), items.end(), [](const Item& x, const Item& y) { return x.path < y.path; });
    if (keep > 1) {
        std::vector<Item> sub;
        for (std::size_t i = 0; i < items.size(); i += std::size_t(keep)) sub.push_back(items[i]);
        items = sub;
    }
    std::vector<Tensor<float>> imgs(items.size());
    std::vector<std::string> errors(items.size());
    data::ProgressBar bar(std::int64_t(items.size()), "log-mel");
    for (std::size_t i = 0; i < items.size(); ++i) {
        data::WavAudio w = data::read_wav(items[i].path);
        data::MelOptions o;
        o.sample_rate = w.sample_rate;
        o.fmax = w.sample_rate / 2.0;
        const Tensor<float> s = data::log_mel_spectrogram(w.samples, o);
        double m = 0, m2 = 0;
        for (std::int64_t j = 0; j < s.numel(); ++j) m += s.data()[j], m2 += double(s.data()[j]) * s.data()[j];
        m /= double(s.numel());
        const double sd = std::sqrt(std::max(m2 / double(s.numel()) - m * m, 1e-12));
        std::vector<float> spec(std::size_t(kFrames * kMels), 0.0f);
        const std::int64_t frames = std::min<std::int64_t>(kFrames, s.size(0));
        for (std::int64_t t = 0; t < frames; ++t)
            for (std::int64_t c = 0; c < kMels; ++c)
                spec[std::size_t(t * kMels + c)] = float((s.data()[t * kMels + c] - m) / sd);
        imgs[i] = Tensor<float>::empty({kSide, kSide});
        adaptive_pool2d(spec.data(), kFrames, kMels, imgs[i].data(), kSide, kSide);
        bar.update(1);
    }
    bar.finish();
    std::int64_t ntr = 0, nte = 0;
    for (const auto& it : items) (it.take < 5 ? nte : ntr) += 1;
    Task t;
    t.name = "speech";
    t.title = "spoken digits (FSDD, log-mel -> 28x28)";
    Tensor<float> xtr = Tensor<float>::empty({ntr, kSide, kSide}), xte = Tensor<float>::empty({nte, kSide, kSide});
    t.y_train = Tensor<std::int64_t>::empty({ntr});
    t.y_test = Tensor<std::int64_t>::empty({nte});
    std::int64_t itr = 0, ite = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const bool test = items[i].take < 5;
        const std::int64_t row = test ? ite++ : itr++;
        (test ? t.y_test : t.y_train).data()[row] = items[i].digit;
        std::copy_n(imgs[i].data(), kSide * kSide, (test ? xte : xtr).data() + row * kSide * kSide);
    }
    t.x_train = patchify(xtr);
    t.x_test = patchify(xte);
    return t;
}

// Rows `idx` of x (first axis).
template <class T>
Tensor<T> rows(const Tensor<T>& x, const std::vector<std::int64_t>& idx) {
    return ops::index_select(x, 0, Tensor<std::int64_t>::from_vector(idx)).contiguous();
}

// ------------------------------------------------------------- training ----

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double accuracy(const ViT& m, const Tensor<float>& x, const Tensor<std::int64_t>& y) {
    NoGradGuard ng;
    std::int64_t ok = 0;
    const std::int64_t n = x.size(0);
    for (std::int64_t b = 0; b < n; b += 500) {
        const std::int64_t e = std::min(n, b + 500);
        const Tensor<std::int64_t> pred = ops::argmax(m(Var<float>(x.narrow(0, b, e - b).contiguous())).value(), 1).contiguous();
        for (std::int64_t i = b; i < e; ++i) ok += pred.data()[i - b] == y.data()[i];
    }
    return n > 0 ? double(ok) / double(n) : 0.0;
}

// Adam on the trainable parameters of m for `epochs` epochs; returns the last epoch's mean loss.
double train(ViT& m, const Tensor<float>& x, const Tensor<std::int64_t>& y, std::int64_t epochs, std::int64_t batch,
             double lr, Generator& shuffle, const std::string& label) {
    m.train();
    optim::Adam<float> opt(m.named_parameters(/*trainable_only=*/true), {.lr = lr});
    const std::int64_t n = x.size(0), steps_per_epoch = (n + batch - 1) / batch;
    data::ProgressBar bar(epochs * steps_per_epoch, label);
    double ema = -1, epoch_loss = 0;
    for (std::int64_t ep = 0; ep < epochs; ++ep) {
        const std::vector<std::int64_t> order = data::shuffled_indices(n, shuffle);
        epoch_loss = 0;
        for (std::int64_t b = 0; b < n; b += batch) {
            const std::vector<std::int64_t> idx(order.begin() + b, order.begin() + std::min(n, b + batch));
            Var<float> loss = cross_entropy(m(Var<float>(rows(x, idx))), rows(y, idx));
            const double lv = loss.item();
            if (!std::isfinite(lv)) throw Error(label + ": loss is " + std::to_string(lv) + " in epoch " + std::to_string(ep));
            opt.zero_grad();
            loss.backward();
            opt.step();
            epoch_loss += lv * double(idx.size());
            ema = ema < 0 ? lv : 0.95 * ema + 0.05 * lv;
            char buf[64];
            std::snprintf(buf, sizeof buf, "epoch %lld loss %.3f", (long long)ep + 1, ema);
            bar.update(1, buf);
        }
        epoch_loss /= double(n);
    }
    bar.finish();
    m.eval();
    return epoch_loss;
}

struct Row {
    std::string task, method, note;
    double test_acc = 0, train_s = 0;
    std::int64_t trainable = 0, total = 0, extra_bytes = 0;
};

std::string config_json(const Args& a, std::int64_t n_train) {
    std::ostringstream o;
    o << "{\"model\": \"vit-patch7\", \"dim\": " << a.dim << ", \"depth\": " << a.depth << ", \"heads\": " << a.heads
      << ", \"pretrain_epochs\": " << a.pretrain_epochs << ", \"pretrain_examples\": " << n_train
      << ", \"batch\": " << a.batch << ", \"lr\": " << a.lr << ", \"seed\": " << a.seed << "}";
    return o.str();
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    if (a.threads > 0) set_num_threads(a.threads);
    fs::create_directories(a.out);
    const auto t_all = std::chrono::steady_clock::now();

    // ---- data
    std::printf("loading data from %s ...\n", a.data.c_str());
    std::fflush(stdout);
    Task mnist = load_idx_task("mnist", "MNIST", a.data + "/mnist", a.quick ? 2000 : -1, a.quick ? 1000 : -1);
    std::vector<Task> tasks;
    for (const auto& name : a.tasks) {
        if (name == "fashion")
            tasks.push_back(load_idx_task("fashion", "Fashion-MNIST", a.data + "/fashion-mnist", a.quick ? 1000 : -1,
                                          a.quick ? 500 : -1));
        else
            tasks.push_back(load_speech_task(a.data + "/speech-digits/recordings", a.quick ? 5 : 1));
    }
    std::printf("  %-8s %6lld train / %5lld test (pretraining)\n", "mnist", (long long)mnist.y_train.numel(),
                (long long)mnist.y_test.numel());
    for (const auto& t : tasks)
        std::printf("  %-8s %6lld train / %5lld test\n", t.name.c_str(), (long long)t.y_train.numel(),
                    (long long)t.y_test.numel());

    // ---- backbone: pretrain on MNIST or load the cache
    Generator init(a.seed);
    ViT backbone(a.dim, a.depth, a.heads, 10, init);
    const std::string cache = a.out + "/backbone.safetensors";
    const std::string config = config_json(a, mnist.y_train.numel());
    bool loaded = false;
    if (fs::exists(cache)) {
        try {
            if (io::read_checkpoint_extras(cache).config == config) {
                io::load_checkpoint(cache, backbone);
                loaded = true;
            } else {
                std::printf("cached backbone %s has another config: pretraining again\n", cache.c_str());
            }
        } catch (const std::exception& e) {
            std::printf("cached backbone %s unreadable (%s): pretraining again\n", cache.c_str(), e.what());
        }
    }
    double pretrain_s = 0;
    if (loaded) {
        std::printf("backbone: loaded %s (%lld parameters)\n", cache.c_str(), (long long)backbone.num_parameters());
    } else {
        std::printf("backbone: pretraining on MNIST, %lld epochs, %lld parameters\n", (long long)a.pretrain_epochs,
                    (long long)backbone.num_parameters());
        std::fflush(stdout);
        Generator shuffle(a.seed + 100);
        const auto t0 = std::chrono::steady_clock::now();
        if (a.pretrain_epochs > 0)
            train(backbone, mnist.x_train, mnist.y_train, a.pretrain_epochs, a.batch, a.lr, shuffle, "pretrain");
        pretrain_s = seconds_since(t0);
        io::save_checkpoint(cache, backbone, {config, {{"pretrain_seconds", std::to_string(pretrain_s)}}});
    }
    backbone.eval();
    const double mnist_acc = accuracy(backbone, mnist.x_test, mnist.y_test);
    std::printf("backbone: MNIST test accuracy %.2f%%%s\n", 100 * mnist_acc,
                loaded ? "" : (" (pretraining " + fmt("%.1f", pretrain_s) + " s)").c_str());

    // ---- transfer
    std::vector<Row> table;
    std::ostringstream sweep_csv, sweep_md;
    sweep_csv << "task,fraction,groups_kept,features_kept,probe_params,train_acc,test_acc,chosen\n";
    for (auto& task : tasks) {
        std::printf("\n== %s (%lld train / %lld test) ==\n", task.title.c_str(), (long long)task.y_train.numel(),
                    (long long)task.y_test.numel());
        std::fflush(stdout);
        // One fine-tuning method: a fresh copy of the backbone with a fresh head; setup adds PEFT and freezes.
        auto run_method = [&](const std::string& method, double lr, const std::function<void(ViT&)>& setup,
                              const std::string& note) {
            Generator g(a.seed + 7);
            ViT m = backbone.clone();
            m.head = nn::Linear<float>(a.dim, task.classes, {}, g);
            setup(m);
            Row r;
            r.task = task.name;
            r.method = method;
            r.note = note;
            for (const auto& p : m.named_parameters()) {
                r.total += p.var.numel();
                if (p.var.requires_grad()) r.trainable += p.var.numel();
            }
            r.extra_bytes = r.trainable * std::int64_t(sizeof(float));
            Generator shuffle(a.seed + 200);
            const auto t0 = std::chrono::steady_clock::now();
            train(m, task.x_train, task.y_train, a.epochs, a.batch, lr, shuffle, task.name + " " + method);
            r.train_s = seconds_since(t0);
            r.test_acc = accuracy(m, task.x_test, task.y_test);
            std::printf("  %-12s test %.2f%%  trainable %lld  (%.1f s)\n", method.c_str(), 100 * r.test_acc,
                        (long long)r.trainable, r.train_s);
            std::fflush(stdout);
            table.push_back(r);
        };
        auto peft_freeze = [](ViT& m) {
            peft::freeze_base(m);
            m.head.unfreeze();
        };
        const std::string blocks_but_last = [&] {
            std::string p = "embed";
            for (std::int64_t i = 0; i + 1 < a.depth; ++i) p += "|blocks." + std::to_string(i);
            return p;
        }();

        run_method("linear", a.peft_lr, [](ViT& m) { m.freeze(); m.head.unfreeze(); }, "head only, on the last layer");

        // Head2Toe: the backbone runs once over train and test; everything after works on cached features.
        {
            const auto t0 = std::chrono::steady_clock::now();
            ViT m = backbone.clone();
            auto taps = peft::tap_features(m, "embed|blocks.*|blocks.*.attention|blocks.*.fc1");
            const peft::head2toe::ExtractOptions eo{.target_features = 256, .group_size = 32};
            auto extract = [&](const Tensor<float>& x, const std::string& label) {
                const std::int64_t bs = 250, nb = (x.size(0) + bs - 1) / bs;
                data::ProgressBar bar(nb, label);
                auto f = peft::head2toe::extract(
                    taps, nb,
                    [&](std::int64_t b) {
                        const std::int64_t s = b * bs, e = std::min(x.size(0), s + bs);
                        m(Var<float>(x.narrow(0, s, e - s).contiguous()));
                        bar.update(1);
                    },
                    eo);
                bar.finish();
                return f;
            };
            const auto ftr = extract(task.x_train, task.name + " h2t features (train)");
            const auto fte = extract(task.x_test, task.name + " h2t features (test)");
            const double extract_s = seconds_since(t0);
            // Validation split: every 5th training example.
            std::vector<std::int64_t> fit_idx, val_idx;
            for (std::int64_t i = 0; i < task.y_train.numel(); ++i) (i % 5 == 0 ? val_idx : fit_idx).push_back(i);
            peft::head2toe::Features<float> fit{rows(ftr.x, fit_idx), ftr.groups}, val{rows(ftr.x, val_idx), ftr.groups};
            const std::vector<double> fractions{0.02, 0.05, 0.1, 0.2, 0.5, 1.0};
            peft::head2toe::SweepOptions so;
            so.select.steps = int(a.probe_steps);
            so.final.steps = int(a.probe_steps);
            so.select.lr = a.probe_lr;
            so.final.lr = a.probe_lr;
            std::printf("  head2toe: %lld features in %zu groups from %zu taps (extraction %.1f s); probes on cached features ...\n",
                        (long long)ftr.x.size(1), ftr.groups.size(), taps.size(), extract_s);
            std::fflush(stdout);
            const auto vrows = peft::head2toe::sweep(fit, rows(task.y_train, fit_idx), val, rows(task.y_train, val_idx),
                                                     task.classes, fractions, so);
            std::size_t best = 0;
            for (std::size_t i = 0; i < vrows.size(); ++i)
                if (vrows[i].test_accuracy > vrows[best].test_accuracy) best = i;
            const auto fin = peft::head2toe::sweep(ftr, task.y_train, fte, task.y_test, task.classes, {fractions[best]}, so);
            Row r;
            r.task = task.name;
            r.method = "head2toe";
            r.trainable = fin[0].probe_parameters;
            r.total = backbone.num_parameters() - backbone.head.num_parameters() + r.trainable;
            // probe weights + bias, plus the standardisation (mean, 1/std) of the kept features
            r.extra_bytes = (fin[0].probe_parameters + 2 * fin[0].features_kept) * std::int64_t(sizeof(float));
            r.train_s = seconds_since(t0);
            r.test_acc = fin[0].test_accuracy;
            r.note = "kept " + fmt("%.0f", 100 * fractions[best]) + "% of groups (" + std::to_string(fin[0].features_kept) +
                     " of " + std::to_string(ftr.x.size(1)) + " features), fraction chosen on a validation split";
            std::printf("  %-12s test %.2f%%  trainable %lld  (%.1f s; %s)\n", "head2toe", 100 * r.test_acc,
                        (long long)r.trainable, r.train_s, r.note.c_str());
            table.push_back(r);
            // Informational: every fraction scored on the test set (the choice above used validation only).
            const auto trows = peft::head2toe::sweep(ftr, task.y_train, fte, task.y_test, task.classes, fractions, so);
            sweep_md << "\n### Head2Toe sweep, " << task.title << "\n\nvalidation split (fit on 4/5 of train):\n\n"
                     << peft::head2toe::format_sweep(vrows) << "\nall training data, test set:\n\n"
                     << peft::head2toe::format_sweep(trows);
            for (std::size_t i = 0; i < trows.size(); ++i)
                sweep_csv << task.name << "," << trows[i].fraction << "," << trows[i].groups_kept << ","
                          << trows[i].features_kept << "," << trows[i].probe_parameters << "," << trows[i].train_accuracy
                          << "," << trows[i].test_accuracy << "," << (i == best ? 1 : 0) << "\n";
            taps.remove(m);
        }

        run_method("adapter", a.peft_lr, [&](ViT& m) {
            Generator g(a.seed + 11);
            peft::add_adapters(m, "blocks.*.attention|blocks.*.fc2", {.bottleneck = 8}, g);
            peft_freeze(m);
        }, "bottleneck 8 after every attention and fc2");
        for (std::int64_t r : {4, 8})
            run_method("lora-r" + std::to_string(r), a.peft_lr, [&, r](ViT& m) {
                Generator g(a.seed + 13);
                peft::add_lora(m, "blocks.*.attention", {.rank = r, .alpha = 8}, g);
                peft_freeze(m);
            }, "Q and V of every attention, alpha 8");
        run_method("vpt-shallow", a.peft_lr, [&](ViT& m) {
            Generator g(a.seed + 17);
            peft::add_prompts(m, "embed", {.tokens = 8}, g);
            peft_freeze(m);
        }, "8 prompt tokens after the patch embedding");
        run_method("vpt-deep", a.peft_lr, [&](ViT& m) {
            Generator g(a.seed + 19);
            peft::add_prompts(m, blocks_but_last, {.tokens = 8, .deep = true}, g);
            peft_freeze(m);
        }, "8 new prompt tokens before every block");
        run_method("full", a.lr, [](ViT&) {}, "every parameter");
    }

    // ---- tables
    std::ostringstream md, csv;
    csv << "task,method,test_accuracy,trainable_params,total_params,trainable_percent,extra_bytes,train_seconds,note\n";
    md << "Backbone: ViT (16 patches of 7x7, d " << a.dim << ", " << a.depth << " blocks, " << a.heads << " heads, MLP "
       << 2 * a.dim << "), " << backbone.num_parameters() << " parameters, pretrained on MNIST ("
       << mnist.y_train.numel() << " images, " << a.pretrain_epochs << " epochs): MNIST test accuracy "
       << fmt("%.2f", 100 * mnist_acc) << "%.\nTransfer: " << a.epochs << " epochs, batch " << a.batch
       << ", Adam (lr " << a.peft_lr << " frozen-backbone methods, " << a.lr << " full fine-tuning), seed " << a.seed
       << (a.quick ? ", --quick subsets" : "") << ".\n";
    for (const auto& task : tasks) {
        md << "\n### " << task.title << " (" << task.y_train.numel() << " train / " << task.y_test.numel() << " test)\n\n"
           << "| method | test acc % | trainable params | % of model | extra storage / task | train time s | notes |\n"
           << "|---|---:|---:|---:|---:|---:|---|\n";
        for (const auto& r : table) {
            if (r.task != task.name) continue;
            const double pct = 100.0 * double(r.trainable) / double(r.total);
            md << "| " << r.method << " | " << fmt("%.2f", 100 * r.test_acc) << " | " << r.trainable << " | "
               << fmt("%.2f", pct) << " | " << fmt("%.1f", r.extra_bytes / 1024.0) << " KiB | "
               << fmt("%.1f", r.train_s) << " | " << r.note << " |\n";
            csv << r.task << "," << r.method << "," << r.test_acc << "," << r.trainable << "," << r.total << "," << pct
                << "," << r.extra_bytes << "," << r.train_s << ",\"" << r.note << "\"\n";
        }
    }
    write_file(a.out + "/results.md", md.str() + sweep_md.str());
    write_file(a.out + "/results.csv", csv.str());
    write_file(a.out + "/head2toe_sweep.csv", sweep_csv.str());

    // ---- plot: accuracy vs trainable parameters (log x)
    std::string plot_note;
    {
        std::ostringstream gp;
        gp << "set terminal pngcairo size 1000,640 noenhanced\nset datafile separator ','\n"
           << "set output '" << a.out << "/accuracy_vs_params.png'\n"
           << "set title 'PEFT transfer from an MNIST-pretrained ViT: test accuracy vs trainable parameters'\n"
           << "set logscale x\nset xlabel 'trainable parameters (log scale)'\nset ylabel 'test accuracy %'\n"
           << "set key bottom right\nset grid\n";
        gp << "plot ";
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            const std::string& n = tasks[i].name;
            gp << (i ? ", " : "") << "'" << a.out << "/results.csv' using (strcol(1) eq '" << n
               << "' ? $4 : 1/0):($3*100) with points pt 7 ps 1.5 title '" << tasks[i].title << "', '' using (strcol(1) eq '"
               << n << "' ? $4 : 1/0):($3*100):2 with labels offset 0,1 font ',9' notitle";
        }
        gp << "\n";
        plot_note = example::gnuplot(a.out + "/accuracy_vs_params", gp.str(), a.out + "/accuracy_vs_params.png",
                                     "data in results.csv");
    }

    std::printf("\n%s%s\n", md.str().c_str(), sweep_md.str().c_str());
    std::printf("written: %s/results.md, results.csv, head2toe_sweep.csv, backbone.safetensors\n%s\ntotal %.1f s\n",
                a.out.c_str(), plot_note.c_str(), seconds_since(t_all));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "peft_transfer: error: %s\n", e.what());
    return 1;
}
