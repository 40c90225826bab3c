// benchmarks/multimodel_cpu — training throughput of the MultiModel presets
// on the CPU: examples per second of one training step (forward, backward,
// Adam) per task kind, at 1 and 2 threads.
//
// CSV: preset,task,batch,threads,step_ms_median,step_ms_min,examples_per_s
//   step_ms_median  median over passes of the per-pass median
//   examples_per_s  batch / median step time
// Inputs have the real tasks' shapes (MNIST 1x28x28, CIFAR 3x32x32, log-mel
// 80x40, Multi30k-like sentences of 16 source / 18 target subwords) with
// random values: throughput does not depend on the data.
//
//   multimodel_cpu [--preset tiny|base|both] [--threads 1,2] [--passes 3] [--reps 3]
//
// No peer: the same architecture is not available in LibTorch (tensor2tensor's
// MultiModel is TensorFlow 1); see benchmarks/RESULTS.md.
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "polymath/nn/multimodel.hpp"
#include "polymath/optim/adam.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;

namespace {

struct Case {
    std::string task;
    nn::TaskSpec spec;
};

void run_preset(const std::string& preset, const bench::Options& o) {
    nn::MultiModelConfig cfg = preset == "tiny" ? nn::MultiModelConfig::tiny() : nn::MultiModelConfig::base();
    const std::int64_t vocab = preset == "tiny" ? 4000 : 8000;
    const std::int64_t batch = preset == "tiny" ? 32 : 16;
    std::vector<nn::TaskSpec> specs = {nn::TaskSpec::image_classification("mnist", 1, 28, 28, 10),
                                       nn::TaskSpec::image_classification("cifar", 3, 32, 32, 10),
                                       nn::TaskSpec::audio_classification("speech", 40, 80, 10),
                                       nn::TaskSpec::translation("translation", vocab)};
    Generator g(1);
    nn::MultiModel<float> model(cfg, specs, g);
    Generator noise(2);
    model.set_generator(&noise);
    model.train();
    optim::Adam<float> opt(model.named_parameters(), {.lr = 1e-4});
    Generator data(3);
    Tensor<float> mnist = Tensor<float>::randn({batch, 1, 28, 28}, data);
    Tensor<float> cifar = Tensor<float>::randn({batch, 3, 32, 32}, data);
    Tensor<float> speech = Tensor<float>::randn({batch, 80, 40}, data);
    Tensor<std::int64_t> labels = Tensor<std::int64_t>::zeros({batch});
    Tensor<std::int64_t> src = Tensor<std::int64_t>::empty({batch, 16}), tgt = Tensor<std::int64_t>::empty({batch, 18});
    Tensor<float> r = Tensor<float>::rand({batch, 34}, data);
    for (std::int64_t i = 0; i < batch * 16; ++i) src.data()[i] = 3 + std::int64_t(r.data()[i] * float(vocab - 4));
    for (std::int64_t i = 0; i < batch * 18; ++i) tgt.data()[i] = 3 + std::int64_t(r.data()[batch * 16 + i] * float(vocab - 4));
    for (std::int64_t b = 0; b < batch; ++b) labels.data()[b] = b % 10;

    auto step = [&](std::size_t t) {
        nn::MultiModelOutput<float> out;
        Var<float> ce;
        if (t < 3) {
            const Tensor<float>& x = t == 0 ? mnist : t == 1 ? cifar : speech;
            out = model.classify(t, x);
            ce = cross_entropy(out.logits, labels);
        } else {
            out = model.teacher_forced(t, src, tgt);
            ce = cross_entropy(reshape(out.logits, {-1, vocab}), tgt.reshape({-1}), {.ignore_index = 0});
        }
        opt.zero_grad();
        add(ce, out.aux_loss).backward();
        opt.step();
        bench::g_sink = float(ce.item());
    };
    for (int th : o.threads) {
        set_num_threads(th);
        for (std::size_t t = 0; t < specs.size(); ++t) {
            if (!o.filter.empty() && specs[t].name.find(o.filter) == std::string::npos) continue;
            step(t);  // warm-up: allocator pools, thread pool
            std::vector<double> meds;
            double mn = 1e300;
            for (int p = 0; p < o.passes; ++p) {
                std::vector<double> v;
                for (int k = 0; k < o.reps; ++k) v.push_back(bench::time_ms([&] { step(t); }));
                meds.push_back(bench::median(v));
                for (double x : v) mn = std::min(mn, x);
            }
            const double med = bench::median(meds);
            std::printf("%s,%s,%lld,%d,%.2f,%.2f,%.1f\n", preset.c_str(), specs[t].name.c_str(), (long long)batch, th, med,
                        mn, 1000.0 * double(batch) / med);
            std::fflush(stdout);
        }
    }
}

}  // namespace

int main(int argc, char** argv) try {
    std::string preset = "tiny";
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--preset" && i + 1 < argc) preset = argv[++i];
        else rest.push_back(argv[i]);
    }
    bench::Options o = bench::parse(int(rest.size()), rest.data(), "multimodel_cpu");
    if (preset != "tiny" && preset != "base" && preset != "both") throw Error("--preset must be tiny, base or both");
    std::printf("preset,task,batch,threads,step_ms_median,step_ms_min,examples_per_s\n");
    if (preset == "tiny" || preset == "both") run_preset("tiny", o);
    if (preset == "base" || preset == "both") run_preset("base", o);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "multimodel_cpu: error: %s\n", e.what());
    return 1;
}
