// Checkpoints: round trip of parameters, config and scalars; checksum
// corruption detected; model / dtype mismatches reported; optimizer state
// (a duck-typed fake and the real optim::Adam) resumes bit-identically.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io_test_util.hpp"
#include "polymath/autograd/loss.hpp"
#include "polymath/io/checkpoint.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/optim/adam.hpp"

using namespace polymath;
using io_test::Bytes;

namespace {
doctest::Contains has(const std::string& s) { return doctest::Contains(s.c_str()); }
}  // namespace

namespace {

// A momentum SGD with the optimizer checkpoint interface, independent of optim/.
struct FakeState {
    std::vector<std::pair<std::string, Tensor<float>>> tensors;
    std::map<std::string, std::string> scalars;
};

struct MomentumSGD {
    std::vector<nn::NamedParameter<float>> params;
    std::vector<Tensor<float>> velocity;
    float lr = 0.05f, mu = 0.9f;
    std::int64_t steps = 0;
    bool reject_loads = false;

    explicit MomentumSGD(std::vector<nn::NamedParameter<float>> p) : params(std::move(p)) {
        for (const auto& q : params) velocity.push_back(Tensor<float>::zeros(q.var.shape()));
    }
    void step() {
        for (std::size_t i = 0; i < params.size(); ++i) {
            float* p = params[i].var.value().data();
            const float* g = params[i].var.grad().data();
            float* v = velocity[i].data();
            for (std::int64_t j = 0; j < velocity[i].numel(); ++j) {
                v[j] = mu * v[j] + g[j];
                p[j] -= lr * v[j];
            }
        }
        ++steps;
    }
    FakeState state() const {
        FakeState s;
        for (std::size_t i = 0; i < params.size(); ++i)
            s.tensors.emplace_back(params[i].name + ".velocity", velocity[i].clone());
        s.scalars["steps"] = std::to_string(steps);
        return s;
    }
    void load_state(const FakeState& s) {
        POLYMATH_CHECK(!reject_loads, "MomentumSGD", "refusing this state");
        POLYMATH_CHECK(s.tensors.size() == params.size(), "MomentumSGD", "expected ", params.size(), " tensors");
        for (std::size_t i = 0; i < params.size(); ++i) {
            const std::string want = params[i].name + ".velocity";
            auto it = std::find_if(s.tensors.begin(), s.tensors.end(), [&](const auto& t) { return t.first == want; });
            POLYMATH_CHECK(it != s.tensors.end(), "MomentumSGD", "missing tensor ", want);
            velocity[i].copy_(it->second);
        }
        steps = std::stoll(s.scalars.at("steps"));
    }
};
static_assert(io::CheckpointOptimizer<MomentumSGD>);
static_assert(io::CheckpointOptimizer<optim::Adam<float>>);

struct Data {
    Tensor<float> x, y;
};
Data make_data() {
    Generator g(11);
    return {Tensor<float>::randn({8, 3}, g), Tensor<float>::randn({8, 2}, g)};
}

template <class Opt>
void train(nn::Linear<float>& model, Opt& opt, const Data& d, int steps) {
    for (int s = 0; s < steps; ++s) {
        model.zero_grad();
        Var<float> loss = mse_loss(model(Var<float>(d.x)), Var<float>(d.y));
        loss.backward();
        opt.step();
    }
}

std::vector<float> flat_params(const nn::Linear<float>& m) {
    std::vector<float> out;
    for (const auto& [n, t] : m.state_dict())
        for (float v : t.to_vector()) out.push_back(v);
    return out;
}

nn::Linear<float> make_linear(std::uint64_t seed, std::int64_t in = 3, std::int64_t out = 2, bool bias = true) {
    Generator g(seed);
    return nn::Linear<float>(in, out, {.bias = bias}, g);
}

}  // namespace

TEST_CASE("checkpoint round trip: parameters, config, scalars, format metadata, checksum") {
    io_test::ScratchDir dir("ckpt");
    const std::string path = dir.file("model.safetensors");
    const nn::Linear<float> model = make_linear(1);
    const io::CheckpointExtras extras{R"({"in": 3, "out": 2, "name": "tiny"})", {{"step", "1200"}, {"lr", "0.001"}}};
    io::save_checkpoint(path, model, extras);
    CHECK(dir.listing() == std::vector<std::string>{"model.safetensors"});

    // A plain safetensors file with the documented metadata.
    const io::SafetensorsFile raw = io::load_safetensors(path);
    CHECK(raw.metadata.at("format") == "polymath.checkpoint");
    CHECK(raw.metadata.at("format_version") == "1");
    CHECK(raw.metadata.at("config") == extras.config);
    CHECK(raw.metadata.at("optimizer") == "none");
    CHECK(raw.metadata.at("scalar.step") == "1200");
    CHECK(raw.metadata.at("checksum").rfind("crc32:", 0) == 0);
    CHECK(raw.metadata.at("checksum").size() == 6 + 8);
    CHECK(io::get<float>(raw, "weight").to_vector() == model.weight.value().to_vector());

    nn::Linear<float> fresh = make_linear(2);
    REQUIRE(flat_params(fresh) != flat_params(model));
    const io::CheckpointExtras got = io::load_checkpoint(path, fresh);
    CHECK(flat_params(fresh) == flat_params(model));
    CHECK(got.config == extras.config);
    CHECK(got.scalars == extras.scalars);
    CHECK(io::read_checkpoint_extras(path).scalars.at("step") == "1200");

    // Saving the same thing again gives the same bytes.
    const Bytes first = io_test::read_bytes(path);
    io::save_checkpoint(path, model, extras);
    CHECK(io_test::read_bytes(path) == first);
}

TEST_CASE("checkpoint: the config must be JSON") {
    io_test::ScratchDir dir("ckpt_cfg");
    CHECK_THROWS_WITH_AS(io::save_checkpoint(dir.file("c.safetensors"), make_linear(1), {"{not json", {}}),
                         doctest::Contains("model config is not valid JSON"), Error);
    CHECK(dir.listing().empty());
}

TEST_CASE("checkpoint: a flipped data or metadata byte is a checksum mismatch naming the file") {
    io_test::ScratchDir dir("ckpt_crc");
    const std::string path = dir.file("model.safetensors");
    const nn::Linear<float> model = make_linear(1);
    io::save_checkpoint(path, model, {"{}", {{"step", "7"}}});
    const Bytes good = io_test::read_bytes(path);

    nn::Linear<float> target = make_linear(2);
    const std::vector<float> before = flat_params(target);

    Bytes data_flip = good;
    data_flip.back() ^= std::byte{0x01};  // last byte of the last tensor
    io_test::write_bytes(path, data_flip);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, target), has("'" + path + "' is corrupt: checksum mismatch"), Error);
    CHECK(flat_params(target) == before);  // untouched

    // "scalar.step":"7" -> "8": still valid safetensors, but not what was saved.
    Bytes meta_flip = good;
    const std::string needle = "\"scalar.step\":\"7\"";
    auto it = std::search(meta_flip.begin(), meta_flip.end(), needle.begin(), needle.end(),
                          [](std::byte b, char c) { return b == static_cast<std::byte>(c); });
    REQUIRE(it != meta_flip.end());
    *(it + static_cast<std::ptrdiff_t>(needle.size()) - 2) = std::byte{'8'};
    io_test::write_bytes(path, meta_flip);
    REQUIRE(io::load_safetensors(path).metadata.at("scalar.step") == "8");
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, target), doctest::Contains("checksum mismatch"), Error);
    CHECK_THROWS_WITH_AS(io::read_checkpoint_extras(path), doctest::Contains("checksum mismatch"), Error);
    CHECK(flat_params(target) == before);
}

TEST_CASE("checkpoint: not a checkpoint, wrong version") {
    io_test::ScratchDir dir("ckpt_fmt");
    const std::string path = dir.file("plain.safetensors");
    io::SafetensorsFile f;
    io::put(f, "weight", Tensor<float>::zeros({2, 3}));
    io::save_safetensors(path, f);
    nn::Linear<float> m = make_linear(1);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, m),
                         has("'" + path + "' is not a polymath checkpoint (metadata \"format\" is missing"), Error);
    f.metadata = {{"format", "polymath.checkpoint"}, {"format_version", "2"}};
    io::save_safetensors(path, f);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, m), doctest::Contains("unsupported checkpoint format_version '2'"),
                         Error);
}

TEST_CASE("checkpoint: a different model gets every mismatch listed, and nothing changes") {
    io_test::ScratchDir dir("ckpt_mismatch");
    const std::string path = dir.file("model.safetensors");
    io::save_checkpoint(path, make_linear(1, 3, 2));

    nn::Linear<float> wider = make_linear(2, 4, 2, /*bias=*/false);
    const std::vector<float> before = flat_params(wider);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, wider), has("load_checkpoint: '" + path + "'"), Error);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, wider),
                         doctest::Contains("shape mismatch: 'weight' model [2, 4] vs given [2, 3]"), Error);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, wider), doctest::Contains("unexpected: 'bias'"), Error);
    CHECK(flat_params(wider) == before);

    // Same names and shapes, other dtype: both dtypes named.
    Generator g(3);
    nn::Linear<double> as_double(3, 2, {}, g);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, as_double),
                         doctest::Contains("has dtype F32 (float32), not the requested F64 (float64)"), Error);
}

TEST_CASE("checkpoint with a duck-typed optimizer: state stored under optim., resume is bit-identical") {
    io_test::ScratchDir dir("ckpt_fake");
    const std::string path = dir.file("run.safetensors");
    const Data d = make_data();
    constexpr int N = 5;

    nn::Linear<float> ref = make_linear(1);
    MomentumSGD ref_opt(ref.named_parameters());
    train(ref, ref_opt, d, 2 * N);

    nn::Linear<float> a = make_linear(1);
    MomentumSGD a_opt(a.named_parameters());
    train(a, a_opt, d, N);
    io::save_checkpoint(path, a, {"{}", {{"step", std::to_string(N)}}}, a_opt);

    const io::SafetensorsFile raw = io::load_safetensors(path);
    CHECK(raw.metadata.at("optimizer") == "present");
    CHECK(raw.metadata.at("optim.steps") == std::to_string(N));
    CHECK(raw.contains("optim.weight.velocity"));
    CHECK(raw.contains("optim.bias.velocity"));

    nn::Linear<float> b = make_linear(99);
    MomentumSGD b_opt(b.named_parameters());
    const io::CheckpointExtras got = io::load_checkpoint(path, b, b_opt);
    CHECK(got.scalars.at("step") == std::to_string(N));
    CHECK(b_opt.steps == N);
    train(b, b_opt, d, N);
    CHECK(flat_params(b) == flat_params(ref));
    CHECK(b_opt.velocity[0].to_vector() == ref_opt.velocity[0].to_vector());

    // The model-only load ignores the optimizer tensors.
    nn::Linear<float> c = make_linear(5);
    io::load_checkpoint(path, c);
    CHECK(flat_params(c) == flat_params(a));

    // An optimizer that rejects its state: the model is restored, Error names the file.
    nn::Linear<float> e = make_linear(6);
    const std::vector<float> before = flat_params(e);
    MomentumSGD e_opt(e.named_parameters());
    e_opt.reject_loads = true;
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, e, e_opt),
                         has("'" + path + "': the optimizer rejected its state (model left unchanged)"), Error);
    CHECK(flat_params(e) == before);

    // Asking for optimizer state from a checkpoint saved without one.
    const std::string plain = dir.file("plain.safetensors");
    io::save_checkpoint(plain, a);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(plain, e, e_opt), doctest::Contains("holds no optimizer state"), Error);
}

TEST_CASE("checkpoint resume with optim::Adam: 2N steps == N + save + fresh load + N, bit for bit") {
    io_test::ScratchDir dir("ckpt_adam");
    const std::string path = dir.file("adam.safetensors");
    const Data d = make_data();
    constexpr int N = 6;

    nn::Linear<float> ref = make_linear(1);
    optim::Adam<float> ref_opt(ref.named_parameters(), {.lr = 0.01});
    train(ref, ref_opt, d, 2 * N);

    {
        nn::Linear<float> a = make_linear(1);
        optim::Adam<float> a_opt(a.named_parameters(), {.lr = 0.01});
        train(a, a_opt, d, N);
        io::save_checkpoint(path, a, {R"({"in":3,"out":2})", {{"step", std::to_string(N)}}}, a_opt);
    }

    // A fresh model (other init) and a fresh optimizer (other hyper-parameters:
    // load_state restores the saved ones).
    nn::Linear<float> b = make_linear(42);
    optim::Adam<float> b_opt(b.named_parameters(), {.lr = 0.5});
    const io::CheckpointExtras got = io::load_checkpoint(path, b, b_opt);
    CHECK(got.scalars.at("step") == std::to_string(N));
    CHECK(b_opt.step_count() == N);
    CHECK(b_opt.lr() == 0.01);
    train(b, b_opt, d, N);
    CHECK(flat_params(b) == flat_params(ref));
    CHECK(b_opt.step_count() == ref_opt.step_count());
    const auto sb = b_opt.state(), sr = ref_opt.state();
    REQUIRE(sb.tensors.size() == sr.tensors.size());
    for (std::size_t i = 0; i < sb.tensors.size(); ++i) {
        CHECK(sb.tensors[i].first == sr.tensors[i].first);
        CHECK(sb.tensors[i].second.to_vector() == sr.tensors[i].second.to_vector());
    }
    CHECK(sb.scalars == sr.scalars);
}
