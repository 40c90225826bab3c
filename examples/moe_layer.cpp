// moe_layer — a sparsely-gated mixture-of-experts layer learning a real task.
//
// Each MNIST digit (data/mnist) is read as a sequence of 28 tokens (its pixel
// rows, 28 values each). Tokens are embedded (Linear 28 -> d), passed through
// a residual noisy top-k MoE layer (Shazeer et al. 2017) and read by a
// linear classifier over all 28 token outputs. The loss is cross-entropy + the MoE balance losses.
// After every epoch the example prints test accuracy and the routing
// statistics the balance losses act on: tokens per expert, the coefficient of
// variation² of importance and load, and the assignments dropped for capacity.
//
//   moe_layer [DATA_DIR=data/mnist] [--epochs 3] [--experts 8] [--k 2] [--dim 64]
//             [--hidden 128] [--capacity 1.25] [--batch 64] [--lr 2e-3] [--train N] [--seed S]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <polymath/data/idx.hpp>
#include <polymath/nn/linear.hpp>
#include <polymath/nn/moe.hpp>
#include <polymath/optim/adam.hpp>
#include <polymath/polymath.hpp>

using namespace polymath;

namespace {

struct Args {
    std::string dir = "data/mnist";
    int epochs = 3, experts = 8, k = 2, dim = 64, hidden = 128, batch = 64;
    double capacity = 1.25, lr = 2e-3;
    std::int64_t train = -1;
    std::uint64_t seed = 1;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("moe_layer: option " + s + " needs a value");
            return argv[++i];
        };
        if (s == "--epochs") a.epochs = std::stoi(val());
        else if (s == "--experts") a.experts = std::stoi(val());
        else if (s == "--k") a.k = std::stoi(val());
        else if (s == "--dim") a.dim = std::stoi(val());
        else if (s == "--hidden") a.hidden = std::stoi(val());
        else if (s == "--capacity") a.capacity = std::stod(val());
        else if (s == "--batch") a.batch = std::stoi(val());
        else if (s == "--lr") a.lr = std::stod(val());
        else if (s == "--train") a.train = std::stoll(val());
        else if (s == "--seed") a.seed = std::stoull(val());
        else if (s.rfind("--", 0) == 0) throw Error("moe_layer: unknown option " + s);
        else a.dir = s;
    }
    return a;
}

// Images as [N, 28, 28] floats (rows are the tokens), labels int64 [N].
struct Split {
    Tensor<float> x;
    Tensor<std::int64_t> y;
};

Split load(const std::string& dir, bool train, std::int64_t max_items) {
    const auto [images, labels] = data::load_mnist(dir, train, max_items);
    const std::int64_t n = images.dims[0];
    Split s{Tensor<float>::empty({n, 28, 28}), Tensor<std::int64_t>::empty({n})};
    for (std::int64_t i = 0; i < n * 784; ++i) s.x.data()[i] = images.data[std::size_t(i)] / 255.0f;
    for (std::int64_t i = 0; i < n; ++i) s.y.data()[i] = labels.data[std::size_t(i)];
    return s;
}

struct Model : nn::Module<Model, float> {
    nn::Linear<float> embed, head;
    nn::MixtureOfExperts<float> moe;
    Model(const Args& a, Generator& g)
        : embed(28, a.dim, {}, g), head(28 * a.dim, 10, {}, g),
          moe(a.dim, {.num_experts = a.experts, .k = a.k, .hidden = a.hidden, .capacity_factor = a.capacity}, g) {}
    template <class V>
    void visit(V& v) {
        v.module("embed", embed);
        v.module("moe", moe);
        v.module("head", head);
    }
    // x [B, 28, 28] -> logits [B, 10], plus the MoE output (for its losses and stats).
    std::pair<Var<float>, nn::MoeOutput<float>> forward(const Tensor<float>& x) const {
        Var<float> h = relu(embed(Var<float>(x)));
        nn::MoeOutput<float> m = moe(h);
        Var<float> flat = reshape(add(h, m.y), {x.size(0), -1});
        return {head(flat), m};
    }
};

void print_stats(const char* label, const nn::MoeStats& s, std::int64_t assignments) {
    std::printf("  %s tokens/expert [", label);
    for (std::size_t e = 0; e < s.tokens_per_expert.size(); ++e)
        std::printf("%s%lld", e ? " " : "", static_cast<long long>(s.tokens_per_expert[e]));
    std::printf("]  importance CV^2 %.4f  load CV^2 %.4f  dropped %.2f%%\n", s.importance_cv2, s.load_cv2,
                100.0 * double(s.dropped) / double(std::max<std::int64_t>(assignments, 1)));
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    const Split train = load(a.dir, true, a.train), test = load(a.dir, false, -1);
    std::printf("moe_layer: %lld train / %lld test digits as 28 tokens each; %d experts, top-%d, d=%d, hidden=%d, "
                "capacity factor %.2f\n",
                static_cast<long long>(train.y.numel()), static_cast<long long>(test.y.numel()), a.experts, a.k, a.dim,
                a.hidden, a.capacity);
    Generator gen(a.seed);
    Model model(a, gen);
    Generator noise(a.seed + 1);
    model.moe.set_generator(&noise);
    optim::Adam<float> opt(model.named_parameters(), {.lr = a.lr});

    std::vector<std::int64_t> order(std::size_t(train.y.numel()));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(a.seed);
    for (int epoch = 1; epoch <= a.epochs; ++epoch) {
        const auto t0 = std::chrono::steady_clock::now();
        std::shuffle(order.begin(), order.end(), rng);
        model.train();
        double loss_sum = 0, aux_sum = 0;
        int batches = 0;
        nn::MoeStats last;
        for (std::size_t b = 0; b + std::size_t(a.batch) <= order.size(); b += std::size_t(a.batch)) {
            Tensor<std::int64_t> idx = Tensor<std::int64_t>::from_vector(
                std::vector<std::int64_t>(order.begin() + std::ptrdiff_t(b), order.begin() + std::ptrdiff_t(b) + a.batch));
            Tensor<float> bx = ops::index_select(train.x, 0, idx);
            Tensor<std::int64_t> by = ops::index_select(train.y, 0, idx);
            auto [logits, m] = model.forward(bx);
            Var<float> ce = cross_entropy(logits, by);
            Var<float> loss = add(ce, m.aux_loss);
            opt.zero_grad();
            loss.backward();
            opt.step();
            loss_sum += ce.item();
            aux_sum += m.aux_loss.item();
            ++batches;
            last = m.stats;
        }
        // Test accuracy, and routing statistics over the whole test set (eval: no noise).
        model.eval();
        NoGradGuard ng;
        std::int64_t correct = 0;
        nn::MoeStats total;
        total.tokens_per_expert.assign(std::size_t(a.experts), 0);
        for (std::int64_t b = 0; b < test.y.numel(); b += 500) {
            const std::int64_t n = std::min<std::int64_t>(500, test.y.numel() - b);
            auto [logits, m] = model.forward(test.x.narrow(0, b, n).contiguous());
            Tensor<std::int64_t> pred = ops::argmax(logits.value(), 1);
            for (std::int64_t i = 0; i < n; ++i) correct += pred.data()[i] == test.y.data()[b + i];
            for (std::size_t e = 0; e < total.tokens_per_expert.size(); ++e)
                total.tokens_per_expert[e] += m.stats.tokens_per_expert[e];
            total.dropped += m.stats.dropped;
        }
        std::vector<double> tpe(total.tokens_per_expert.begin(), total.tokens_per_expert.end());
        total.load_cv2 = nn::cv_squared(Var<double>(Tensor<double>::from_vector(tpe))).item();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("epoch %d  train CE %.4f  aux %.5f  test acc %.2f%%  (%.1f s)\n", epoch, loss_sum / batches,
                    aux_sum / batches, 100.0 * double(correct) / double(test.y.numel()), secs);
        print_stats("last train batch:", last, std::int64_t(a.batch) * 28 * a.k);
        std::printf("  test set (eval routing): tokens/expert [");
        for (std::size_t e = 0; e < tpe.size(); ++e) std::printf("%s%.0f", e ? " " : "", tpe[e]);
        std::printf("]  CV^2 %.4f  dropped %.2f%%\n", total.load_cv2,
                    100.0 * double(total.dropped) / double(test.y.numel() * 28 * a.k));
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "moe_layer: %s\n", e.what());
    return 1;
}
