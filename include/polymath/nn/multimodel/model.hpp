// polymath/nn/multimodel/model.hpp — MultiModel: one shared body, per-task
// modality nets.
//
//   nn::MultiModel<float> model(nn::MultiModelConfig::tiny(), tasks, gen);
//   auto out = model.classify("mnist", images);            // logits [B, 10]
//   auto out = model.teacher_forced("en_de", src, tgt);    // logits [B, Lt, vocab]
//   Var<float> loss = add(cross_entropy(...), out.aux_loss);
//
// Data flow (DESIGN.md section 3): input modality net of the task -> encoder
// -> (class output) categorical modality on the encoder output, as
// tensor2tensor's multimodel.py does for class-label targets; (text output)
// I-O mixer over the shifted target embeddings whose first position is the
// task's embedding -> decoder -> language modality logits. The MoE balance
// losses of every MoE layer that ran are summed into `aux_loss`.
//
// Parameter names: "encoder.*", "mixer.*", "decoder.*", "task_embedding" (the
// shared body) and "tasks.<task name>.<modality>.*" (per task), so a
// checkpoint, an optimizer or an evolutionary mask can tell shared from task
// parameters by name.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "polymath/autograd/join.hpp"
#include "polymath/autograd/view_ops.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/multimodel/body.hpp"
#include "polymath/nn/multimodel/config.hpp"
#include "polymath/nn/multimodel/modality.hpp"

namespace polymath::nn {

// The modality nets of one task; only those its spec needs are constructed
// (the others stay empty and own no parameters).
template <class T>
class TaskNets : public Module<TaskNets<T>, T> {
public:
    TaskNets() = default;
    TaskNets(const TaskSpec& s, const MultiModelConfig& c, Generator& gen) : spec(s) {
        s.validate();
        if (s.input == InputKind::image) image = ImageModality<T>(s.channels, c.hidden, gen);
        if (s.input == InputKind::audio) audio = AudioModality<T>(s.n_mels, c.hidden, gen);
        if (s.input == InputKind::text || s.output == OutputKind::text)
            language = LanguageModality<T>(s.vocab, c.hidden, c.tie_embeddings, gen);
        if (s.output == OutputKind::classes)
            classes = CategoricalModality<T>(c.hidden, s.num_classes,
                                             c.flatten_classes ? ClassPooling::flatten : ClassPooling::mean,
                                             s.body_length(), gen);
    }
    template <class V>
    void visit(V& v) {
        if (spec.input == InputKind::image) v.module("image", image);
        if (spec.input == InputKind::audio) v.module("audio", audio);
        if (spec.input == InputKind::text || spec.output == OutputKind::text) v.module("language", language);
        if (spec.output == OutputKind::classes) v.module("classes", classes);
    }
    TaskSpec spec;
    ImageModality<T> image;
    AudioModality<T> audio;
    LanguageModality<T> language;
    CategoricalModality<T> classes;
};

template <class T>
struct MultiModelOutput {
    Var<T> logits;                    // [B, classes] or [B, Lt, vocab]
    Var<T> aux_loss;                  // scalar: the MoE balance losses of this pass
    std::vector<MoeStats> moe_stats;  // per MoE layer that ran (encoder, then decoder)
};

// The encoder's output for one batch, reusable across decoding steps.
template <class T>
struct Encoded {
    Var<T> h;                      // [B, L, hidden]
    Tensor<std::uint8_t> padding;  // [B, L] nonzero = padding, or undefined
    BodyAux<T> aux;
};

template <class T>
class MultiModel : public Module<MultiModel<T>, T> {
public:
    MultiModel() = default;
    MultiModel(const MultiModelConfig& c, const std::vector<TaskSpec>& tasks, Generator& gen = default_generator())
        : encoder(checked(c), gen), mixer(c, gen), decoder(c, gen) {
        cfg_ = c;
        POLYMATH_CHECK(!tasks.empty(), "nn::MultiModel", "needs at least one task");
        for (std::size_t i = 0; i < tasks.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                POLYMATH_CHECK(tasks[i].name != tasks[j].name, "nn::MultiModel", "task name '", tasks[i].name,
                               "' used twice");
        task_embedding = Var<T>(init::normal<T>({std::int64_t(tasks.size()), c.hidden}, 0.0,
                                                1.0 / std::sqrt(double(c.hidden)), gen),
                                true);
        for (const auto& t : tasks) task_nets.push_back(TaskNets<T>(t, c, gen));
    }

    const MultiModelConfig& config() const noexcept { return cfg_; }
    std::size_t num_tasks() const noexcept { return task_nets.size(); }
    const TaskSpec& task(std::size_t i) const { return nets(i).spec; }

    // The index of a task by name; an unknown name is an Error listing the known ones.
    std::size_t task_index(const std::string& name) const {
        std::string known;
        for (std::size_t i = 0; i < task_nets.size(); ++i) {
            if (task_nets[i].spec.name == name) return i;
            known += (i ? ", " : "") + task_nets[i].spec.name;
        }
        throw Error("nn::MultiModel: unknown task '" + name + "' (tasks: " + known + ")");
    }

    // Inputs of image/audio tasks: floats in the task's layout.
    Encoded<T> encode(std::size_t t, const Tensor<T>& x) const {
        const TaskNets<T>& n = nets(t);
        Encoded<T> e;
        if (n.spec.input == InputKind::image) e.h = n.image(Var<T>(x));
        else if (n.spec.input == InputKind::audio) e.h = n.audio(Var<T>(x));
        else throw Error("nn::MultiModel: task '" + n.spec.name + "' takes token ids, not a float tensor");
        e.h = encoder.forward(e.h, Var<T>(), Tensor<std::uint8_t>(), e.aux);
        return e;
    }
    // Inputs of text tasks: ids [B, L], 0 = padding.
    Encoded<T> encode(std::size_t t, const Tensor<std::int64_t>& ids) const {
        const TaskNets<T>& n = nets(t);
        POLYMATH_CHECK(n.spec.input == InputKind::text, "nn::MultiModel", "task '", n.spec.name,
                       "' does not take token ids");
        POLYMATH_CHECK(ids.dim() == 2 && ids.size(1) >= 1, "nn::MultiModel", "source ids ", ids.shape(),
                       " must be [B, L]");
        check_ids(ids, n.spec.vocab, "source");
        Encoded<T> e;
        const std::int64_t B = ids.size(0), L = ids.size(1);
        Tensor<std::int64_t> c = ids.contiguous();
        e.padding = Tensor<std::uint8_t>::empty({B, L});
        Tensor<T> mask = Tensor<T>::empty({B, L, 1});
        bool any = false;
        for (std::int64_t i = 0; i < B * L; ++i) {
            const bool pad = c.data()[i] == 0;
            e.padding.data()[i] = pad;
            mask.data()[i] = pad ? T(0) : T(1);
            any |= pad;
        }
        if (!any) e.padding = Tensor<std::uint8_t>();
        e.h = encoder.forward(n.language.embed(c), any ? Var<T>(mask) : Var<T>(), e.padding, e.aux);
        return e;
    }

    // Class logits [B, classes] for an image/audio classification task.
    template <class Input>
    MultiModelOutput<T> classify(std::size_t t, const Input& x) const {
        const TaskNets<T>& n = nets(t);
        POLYMATH_CHECK(n.spec.output == OutputKind::classes, "nn::MultiModel", "task '", n.spec.name,
                       "' does not output classes");
        Encoded<T> e = encode(t, x);
        return finish(n.classes(e.h), e.aux);
    }
    template <class Input>
    MultiModelOutput<T> classify(const std::string& task, const Input& x) const { return classify(task_index(task), x); }

    // Teacher-forced logits [B, Lt, vocab] of a text-output task: position i
    // predicts targets[:, i] from the task token and targets[:, < i].
    MultiModelOutput<T> teacher_forced(std::size_t t, const Tensor<std::int64_t>& src,
                                       const Tensor<std::int64_t>& tgt) const {
        Encoded<T> e = encode(t, src);
        return decode(t, e, tgt, /*shift=*/true);
    }
    MultiModelOutput<T> teacher_forced(const std::string& task, const Tensor<std::int64_t>& src,
                                       const Tensor<std::int64_t>& tgt) const {
        return teacher_forced(task_index(task), src, tgt);
    }

    // Logits [B, P + 1, vocab] after the decoder read the task token and
    // `prefix` [B, P] (P may be 0): the last position predicts the next token.
    MultiModelOutput<T> decode_prefix(std::size_t t, const Encoded<T>& e, const Tensor<std::int64_t>& prefix) const {
        return decode(t, e, prefix, /*shift=*/false);
    }

    void set_generator(Generator* g) {
        encoder.set_generator(g);
        mixer.set_generator(g);
        decoder.set_generator(g);
    }

    template <class V>
    void visit(V& v) {
        v.module("encoder", encoder);
        v.module("mixer", mixer);
        v.module("decoder", decoder);
        v.parameter("task_embedding", task_embedding);
        for (auto& n : task_nets) v.module("tasks." + n.spec.name, n);
    }

    Encoder<T> encoder;
    Mixer<T> mixer;
    Decoder<T> decoder;
    Var<T> task_embedding;  // [tasks, hidden]
    ModuleList<TaskNets<T>> task_nets;

private:
    static const MultiModelConfig& checked(const MultiModelConfig& c) {
        c.validate();
        return c;
    }
    const TaskNets<T>& nets(std::size_t t) const {
        POLYMATH_CHECK(t < task_nets.size(), "nn::MultiModel", "task id ", t, " out of range for ", task_nets.size(),
                       " tasks");
        return task_nets[t];
    }
    static void check_ids(const Tensor<std::int64_t>& ids, std::int64_t vocab, const char* what) {
        Tensor<std::int64_t> c = ids.contiguous();
        for (std::int64_t i = 0; i < c.numel(); ++i)
            POLYMATH_CHECK(c.data()[i] >= 0 && c.data()[i] < vocab, "nn::MultiModel", what, " id ", c.data()[i],
                           " at flat position ", i, " outside the vocabulary [0, ", vocab,
                           ") — tokenizer and model vocabularies differ?");
    }
    MultiModelOutput<T> finish(Var<T> logits, const BodyAux<T>& aux) const {
        MultiModelOutput<T> o;
        o.logits = std::move(logits);
        o.aux_loss = aux.loss.defined() ? aux.loss : Var<T>(Tensor<T>::zeros({}));
        o.moe_stats = aux.stats;
        return o;
    }
    // tokens [B, P]; shift: decoder input = [task, tokens[:, :P-1]] (P positions),
    // else [task, tokens] (P + 1 positions).
    MultiModelOutput<T> decode(std::size_t t, const Encoded<T>& e, const Tensor<std::int64_t>& tokens,
                               bool shift) const {
        const TaskNets<T>& n = nets(t);
        POLYMATH_CHECK(n.spec.output == OutputKind::text, "nn::MultiModel", "task '", n.spec.name,
                       "' does not output text");
        POLYMATH_CHECK(tokens.dim() == 2 && tokens.size(0) == e.h.size(0), "nn::MultiModel", "target ids ",
                       tokens.shape(), " must be [B=", e.h.size(0), ", L]");
        check_ids(tokens, n.spec.vocab, "target");
        const std::int64_t B = tokens.size(0), P = tokens.size(1), H = cfg_.hidden;
        const std::int64_t used = shift ? P - 1 : P;
        POLYMATH_CHECK(shift ? P >= 1 : P >= 0, "nn::MultiModel", "empty target");
        POLYMATH_CHECK(used + 1 <= cfg_.max_target_len, "nn::MultiModel", "target length ", used + 1,
                       " exceeds max_target_len=", cfg_.max_target_len);
        Var<T> task = expand(reshape(narrow(task_embedding, 0, std::int64_t(t), 1), {1, 1, H}), {B, 1, H});
        Var<T> dec_in = task;
        Tensor<std::uint8_t> dec_pad = Tensor<std::uint8_t>::zeros({B, used + 1});
        if (used > 0) {
            Tensor<std::int64_t> prev = tokens.narrow(1, 0, used).contiguous();
            dec_in = concat({task, n.language.embed(prev)}, 1);
            for (std::int64_t b = 0; b < B; ++b)
                for (std::int64_t i = 0; i < used; ++i) dec_pad.data()[b * (used + 1) + i + 1] = prev.data()[b * used + i] == 0;
        }
        BodyAux<T> aux = e.aux;
        Var<T> x = mixer.forward(dec_in, e.h, e.padding);
        x = decoder.forward(x, e.h, e.padding, dec_pad, aux);
        return finish(n.language.logits(x), aux);
    }

    MultiModelConfig cfg_;
};

}  // namespace polymath::nn
