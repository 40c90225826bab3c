// mnist_mlp — trains a two-layer perceptron on real MNIST digits and reports
// loss and accuracy per epoch. The flagship example of the foundation: real
// data from data/mnist (IDX files), autograd, matmul, relu, cross-entropy and
// a plain SGD step, nothing else.
//
//   mnist_mlp [DATA_DIR=data/mnist] [--epochs 10] [--hidden 256] [--batch 64]
//             [--lr 0.1] [--lr-decay 0.9] [--train N] [--threads N] [--seed S]
//
// The learning rate is multiplied by --lr-decay after every epoch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <polymath/data/idx.hpp>
#include <polymath/polymath.hpp>

using namespace polymath;

namespace {

struct Args {
    std::string dir = "data/mnist";
    int epochs = 10, hidden = 256, batch = 64, threads = 0;
    float lr = 0.1f, lr_decay = 0.9f;
    std::int64_t train = -1;
    std::uint64_t seed = 0;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw Error("mnist_mlp: option " + s + " needs a value");
            return argv[++i];
        };
        if (s == "--epochs") a.epochs = std::stoi(val());
        else if (s == "--hidden") a.hidden = std::stoi(val());
        else if (s == "--batch") a.batch = std::stoi(val());
        else if (s == "--lr") a.lr = std::stof(val());
        else if (s == "--lr-decay") a.lr_decay = std::stof(val());
        else if (s == "--train") a.train = std::stoll(val());
        else if (s == "--threads") a.threads = std::stoi(val());
        else if (s == "--seed") a.seed = std::stoull(val());
        else if (s.rfind("--", 0) == 0) throw Error("mnist_mlp: unknown option " + s);
        else a.dir = s;
    }
    return a;
}

// Images as normalised floats [N, 784], labels as int64 [N].
struct Split {
    Tensor<float> x;
    Tensor<std::int64_t> y;
};

Split load(const std::string& dir, bool train, std::int64_t max_items) {
    const auto [images, labels] = data::load_mnist(dir, train, max_items);
    const std::int64_t n = images.dims[0], d = images.dims[1] * images.dims[2];
    Split s{Tensor<float>::empty({n, d}), Tensor<std::int64_t>::empty({n})};
    float* px = s.x.data();
    for (std::int64_t i = 0; i < n * d; ++i) px[i] = (images.data[std::size_t(i)] / 255.0f - 0.1307f) / 0.3081f;
    for (std::int64_t i = 0; i < n; ++i) s.y.data()[i] = labels.data[std::size_t(i)];
    return s;
}

// Rows `idx[b..e)` of x and y copied into a batch.
void gather_batch(const Split& s, const std::vector<std::int64_t>& idx, std::size_t b, std::size_t e, Tensor<float>& bx,
                  Tensor<std::int64_t>& by) {
    const std::int64_t d = s.x.shape()[1], n = static_cast<std::int64_t>(e - b);
    bx = Tensor<float>::empty({n, d});
    by = Tensor<std::int64_t>::empty({n});
    for (std::int64_t r = 0; r < n; ++r) {
        const std::int64_t src = idx[b + std::size_t(r)];
        std::memcpy(bx.data() + r * d, s.x.data() + src * d, sizeof(float) * std::size_t(d));
        by.data()[r] = s.y.data()[src];
    }
}

struct Mlp {
    Var<float> w1, b1, w2, b2;
    Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, Generator& g)
        : w1(randn<float>({in, hidden}, g) * std::sqrt(2.0f / float(in)), true),
          b1(zeros<float>({hidden}), true),
          w2(randn<float>({hidden, out}, g) * std::sqrt(1.0f / float(hidden)), true),
          b2(zeros<float>({out}), true) {}
    Var<float> operator()(const Var<float>& x) const { return matmul(relu(matmul(x, w1) + b1), w2) + b2; }
    std::vector<Var<float>*> parameters() { return {&w1, &b1, &w2, &b2}; }
};

double accuracy(const Mlp& model, const Split& s) {
    NoGradGuard no_grad;
    std::int64_t correct = 0;
    const std::int64_t n = s.x.shape()[0];
    for (std::int64_t b = 0; b < n; b += 1000) {
        const std::int64_t len = std::min<std::int64_t>(1000, n - b);
        const Tensor<std::int64_t> pred = ops::argmax(model(Var<float>(s.x.narrow(0, b, len))).value(), 1);
        for (std::int64_t i = 0; i < len; ++i) correct += pred.data()[i] == s.y.data()[b + i];
    }
    return double(correct) / double(n);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse(argc, argv);
        if (a.threads > 0) set_num_threads(a.threads);
        const Split train = load(a.dir, true, a.train), test = load(a.dir, false, -1);
        std::printf("MNIST: %lld training and %lld test images from %s, %d threads\n",
                    static_cast<long long>(train.x.shape()[0]), static_cast<long long>(test.x.shape()[0]),
                    a.dir.c_str(), num_threads());
        Generator gen(a.seed);
        Mlp model(784, a.hidden, 10, gen);
        std::mt19937_64 shuffle_rng(a.seed);
        std::vector<std::int64_t> order(static_cast<std::size_t>(train.x.shape()[0]));
        std::iota(order.begin(), order.end(), 0);

        std::printf("%5s %8s %10s %10s %10s %8s\n", "epoch", "lr", "train_loss", "train_acc", "test_acc", "seconds");
        float lr = a.lr;
        for (int epoch = 1; epoch <= a.epochs; ++epoch, lr *= a.lr_decay) {
            const auto t0 = std::chrono::steady_clock::now();
            std::shuffle(order.begin(), order.end(), shuffle_rng);
            double loss_sum = 0;
            std::int64_t seen = 0, correct = 0;
            Tensor<float> bx;
            Tensor<std::int64_t> by;
            for (std::size_t b = 0; b < order.size(); b += std::size_t(a.batch)) {
                const std::size_t e = std::min(order.size(), b + std::size_t(a.batch));
                gather_batch(train, order, b, e, bx, by);
                Var<float> logits = model(Var<float>(bx));
                Var<float> loss = cross_entropy(logits, by);
                if (!std::isfinite(loss.item()))
                    throw Error("mnist_mlp: loss became " + std::to_string(loss.item()) + " at epoch " +
                                std::to_string(epoch) + "; lower --lr");
                for (Var<float>* p : model.parameters()) p->zero_grad();
                loss.backward();
                for (Var<float>* p : model.parameters()) ops::add_(p->value(), p->grad(), -lr);  // SGD
                const auto pred = ops::argmax(logits.value(), 1);
                for (std::int64_t i = 0; i < by.numel(); ++i) correct += pred.data()[i] == by.data()[i];
                loss_sum += double(loss.item()) * double(e - b);
                seen += std::int64_t(e - b);
            }
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("%5d %8.4f %10.4f %9.2f%% %9.2f%% %8.2f\n", epoch, double(lr), loss_sum / double(seen),
                        100.0 * double(correct) / double(seen), 100.0 * accuracy(model, test), secs);
            std::fflush(stdout);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
