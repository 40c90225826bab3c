// multimodel_train — one MultiModel learning several real tasks at once
// ("One Model To Learn Them All", Kaiser et al. 2017), on the bundled data.
//
// Tasks (each with its own modality nets; encoder, mixer, decoder shared):
//   mnist        MNIST digit classification (data/mnist, IDX)
//   speech       spoken-digit classification (data/speech-digits, FSDD WAVs ->
//                log-mel; recordings with take 0-4 are the held-out test set)
//   cifar        CIFAR-10 classification (data/cifar10, binary batches)
//   translation  Multi30k English -> German (data/translation; a BPE vocabulary
//                trained on the training text of both languages)
//
// Batches of the tasks alternate (round robin), one Adam optimizer with the
// tensor2tensor linear-warmup + rsqrt-decay schedule, the MoE balance losses
// added to every task's loss, global-norm gradient clipping, a checkpoint every
// N steps (--resume continues from one). With --single every task is also
// trained alone for the same number of steps, and the joint-vs-single table
// (like the paper's Table 2) is printed and written as Markdown and CSV, with
// training curves (CSV, and PNG when gnuplot is installed) and the MoE
// expert-usage histogram per task.
//
//   multimodel_train [--data data] [--out out/multimodel] [--preset tiny|base]
//                    [--tasks mnist,speech,cifar,translation] [--steps 1000]
//                    [--batch 32] [--lr 2e-3] [--warmup 200] [--single]
//                    [--checkpoint-every 500] [--resume FILE] [--eval-max 10000]
//                    [--bleu-max 1000] [--beam 1] [--vocab 4000] [--seed 1] [--threads N]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <polymath/data/batching.hpp>
#include <polymath/data/bleu.hpp>
#include <polymath/data/bpe.hpp>
#include <polymath/data/progress.hpp>
#include <polymath/data/readers.hpp>
#include <polymath/io.hpp>
#include <polymath/nn/multimodel.hpp>
#include <polymath/optim.hpp>
#include <polymath/polymath.hpp>

#include "example_util.hpp"

using namespace polymath;
using example::write_file;
namespace fs = std::filesystem;

namespace {

struct Args {
    std::string data = "data", out = "out/multimodel", preset = "tiny", resume;
    std::vector<std::string> tasks = {"mnist", "speech", "cifar", "translation"};
    std::int64_t steps = 1000, batch = 32, warmup = 200, checkpoint_every = 500, eval_max = 10000, bleu_max = 1000,
                 beam = 1, vocab = 4000, text_batch = 0;
    double lr = 2e-3;  // peak learning rate, reached at the end of the warmup
    bool single = false;
    std::uint64_t seed = 1;
    int threads = 0;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("option " + s + " needs a value");
            return argv[++i];
        };
        auto num = [&]() -> std::int64_t {
            const std::string v = val();
            try {
                return std::stoll(v);
            } catch (...) {
                throw Error("option " + s + " needs a whole number, got '" + v + "'");
            }
        };
        if (s == "--data") a.data = val();
        else if (s == "--out") a.out = val();
        else if (s == "--preset") a.preset = val();
        else if (s == "--tasks") a.tasks = example::split_list(val());
        else if (s == "--steps") a.steps = num();
        else if (s == "--batch") a.batch = num();
        else if (s == "--text-batch") a.text_batch = num();
        else if (s == "--lr") a.lr = std::stod(val());
        else if (s == "--warmup") a.warmup = num();
        else if (s == "--single") a.single = true;
        else if (s == "--checkpoint-every") a.checkpoint_every = num();
        else if (s == "--resume") a.resume = val();
        else if (s == "--eval-max") a.eval_max = num();
        else if (s == "--bleu-max") a.bleu_max = num();
        else if (s == "--beam") a.beam = num();
        else if (s == "--vocab") a.vocab = num();
        else if (s == "--seed") a.seed = std::uint64_t(num());
        else if (s == "--threads") a.threads = int(num());
        else if (s == "-h" || s == "--help") {
            std::printf("see the comment at the top of examples/multimodel_train.cpp\n");
            std::exit(0);
        } else throw Error("unknown option '" + s + "' (see --help)");
    }
    if (a.preset != "tiny" && a.preset != "base") throw Error("--preset must be tiny or base, got '" + a.preset + "'");
    if (a.steps < 1 || a.batch < 1 || a.warmup < 1) throw Error("--steps, --batch and --warmup must be >= 1");
    for (const auto& t : a.tasks)
        if (t != "mnist" && t != "speech" && t != "cifar" && t != "translation")
            throw Error("unknown task '" + t + "' (tasks: mnist, speech, cifar, translation)");
    if (a.tasks.empty()) throw Error("--tasks is empty");
    if (a.text_batch == 0) a.text_batch = a.batch;
    return a;
}

// ---------------------------------------------------------------- data ----

struct ClassData {
    Tensor<float> x_train, x_test;  // image [N, C, H, W] or audio [N, frames, mels]
    Tensor<std::int64_t> y_train, y_test;
    std::int64_t classes = 10;
};

struct TextData {
    std::vector<std::vector<std::int64_t>> src_train, tgt_train, src_test, tgt_test;
    std::vector<std::string> src_test_text, ref_test;
};

// Per-channel standardisation with the training set's statistics.
void standardize(Tensor<float>& train, Tensor<float>& test, std::int64_t channels) {
    const std::int64_t per = train.numel() / (train.size(0) * channels);
    for (std::int64_t c = 0; c < channels; ++c) {
        double s = 0, s2 = 0, n = 0;
        for (std::int64_t i = 0; i < train.size(0); ++i)
            for (std::int64_t j = 0; j < per; ++j) {
                const double v = train.data()[(i * channels + c) * per + j];
                s += v, s2 += v * v, n += 1;
            }
        const double mean = s / n, sd = std::sqrt(std::max(s2 / n - mean * mean, 1e-12));
        for (Tensor<float>* t : {&train, &test})
            for (std::int64_t i = 0; i < t->size(0); ++i)
                for (std::int64_t j = 0; j < per; ++j) {
                    float& v = t->data()[(i * channels + c) * per + j];
                    v = float((v - mean) / sd);
                }
    }
}

Tensor<float> images_to_float(const Tensor<std::uint8_t>& u8, Shape shape) {
    Tensor<float> f = Tensor<float>::empty(shape);
    for (std::int64_t i = 0; i < f.numel(); ++i) f.data()[i] = float(u8.data()[i]) / 255.0f;
    return f;
}

ClassData load_mnist_task(const std::string& dir) {
    ClassData d;
    auto [tri, trl] = data::load_mnist(dir, true);
    auto [tei, tel] = data::load_mnist(dir, false);
    const std::int64_t ntr = tri.dims[0], nte = tei.dims[0];
    d.x_train = Tensor<float>::empty({ntr, 1, 28, 28});
    d.x_test = Tensor<float>::empty({nte, 1, 28, 28});
    d.y_train = Tensor<std::int64_t>::empty({ntr});
    d.y_test = Tensor<std::int64_t>::empty({nte});
    for (std::int64_t i = 0; i < ntr * 784; ++i) d.x_train.data()[i] = tri.data[std::size_t(i)] / 255.0f;
    for (std::int64_t i = 0; i < nte * 784; ++i) d.x_test.data()[i] = tei.data[std::size_t(i)] / 255.0f;
    for (std::int64_t i = 0; i < ntr; ++i) d.y_train.data()[i] = trl.data[std::size_t(i)];
    for (std::int64_t i = 0; i < nte; ++i) d.y_test.data()[i] = tel.data[std::size_t(i)];
    standardize(d.x_train, d.x_test, 1);
    return d;
}

ClassData load_cifar_task(const std::string& dir) {
    ClassData d;
    data::CifarBatch tr = data::load_cifar10(dir, true), te = data::load_cifar10(dir, false);
    d.x_train = images_to_float(tr.images, {tr.size(), 3, 32, 32});
    d.x_test = images_to_float(te.images, {te.size(), 3, 32, 32});
    d.y_train = tr.labels;
    d.y_test = te.labels;
    standardize(d.x_train, d.x_test, 3);
    return d;
}

// FSDD file names are {digit}_{speaker}_{take}.wav; takes 0-4 are the test set.
constexpr std::int64_t kFrames = 80, kMels = 40;

ClassData load_speech_task(const std::string& dir) {
    struct Item {
        std::string path;
        int digit, take;
    };
    std::vector<Item> items;
    if (!fs::is_directory(dir)) throw Error("speech data folder " + dir + " does not exist");
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (e.path().extension() != ".wav") continue;
        const auto a = name.find('_'), b = name.rfind('_');
        if (a == std::string::npos || b == a) throw Error("speech file " + e.path().string() + ": expected digit_speaker_take.wav");
        items.push_back({e.path().string(), std::stoi(name.substr(0, a)), std::stoi(name.substr(b + 1))});
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
            specs[std::size_t(i)] = data::log_mel_spectrogram(w.samples, o);
        }
    });
    std::int64_t ntr = 0, nte = 0;
    for (const auto& it : items) (it.take < 5 ? nte : ntr) += 1;
    ClassData d;
    d.x_train = Tensor<float>::zeros({ntr, kFrames, kMels});
    d.x_test = Tensor<float>::zeros({nte, kFrames, kMels});
    d.y_train = Tensor<std::int64_t>::empty({ntr});
    d.y_test = Tensor<std::int64_t>::empty({nte});
    std::int64_t itr = 0, ite = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const bool test = items[i].take < 5;
        Tensor<float>& x = test ? d.x_test : d.x_train;
        const std::int64_t row = test ? ite++ : itr++;
        (test ? d.y_test : d.y_train).data()[row] = items[i].digit;
        const Tensor<float>& s = specs[i];
        // Per-utterance normalisation (mean and deviation over time and mel
        // bins), then the first kFrames frames; shorter clips are zero-padded
        // (zero = the utterance's mean after normalisation).
        double m = 0, m2 = 0;
        for (std::int64_t j = 0; j < s.numel(); ++j) m += s.data()[j], m2 += double(s.data()[j]) * s.data()[j];
        m /= double(s.numel());
        const double sd = std::sqrt(std::max(m2 / double(s.numel()) - m * m, 1e-12));
        const std::int64_t frames = std::min<std::int64_t>(kFrames, s.size(0));
        for (std::int64_t t = 0; t < frames; ++t)
            for (std::int64_t c = 0; c < kMels; ++c)
                x.data()[(row * kFrames + t) * kMels + c] = float((s.data()[t * kMels + c] - m) / sd);
    }
    return d;
}

TextData load_translation_task(const std::string& dir, std::int64_t vocab, data::BpeTokenizer& tok, bool train_tok,
                               std::int64_t max_len) {
    auto train = data::read_parallel(dir + "/train.en.gz", dir + "/train.de.gz");
    auto test = data::read_parallel(dir + "/test_2016_flickr.en.gz", dir + "/test_2016_flickr.de.gz");
    if (train_tok) {
        std::vector<std::string> lines;
        lines.reserve(train.size() * 2);
        for (const auto& [en, de] : train) lines.push_back(en), lines.push_back(de);
        tok = data::BpeTokenizer::train(lines, int(vocab));
    }
    TextData t;
    auto enc = [&](const std::string& s) {
        std::vector<std::int64_t> ids;
        for (auto id : tok.encode(s)) ids.push_back(id);
        ids.push_back(tok.eos_id());
        return ids;
    };
    for (const auto& [en, de] : train) {
        auto s = enc(en), g = enc(de);
        if (std::int64_t(s.size()) > max_len || std::int64_t(g.size()) > max_len) continue;
        t.src_train.push_back(std::move(s));
        t.tgt_train.push_back(std::move(g));
    }
    for (const auto& [en, de] : test) {
        t.src_test.push_back(enc(en));
        t.tgt_test.push_back(enc(de));
        t.src_test_text.push_back(en);
        t.ref_test.push_back(de);
    }
    return t;
}

// ------------------------------------------------------------ training ----

struct Task {
    std::string name;
    nn::TaskSpec spec;
    ClassData* cls = nullptr;
    TextData* text = nullptr;
    std::string metric;  // "accuracy" or "BLEU"
};

// Draws training batches. Classification: a reshuffled pass over the data.
// Text: length bucketing as tensor2tensor does — each pass is shuffled, cut
// into chunks of 50 batches, each chunk sorted by length and cut into
// batches, and the batches shuffled: sentences of similar length share a
// batch, so little of the padded batch is padding (about half of a random
// batch of Multi30k sentences would be).
struct Sampler {
    std::vector<std::vector<std::int64_t>> batches;
    std::size_t pos = 0;
    std::vector<std::int64_t> next(std::int64_t n, std::int64_t batch, Generator& g, const TextData* text) {
        if (pos >= batches.size()) {
            batches.clear();
            pos = 0;
            std::vector<std::int64_t> order = data::shuffled_indices(n, g);
            const std::size_t chunk = text ? std::size_t(batch) * 50 : order.size();
            for (std::size_t c = 0; c < order.size(); c += chunk) {
                auto first = order.begin() + std::ptrdiff_t(c);
                auto last = order.begin() + std::ptrdiff_t(std::min(order.size(), c + chunk));
                if (text)
                    std::stable_sort(first, last, [&](std::int64_t x, std::int64_t y) {
                        return text->src_train[std::size_t(x)].size() + text->tgt_train[std::size_t(x)].size() <
                               text->src_train[std::size_t(y)].size() + text->tgt_train[std::size_t(y)].size();
                    });
                for (auto it = first; last - it >= batch; it += batch) batches.emplace_back(it, it + batch);
            }
            if (batches.empty()) throw Error("a task has fewer examples (" + std::to_string(n) + ") than one batch (" +
                                             std::to_string(batch) + ")");
            std::vector<std::int64_t> perm = data::shuffled_indices(std::int64_t(batches.size()), g);
            std::vector<std::vector<std::int64_t>> shuffled;
            for (auto i : perm) shuffled.push_back(std::move(batches[std::size_t(i)]));
            batches = std::move(shuffled);
        }
        return batches[pos++];
    }
};

struct CurvePoint {
    std::string run, task;
    std::int64_t step;
    double loss;
};

struct TaskResult {
    double metric = 0;  // accuracy in % or BLEU
    std::vector<std::int64_t> expert_tokens;  // encoder + decoder MoE, summed over evaluation
    std::vector<std::string> samples;
};

Tensor<std::int64_t> to_index(const std::vector<std::int64_t>& v) { return Tensor<std::int64_t>::from_vector(v); }

template <class M>
Var<float> task_loss(const M& model, std::size_t t, const Task& task, const std::vector<std::int64_t>& idx,
                     nn::MultiModelOutput<float>& out) {
    if (task.cls) {
        Tensor<std::int64_t> ix = to_index(idx);
        out = model.classify(t, ops::index_select(task.cls->x_train, 0, ix));
        return cross_entropy(out.logits, ops::index_select(task.cls->y_train, 0, ix));
    }
    std::vector<std::vector<std::int64_t>> s, g;
    for (auto i : idx) s.push_back(task.text->src_train[std::size_t(i)]), g.push_back(task.text->tgt_train[std::size_t(i)]);
    Tensor<std::int64_t> src = data::pad_sequences(s, 0), tgt = data::pad_sequences(g, 0);
    out = model.teacher_forced(t, src, tgt);
    return cross_entropy(reshape(out.logits, {-1, out.logits.size(-1)}), tgt.reshape({-1}),
                         {.ignore_index = 0, .label_smoothing = 0.1});
}

void add_stats(std::vector<std::int64_t>& acc, const std::vector<nn::MoeStats>& stats) {
    for (const auto& s : stats) {
        if (acc.size() < s.tokens_per_expert.size()) acc.resize(s.tokens_per_expert.size(), 0);
        for (std::size_t e = 0; e < s.tokens_per_expert.size(); ++e) acc[e] += s.tokens_per_expert[e];
    }
}

template <class M>
TaskResult evaluate(M& model, std::size_t t, const Task& task, const Args& a, const data::BpeTokenizer& tok) {
    model.eval();
    NoGradGuard ng;
    TaskResult r;
    if (task.cls) {
        // At most eval_max test examples, evenly strided over the test set (some
        // test files are sorted by class, so a prefix would be biased).
        const std::int64_t total = task.cls->y_test.numel(), n = std::min<std::int64_t>(a.eval_max, total);
        std::vector<std::int64_t> pick(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) pick[std::size_t(i)] = i * total / n;
        std::int64_t correct = 0;
        for (std::int64_t b = 0; b < n; b += 200) {
            const std::int64_t m = std::min<std::int64_t>(200, n - b);
            Tensor<std::int64_t> ix = to_index(std::vector<std::int64_t>(pick.begin() + b, pick.begin() + b + m));
            auto out = model.classify(t, ops::index_select(task.cls->x_test, 0, ix));
            add_stats(r.expert_tokens, out.moe_stats);
            Tensor<std::int64_t> pred = ops::argmax(out.logits.value(), 1);
            for (std::int64_t i = 0; i < m; ++i) correct += pred.data()[i] == task.cls->y_test.data()[ix.data()[i]];
        }
        r.metric = 100.0 * double(correct) / double(n);
    } else {
        const std::int64_t n = std::min<std::int64_t>(a.bleu_max, std::int64_t(task.text->src_test.size()));
        std::vector<std::string> hyps, refs;
        for (std::int64_t b = 0; b < n; b += 50) {
            const std::int64_t m = std::min<std::int64_t>(50, n - b);
            std::vector<std::vector<std::int64_t>> s(task.text->src_test.begin() + b, task.text->src_test.begin() + b + m);
            Tensor<std::int64_t> src = data::pad_sequences(s, 0);
            nn::DecodeOptions o{.max_len = model.config().max_target_len - 1, .eos_id = tok.eos_id(), .beam = a.beam};
            auto out = a.beam > 1 ? nn::beam_search(model, t, src, o) : nn::greedy_decode(model, t, src, o);
            for (std::int64_t i = 0; i < m; ++i) {
                std::vector<std::int32_t> ids(out[std::size_t(i)].begin(), out[std::size_t(i)].end());
                hyps.push_back(tok.decode(ids));
                refs.push_back(task.text->ref_test[std::size_t(b + i)]);
            }
            // Expert usage of the decoder on the references (teacher forced).
            std::vector<std::vector<std::int64_t>> g(task.text->tgt_test.begin() + b, task.text->tgt_test.begin() + b + m);
            add_stats(r.expert_tokens, model.teacher_forced(t, src, data::pad_sequences(g, 0)).moe_stats);
        }
        r.metric = data::corpus_bleu(hyps, refs).score;
        for (std::size_t i = 0; i < std::min<std::size_t>(3, hyps.size()); ++i)
            r.samples.push_back("  en: " + task.text->src_test_text[i] + "\n  de (reference): " + refs[i] +
                                "\n  de (model):     " + hyps[i]);
    }
    model.train();
    return r;
}

std::string config_json(const nn::MultiModelConfig& cfg, const std::vector<Task>& tasks, std::uint64_t tok_fp) {
    nlohmann::json j;
    j["model"] = cfg.to_json();
    j["tasks"] = nlohmann::json::array();
    for (const auto& t : tasks) j["tasks"].push_back(t.spec.to_json());
    j["tokenizer_fingerprint"] = std::to_string(tok_fp);
    return j.dump();
}

// Trains `tasks` jointly (round robin), `a.steps` steps per task; returns one result per task.
std::vector<TaskResult> run(const std::string& run_name, const std::vector<Task>& tasks, const Args& a,
                            const nn::MultiModelConfig& cfg, const data::BpeTokenizer& tok,
                            std::vector<CurvePoint>& curves, bool allow_resume) {
    std::vector<nn::TaskSpec> specs;
    for (const auto& t : tasks) specs.push_back(t.spec);
    Generator init(a.seed);
    nn::MultiModel<float> model(cfg, specs, init);
    Generator noise(a.seed + 1), sampling(a.seed + 2);
    model.set_generator(&noise);
    model.train();
    optim::Adam<float> opt(model.named_parameters(), {.lr = a.lr, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-9});
    const optim::LinearWarmupRsqrtDecay sched{.base = a.lr * std::sqrt(double(a.warmup)), .warmup = a.warmup};
    const std::string config = config_json(cfg, tasks, tok.fingerprint());
    const std::string ckpt = a.out + "/" + run_name + ".ckpt.safetensors";
    std::string last_ckpt = "none saved yet";

    std::int64_t step = 0;
    const std::int64_t total = a.steps * std::int64_t(tasks.size());
    if (allow_resume && !a.resume.empty()) {
        io::CheckpointExtras ex = io::load_checkpoint(a.resume, model, opt);
        if (ex.config != config)
            throw Error("checkpoint " + a.resume + " was written for another config or task list (its config: " +
                        ex.config + ")");
        step = std::stoll(ex.scalars.at("step"));
        last_ckpt = a.resume;
        std::printf("%s: resumed from %s at step %lld\n", run_name.c_str(), a.resume.c_str(), (long long)step);
    }
    std::printf("%s: %zu task(s), %lld steps each, %lld parameters\n", run_name.c_str(), tasks.size(),
                (long long)a.steps, (long long)model.num_parameters());
    std::vector<Sampler> samplers(tasks.size());
    std::vector<double> ema(tasks.size(), -1);
    data::ProgressBar bar(total, run_name);
    bar.update(step);
    for (; step < total; ++step) {
        const std::size_t t = std::size_t(step % std::int64_t(tasks.size()));
        const Task& task = tasks[t];
        const std::int64_t n = task.cls ? task.cls->y_train.numel() : std::int64_t(task.text->src_train.size());
        const auto idx = samplers[t].next(n, task.cls ? a.batch : a.text_batch, sampling, task.text);
        optim::apply_schedule(opt, sched, step + 1);
        nn::MultiModelOutput<float> out;
        Var<float> ce = task_loss(model, t, task, idx, out);
        Var<float> loss = add(ce, out.aux_loss);
        const double lv = loss.item();
        if (!std::isfinite(lv))
            throw Error(run_name + ": loss is " + std::to_string(lv) + " at step " + std::to_string(step) + " (task " +
                        task.name + "); last finite checkpoint: " + last_ckpt);
        opt.zero_grad();
        loss.backward();
        optim::clip_grad_norm_(model.named_parameters(), 1.0);
        opt.step();
        const double c = ce.item();
        ema[t] = ema[t] < 0 ? c : 0.9 * ema[t] + 0.1 * c;
        if ((step / std::int64_t(tasks.size())) % 10 == 0) curves.push_back({run_name, task.name, step / std::int64_t(tasks.size()), ema[t]});
        std::ostringstream st;
        st << task.name << " " << std::fixed;
        st.precision(3);
        st << ema[t];
        bar.update(1, st.str());
        if (a.checkpoint_every > 0 && (step + 1) % a.checkpoint_every == 0) {
            io::save_checkpoint(ckpt, model, {config, {{"step", std::to_string(step + 1)}}}, opt);
            last_ckpt = ckpt;
        }
    }
    bar.finish();
    io::save_checkpoint(ckpt, model, {config, {{"step", std::to_string(total)}}}, opt);
    std::vector<TaskResult> results;
    for (std::size_t t = 0; t < tasks.size(); ++t) results.push_back(evaluate(model, t, tasks[t], a, tok));
    return results;
}

std::string bar_chart(const std::vector<std::int64_t>& v) {
    std::int64_t total = std::accumulate(v.begin(), v.end(), std::int64_t(0)), mx = 1;
    for (auto x : v) mx = std::max(mx, x);
    std::ostringstream o;
    for (std::size_t e = 0; e < v.size(); ++e) {
        o << "    expert " << (e < 10 ? " " : "") << e << " " << std::string(std::size_t(30.0 * double(v[e]) / double(mx)), '#')
          << " " << (total ? 100.0 * double(v[e]) / double(total) : 0.0) << "%\n";
    }
    return o.str();
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    if (a.threads > 0) set_num_threads(a.threads);
    fs::create_directories(a.out);
    nn::MultiModelConfig cfg = a.preset == "tiny" ? nn::MultiModelConfig::tiny() : nn::MultiModelConfig::base();
    const auto t0 = std::chrono::steady_clock::now();

    // Data.
    std::map<std::string, ClassData> cls;
    TextData text;
    data::BpeTokenizer tok;
    std::vector<Task> tasks;
    for (const auto& name : a.tasks) {
        std::printf("loading %s ...\n", name.c_str());
        std::fflush(stdout);
        if (name == "mnist") {
            cls[name] = load_mnist_task(a.data + "/mnist");
            tasks.push_back({name, nn::TaskSpec::image_classification(name, 1, 28, 28, 10), &cls[name], nullptr, "accuracy %"});
        } else if (name == "cifar") {
            cls[name] = load_cifar_task(a.data + "/cifar10");
            tasks.push_back({name, nn::TaskSpec::image_classification(name, 3, 32, 32, 10), &cls[name], nullptr, "accuracy %"});
        } else if (name == "speech") {
            cls[name] = load_speech_task(a.data + "/speech-digits/recordings");
            tasks.push_back({name, nn::TaskSpec::audio_classification(name, kMels, kFrames, 10), &cls[name], nullptr, "accuracy %"});
        } else {
            text = load_translation_task(a.data + "/translation", a.vocab, tok, true, cfg.max_target_len - 1);
            tok.save(a.out + "/tokenizer.bpe");
            tasks.push_back({name, nn::TaskSpec::translation(name, tok.vocab_size()), nullptr, &text, "BLEU"});
        }
    }
    for (const auto& t : tasks) {
        if (t.cls)
            std::printf("  %-12s %6lld train / %5lld test examples\n", t.name.c_str(), (long long)t.cls->y_train.numel(),
                        (long long)t.cls->y_test.numel());
        else
            std::printf("  %-12s %6zu train / %5zu test sentence pairs, BPE vocabulary %d (saved to %s/tokenizer.bpe)\n",
                        t.name.c_str(), t.text->src_train.size(), t.text->src_test.size(), tok.vocab_size(), a.out.c_str());
    }
    std::printf("data ready in %.1f s; model preset '%s' (hidden %lld, filter %lld, layers %lld, heads %lld, experts %lld, k %lld)\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), a.preset.c_str(),
                (long long)cfg.hidden, (long long)cfg.filter, (long long)cfg.layers, (long long)cfg.heads,
                (long long)cfg.experts, (long long)cfg.k);

    std::vector<CurvePoint> curves;
    const auto tj = std::chrono::steady_clock::now();
    std::vector<TaskResult> joint = run("joint", tasks, a, cfg, tok, curves, true);
    const double joint_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tj).count();
    std::vector<TaskResult> single(tasks.size());
    std::vector<double> single_s(tasks.size(), 0);
    if (a.single) {
        for (std::size_t t = 0; t < tasks.size(); ++t) {
            const auto ts = std::chrono::steady_clock::now();
            single[t] = run("single-" + tasks[t].name, {tasks[t]}, a, cfg, tok, curves, false)[0];
            single_s[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
        }
    }

    // Tables.
    std::ostringstream md, csv;
    md << "| task | metric | joint (" << tasks.size() << " tasks) |" << (a.single ? " single task | joint - single |" : "")
       << "\n|---|---|---:|" << (a.single ? "---:|---:|" : "") << "\n";
    csv << "task,metric,joint,single,steps_per_task,preset\n";
    for (std::size_t t = 0; t < tasks.size(); ++t) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "| %s | %s | %.2f |", tasks[t].name.c_str(), tasks[t].metric.c_str(), joint[t].metric);
        md << buf;
        if (a.single) {
            std::snprintf(buf, sizeof buf, " %.2f | %+.2f |", single[t].metric, joint[t].metric - single[t].metric);
            md << buf;
        }
        md << "\n";
        csv << tasks[t].name << "," << tasks[t].metric << "," << joint[t].metric << ","
            << (a.single ? std::to_string(single[t].metric) : "") << "," << a.steps << "," << a.preset << "\n";
    }
    std::ostringstream timing;
    timing << "joint training + evaluation: " << joint_s << " s";
    if (a.single)
        for (std::size_t t = 0; t < tasks.size(); ++t) timing << "; single " << tasks[t].name << ": " << single_s[t] << " s";
    md << "\n" << a.steps << " steps per task, batch " << a.batch << ", preset " << a.preset << ". " << timing.str() << "\n";
    write_file(a.out + "/results.md", md.str());
    write_file(a.out + "/results.csv", csv.str());
    std::ostringstream cv;
    cv << "run,task,step,loss\n";
    // Grouped by run and task: gnuplot draws a line only through consecutive rows.
    std::stable_sort(curves.begin(), curves.end(), [](const CurvePoint& x, const CurvePoint& y) {
        return std::tie(x.run, x.task) < std::tie(y.run, y.task);
    });
    for (const auto& p : curves) cv << p.run << "," << p.task << "," << p.step << "," << p.loss << "\n";
    write_file(a.out + "/curves.csv", cv.str());
    std::ostringstream ex;
    ex << "run,task,expert,tokens\n";

    std::printf("\nMoE expert usage per task (joint model, encoder + decoder MoE layers, on the evaluation data):\n");
    for (std::size_t t = 0; t < tasks.size(); ++t) {
        std::printf("  %s\n%s", tasks[t].name.c_str(), bar_chart(joint[t].expert_tokens).c_str());
        for (std::size_t e = 0; e < joint[t].expert_tokens.size(); ++e)
            ex << "joint," << tasks[t].name << "," << e << "," << joint[t].expert_tokens[e] << "\n";
    }
    write_file(a.out + "/expert_usage.csv", ex.str());
    for (std::size_t t = 0; t < tasks.size(); ++t)
        for (const auto& s : joint[t].samples) std::printf("\n%s translation sample:\n%s\n", tasks[t].name.c_str(), s.c_str());

    // Plots: one PNG of the per-task training curves when gnuplot is present.
    std::string plot_note;
    {
        std::ostringstream gp;
        gp << "set terminal pngcairo size 1200,800 noenhanced\nset datafile separator ','\n"
           << "set output '" << a.out << "/curves.png'\nset multiplot layout 2,2 title 'MultiModel training loss (EMA) per task'\n";
        for (const auto& t : tasks) {
            gp << "set title '" << t.name << "'\nset xlabel 'steps of this task'\nset ylabel 'cross-entropy'\n"
               << "plot '" << a.out << "/curves.csv' using ($2 eq '" << t.name << "' && strcol(1) eq 'joint' ? $3 : 1/0):4 "
               << "with lines title 'joint'";
            if (a.single)
                gp << ", '' using ($2 eq '" << t.name << "' && strcol(1) eq 'single-" << t.name
                   << "' ? $3 : 1/0):4 with lines title 'single'";
            gp << "\n";
        }
        gp << "unset multiplot\n";
        // strcol(2) comparisons: gnuplot needs strcol for string columns.
        std::string script = gp.str();
        for (std::size_t p; (p = script.find("($2 eq")) != std::string::npos;) script.replace(p, 6, "(strcol(2) eq");
        plot_note = example::gnuplot(a.out + "/curves", script, a.out + "/curves.png", "curves are in curves.csv");
    }

    std::printf("\n%s\n", md.str().c_str());
    std::printf("written: %s/results.md, results.csv, curves.csv, expert_usage.csv, tokenizer.bpe, *.ckpt.safetensors\n%s\n",
                a.out.c_str(), plot_note.c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "multimodel_train: error: %s\n", e.what());
    return 1;
}
