// MultiModel: shapes, parameter names, causality of the decoder, padding
// invariance of the encoder, finite-difference gradients through the whole
// model, greedy vs beam search vs brute force, a short joint training run, and
// the errors users hit (unknown task, vocabulary mismatch, wrong inputs).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <cmath>
#include <functional>
#include <set>

#include "polymath/autograd/grad_check.hpp"
#include "polymath/io.hpp"
#include "polymath/nn/multimodel.hpp"
#include "polymath/optim/adam.hpp"
#include "polymath/polymath.hpp"

using namespace polymath;

namespace {

nn::MultiModelConfig micro() {
    nn::MultiModelConfig c;
    c.hidden = 8;
    c.filter = 8;
    c.layers = 2;
    c.heads = 2;
    c.experts = 3;
    c.k = 2;
    c.large_kernel = 3;
    c.dilation = 2;
    c.dropout = 0.0;
    c.max_target_len = 16;
    return c;
}

std::vector<nn::TaskSpec> micro_tasks(std::int64_t vocab = 7) {
    return {nn::TaskSpec::image_classification("img", 1, 8, 8, 3), nn::TaskSpec::audio_classification("aud", 4, 12, 2),
            nn::TaskSpec::translation("txt", vocab)};
}

template <class T>
void randomize_gates(nn::MultiModel<T>& m, Generator& g) {
    // Zero-initialised gates make every expert tie; a finite difference
    // across a tie would switch experts. Random gates keep routing fixed.
    for (auto* moe : {&m.encoder.moe.moe, &m.decoder.moe.moe})
        Tensor<T>(moe->w_gate.value()).copy_(Tensor<T>::randn(moe->w_gate.shape(), g));
}

Tensor<float> scaled(Tensor<float> t, float s) {
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data()[i] *= s;
    return t;
}

template <class M>
auto param(const M& m, const std::string& name) {
    for (const auto& p : m.named_parameters())
        if (p.name == name) return p.var;
    FAIL("no parameter " << name);
    return m.named_parameters().front().var;
}

Tensor<std::int64_t> ids(std::initializer_list<std::initializer_list<std::int64_t>> rows) {
    const std::int64_t B = std::int64_t(rows.size()), L = std::int64_t(rows.begin()->size());
    Tensor<std::int64_t> t = Tensor<std::int64_t>::zeros({B, L});
    std::int64_t i = 0;
    for (auto r : rows)
        for (auto v : r) t.data()[i++] = v;
    return t;
}

}  // namespace

TEST_CASE("MultiModel gives every task its output shape and names shared and task parameters apart") {
    Generator g(1);
    nn::MultiModel<float> m(micro(), micro_tasks(), g);
    m.eval();
    auto img = m.classify("img", Tensor<float>::randn({2, 1, 8, 8}, g));
    CHECK(img.logits.shape() == Shape{2, 3});
    auto aud = m.classify("aud", Tensor<float>::randn({3, 12, 4}, g));
    CHECK(aud.logits.shape() == Shape{3, 2});
    auto txt = m.teacher_forced("txt", ids({{3, 4, 5, 1}, {6, 1, 0, 0}}), ids({{4, 5, 1}, {3, 1, 0}}));
    CHECK(txt.logits.shape() == Shape{2, 3, 7});
    CHECK(img.moe_stats.size() == 1);  // encoder MoE only
    CHECK(txt.moe_stats.size() == 2);  // encoder + decoder MoE
    CHECK(img.aux_loss.numel() == 1);

    std::set<std::string> names;
    for (const auto& p : m.named_parameters()) names.insert(p.name);
    for (const char* n : {"encoder.blocks.0.steps.0.conv.depthwise", "encoder.attention.attention.in_proj_weight",
                          "encoder.moe.moe.w1", "mixer.conv1.steps.3.norm.weight", "decoder.moe.moe.w_gate",
                          "task_embedding", "tasks.img.image.conv1.weight", "tasks.img.classes.fc.weight",
                          "tasks.aud.audio.res1.c1.conv.depthwise", "tasks.txt.language.embedding.weight"})
        CHECK_MESSAGE(names.count(n) == 1, n);
    // Tied embeddings: no separate output matrix; a text task has no class head.
    CHECK(names.count("tasks.txt.language.output.weight") == 0);
    CHECK(names.count("tasks.txt.classes.fc.weight") == 0);
    CHECK(m.task_embedding.shape() == Shape{3, 8});
}

TEST_CASE("MultiModel decoder is causal: a prefix decode equals the teacher-forced logits") {
    Generator g(2);
    nn::MultiModel<double> m(micro(), micro_tasks(), g);
    randomize_gates(m, g);
    m.eval();
    Tensor<std::int64_t> src = ids({{3, 4, 5, 6, 1}});
    Tensor<std::int64_t> tgt = ids({{5, 2, 6, 4, 1}});
    Tensor<double> full = m.teacher_forced(2, src, tgt).logits.value();
    auto e = m.encode(2, src);
    for (std::int64_t p = 0; p < 5; ++p) {
        Tensor<double> pre = m.decode_prefix(2, e, tgt.narrow(1, 0, p).contiguous()).logits.value();
        REQUIRE(pre.shape() == Shape{1, p + 1, 7});
        for (std::int64_t v = 0; v < 7; ++v) CHECK(pre.at({0, p, v}) == doctest::Approx(full.at({0, p, v})).epsilon(1e-10));
    }
    // Changing a later target token leaves earlier positions unchanged.
    Tensor<std::int64_t> tgt2 = tgt.clone();
    tgt2.data()[3] = 3;
    Tensor<double> other = m.teacher_forced(2, src, tgt2).logits.value();
    for (std::int64_t p = 0; p < 4; ++p)
        for (std::int64_t v = 0; v < 7; ++v) CHECK(other.at({0, p, v}) == doctest::Approx(full.at({0, p, v})).epsilon(1e-12));
    bool changed = false;
    for (std::int64_t v = 0; v < 7; ++v) changed |= std::abs(other.at({0, 4, v}) - full.at({0, 4, v})) > 1e-9;
    CHECK(changed);
}

TEST_CASE("MultiModel source padding does not change the output") {
    Generator g(3);
    nn::MultiModel<double> m(micro(), micro_tasks(), g);
    randomize_gates(m, g);
    m.eval();
    Tensor<std::int64_t> tgt = ids({{5, 2, 1}});
    Tensor<double> a = m.teacher_forced(2, ids({{3, 4, 5, 1}}), tgt).logits.value();
    Tensor<double> b = m.teacher_forced(2, ids({{3, 4, 5, 1, 0, 0, 0}}), tgt).logits.value();
    for (std::int64_t i = 0; i < a.numel(); ++i) CHECK(b.data()[i] == doctest::Approx(a.data()[i]).epsilon(1e-10));
    // In a batch with a longer sentence, the short one decodes the same.
    Tensor<double> c = m.teacher_forced(2, ids({{3, 4, 5, 1, 0, 0}, {6, 6, 5, 4, 3, 1}}), ids({{5, 2, 1}, {4, 4, 1}}))
                           .logits.value();
    for (std::int64_t i = 0; i < a.numel(); ++i) CHECK(c.data()[i] == doctest::Approx(a.data()[i]).epsilon(1e-10));
}

TEST_CASE("MultiModel gradients match finite differences through modality nets, body and MoE") {
    Generator g(4);
    nn::MultiModel<double> m(micro(), micro_tasks(), g);
    randomize_gates(m, g);
    m.eval();  // no noise: routing is a fixed function of the input
    Tensor<double> img = Tensor<double>::randn({2, 1, 8, 8}, g);
    auto r1 = grad_check(
        [&](const std::vector<Var<double>>&) { return m.classify(0, img).logits; },
        {param(m, "tasks.img.image.conv1.weight"), m.encoder.blocks[0].steps[2].conv.depthwise,
         m.encoder.attention.attention.in_proj_weight, m.encoder.moe.moe.w1, m.encoder.moe.moe.w_gate,
         param(m, "tasks.img.classes.fc.weight")},
        {.atol = 1e-5, .rtol = 1e-4});
    CHECK_MESSAGE(r1.ok, r1.report);
    Tensor<std::int64_t> src = ids({{3, 4, 5, 1}, {6, 1, 0, 0}}), tgt = ids({{4, 5, 1}, {3, 1, 0}});
    auto r2 = grad_check(
        [&](const std::vector<Var<double>>&) {
            auto o = m.teacher_forced(2, src, tgt);
            return add(sum(o.logits), o.aux_loss);
        },
        {m.task_embedding, m.mixer.attention.attention.in_proj_weight, m.decoder.blocks[1].steps[3].conv.depthwise,
         m.decoder.moe.moe.w2, m.decoder.moe.moe.w_gate, param(m, "tasks.txt.language.embedding.weight")},
        {.atol = 1e-5, .rtol = 1e-4});
    CHECK_MESSAGE(r2.ok, r2.report);
}

TEST_CASE("beam search with beam 1 is greedy, and a wide beam finds the brute-force best sequence") {
    Generator g(5);
    nn::MultiModelConfig c = micro();
    nn::MultiModel<double> m(c, {nn::TaskSpec::translation("txt", 4)}, g);
    randomize_gates(m, g);
    // Sharpen the output distribution so sequences differ clearly in score.
    {
        Tensor<double> w = m.task_nets[0].language.embedding.weight.value();
        for (std::int64_t i = 0; i < w.numel(); ++i) w.data()[i] *= 4.0;
    }
    m.eval();
    Tensor<std::int64_t> src = ids({{2, 3, 1}, {3, 3, 2}});
    const nn::DecodeOptions o{.max_len = 3, .eos_id = 1, .beam = 1, .alpha = 0.6};
    CHECK(nn::beam_search(m, 0, src, o) == nn::greedy_decode(m, 0, src, o));

    // Brute force over every sequence of <= 3 tokens (vocab {1=EOS, 2, 3}; 0 is padding, never chosen).
    for (std::int64_t b = 0; b < 2; ++b) {
        Tensor<std::int64_t> s = src.narrow(0, b, 1).contiguous();
        auto score = [&](const std::vector<std::int64_t>& seq, bool with_eos) {
            std::vector<std::int64_t> full = seq;
            if (with_eos) full.push_back(1);
            Tensor<std::int64_t> t = Tensor<std::int64_t>::zeros({1, std::int64_t(full.size())});
            for (std::size_t i = 0; i < full.size(); ++i) t.data()[i] = full[i];
            Tensor<double> lp = ops::log_softmax(m.teacher_forced(0, s, t).logits.value(), 2);
            double total = 0;
            for (std::size_t i = 0; i < full.size(); ++i) total += lp.at({0, std::int64_t(i), full[i]});
            return total / std::pow((5.0 + double(full.size())) / 6.0, 0.6);
        };
        double best = -1e300;
        std::vector<std::int64_t> best_seq;
        std::vector<std::vector<std::int64_t>> all = {{}};
        for (int len = 0; len <= 3; ++len) {
            std::vector<std::vector<std::int64_t>> next;
            for (const auto& p : all) {
                if (len < 3) {  // finished with EOS after p
                    const double sc = score(p, true);
                    if (sc > best) best = sc, best_seq = p;
                } else {  // max_len reached without EOS
                    const double sc = score(p, false);
                    if (sc > best) best = sc, best_seq = p;
                }
                if (len < 3)
                    for (std::int64_t v : {0, 2, 3}) {
                        auto q = p;
                        q.push_back(v);
                        next.push_back(q);
                    }
            }
            if (len < 3) all = next;
        }
        nn::DecodeOptions wide = o;
        wide.beam = 16;
        auto got = nn::beam_search(m, 0, s, wide);
        CHECK(got[0] == best_seq);
    }
}

TEST_CASE("MultiModel: a short joint training run lowers the loss of every task") {
    Generator g(6);
    nn::MultiModelConfig c = micro();
    c.hidden = 16;
    c.filter = 16;
    nn::MultiModel<float> m(c, micro_tasks(), g);
    Generator noise(7);
    m.set_generator(&noise);
    m.train();
    optim::Adam<float> opt(m.named_parameters(), {.lr = 3e-3});
    // Learnable synthetic tasks: image class = brightest quadrant row band,
    // audio class = which half of the mel bins is loud, text = copy the source.
    Generator data(8);
    auto image_batch = [&](Tensor<float>& x, Tensor<std::int64_t>& y) {
        x = scaled(Tensor<float>::randn({8, 1, 8, 8}, data), 0.1f);
        y = Tensor<std::int64_t>::empty({8});
        for (std::int64_t b = 0; b < 8; ++b) {
            const std::int64_t cls = b % 3;
            y.data()[b] = cls;
            for (std::int64_t i = 0; i < 8; ++i) x.at({b, 0, std::min<std::int64_t>(cls * 3, 7), i}) += 1.0f;
        }
    };
    auto audio_batch = [&](Tensor<float>& x, Tensor<std::int64_t>& y) {
        x = scaled(Tensor<float>::randn({8, 12, 4}, data), 0.1f);
        y = Tensor<std::int64_t>::empty({8});
        for (std::int64_t b = 0; b < 8; ++b) {
            y.data()[b] = b % 2;
            for (std::int64_t t = 0; t < 12; ++t) x.at({b, t, (b % 2) * 2}) += 1.0f;
        }
    };
    auto text_batch = [&](Tensor<std::int64_t>& s, Tensor<std::int64_t>& t) {
        s = Tensor<std::int64_t>::zeros({8, 5});
        Tensor<float> r = Tensor<float>::rand({8, 4}, data);
        for (std::int64_t b = 0; b < 8; ++b) {
            for (std::int64_t i = 0; i < 4; ++i) s.data()[b * 5 + i] = 2 + std::int64_t(r.data()[b * 4 + i] * 5) % 5;
            s.data()[b * 5 + 4] = 1;
        }
        t = s.clone();
    };
    std::array<double, 3> first{}, last{};
    const int steps = 40;
    for (int step = 0; step < steps; ++step) {
        for (std::size_t task = 0; task < 3; ++task) {
            nn::MultiModelOutput<float> o;
            Var<float> ce;
            if (task == 0 || task == 1) {
                Tensor<float> x;
                Tensor<std::int64_t> y;
                task == 0 ? image_batch(x, y) : audio_batch(x, y);
                o = m.classify(task, x);
                ce = cross_entropy(o.logits, y);
            } else {
                Tensor<std::int64_t> s, t;
                text_batch(s, t);
                o = m.teacher_forced(task, s, t);
                ce = cross_entropy(reshape(o.logits, {-1, 7}), t.reshape({-1}), {.ignore_index = 0});
            }
            opt.zero_grad();
            add(ce, o.aux_loss).backward();
            opt.step();
            if (step < 3) first[task] += ce.item() / 3;
            if (step >= steps - 3) last[task] += ce.item() / 3;
        }
    }
    for (std::size_t t = 0; t < 3; ++t) {
        INFO("task " << t << " loss " << first[t] << " -> " << last[t]);
        CHECK(last[t] < 0.6 * first[t]);
    }
}

TEST_CASE("MultiModel errors name the task, the shapes and the vocabulary") {
    Generator g(9);
    CHECK_THROWS_WITH_AS(nn::MultiModel<float>(micro(), {nn::TaskSpec::translation("a", 7), nn::TaskSpec::translation("a", 7)}, g),
                         doctest::Contains("'a' used twice"), Error);
    nn::MultiModel<float> m(micro(), micro_tasks(), g);
    m.eval();
    CHECK_THROWS_WITH_AS(m.task_index("cifar"), doctest::Contains("unknown task 'cifar' (tasks: img, aud, txt)"), Error);
    CHECK_THROWS_WITH_AS(m.classify("img", Tensor<float>::zeros({2, 3, 8, 8})), doctest::Contains("[B, 1, H, W]"), Error);
    CHECK_THROWS_WITH_AS(m.classify("txt", ids({{3, 1}})), doctest::Contains("does not output classes"), Error);
    CHECK_THROWS_WITH_AS(m.teacher_forced("txt", ids({{3, 9}}), ids({{3, 1}})),
                         doctest::Contains("outside the vocabulary [0, 7)"), Error);
    CHECK_THROWS_WITH_AS(m.classify(7, Tensor<float>::zeros({1, 1, 8, 8})), doctest::Contains("task id 7 out of range"), Error);
    m.train();
    CHECK_THROWS_WITH_AS(nn::greedy_decode(m, 2, ids({{3, 1}})), doctest::Contains("call model.eval() first"), Error);
    nn::TaskSpec bad = nn::TaskSpec::image_classification("x", 1, 0, 8, 10);
    CHECK_THROWS_WITH_AS(nn::MultiModel<float>(micro(), {bad}, g), doctest::Contains("task 'x'"), Error);
}

TEST_CASE("MultiModel checkpoint round trip restores outputs; another config is rejected by name") {
    Generator g(10);
    nn::MultiModel<float> m(micro(), micro_tasks(), g);
    m.eval();
    Tensor<float> img = Tensor<float>::randn({2, 1, 8, 8}, g);
    Tensor<float> before = m.classify("img", img).logits.value().clone();
    const std::string path = (std::filesystem::temp_directory_path() / "polymath_multimodel_ckpt_test.safetensors").string();
    io::save_checkpoint(path, m, {micro().to_json().dump(), {{"step", "7"}}});
    Generator g2(11);
    nn::MultiModel<float> fresh(micro(), micro_tasks(), g2);
    fresh.eval();
    io::CheckpointExtras ex = io::load_checkpoint(path, fresh);
    CHECK(ex.scalars.at("step") == "7");
    Tensor<float> after = fresh.classify("img", img).logits.value();
    for (std::int64_t i = 0; i < before.numel(); ++i) CHECK(after.data()[i] == before.data()[i]);
    // A model with other tasks: the load names the mismatching parameters and changes nothing.
    nn::MultiModel<float> other(micro(), {nn::TaskSpec::translation("txt", 9)}, g2);
    CHECK_THROWS_WITH_AS(io::load_checkpoint(path, other), doctest::Contains("tasks.img"), Error);
    std::remove(path.c_str());
}
