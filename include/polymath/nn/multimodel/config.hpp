// polymath/nn/multimodel/config.hpp — the sizes of a MultiModel and the tasks
// it serves.
//
//   auto cfg = nn::MultiModelConfig::tiny();     // CPU demo
//   auto cfg = nn::MultiModelConfig::base();     // tensor2tensor's multimodel_base
//   std::vector<nn::TaskSpec> tasks = {
//       nn::TaskSpec::image_classification("mnist", 1, 28, 28, 10),
//       nn::TaskSpec::audio_classification("digits", 40, 100, 10),
//       nn::TaskSpec::translation("en_de", 8000)};
//
// `base()` follows tensor2tensor's multimodel_base hparams: hidden 512, filter
// 2048, 4 hidden layers, 8 heads, 30 experts (k = 2), large kernel 15,
// dropout 0.1. The paper's ConvBlock dilation for the last step is 8 (the
// t2t conv_res_step uses 4); `dilation` picks it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "polymath/core/error.hpp"

namespace polymath::nn {

struct MultiModelConfig {
    std::int64_t hidden = 512;       // d_model of the shared body
    std::int64_t filter = 2048;      // MoE expert hidden size
    std::int64_t layers = 4;         // ConvBlocks in the encoder, and decoder blocks
    std::int64_t heads = 8;          // attention heads
    std::int64_t experts = 30;       // MoE experts per MoE layer
    std::int64_t k = 2;              // experts per token
    std::int64_t large_kernel = 15;  // kernel of the 3rd and 4th ConvStep
    std::int64_t dilation = 8;       // dilation of the 4th ConvStep
    double dropout = 0.1;            // after attention / MoE residual branches and in ConvBlocks
    double capacity_factor = 0;      // MoE capacity when training; <= 0 dropless
    double moe_loss_coef = 1e-2;     // weight of each balance loss (importance, load)
    std::int64_t max_target_len = 128;
    bool tie_embeddings = true;      // language: output projection = input embedding
    bool flatten_classes = false;    // class heads: flatten the positions (true) or average them (the paper)

    static MultiModelConfig base() { return {}; }
    // Small enough to train several real tasks on 2 CPU cores in minutes.
    static MultiModelConfig tiny() {
        MultiModelConfig c;
        c.hidden = 128;
        c.filter = 256;
        c.layers = 2;
        c.heads = 4;
        c.experts = 8;
        c.k = 2;
        c.large_kernel = 7;
        c.dilation = 4;
        c.dropout = 0.1;
        c.max_target_len = 64;
        c.flatten_classes = true;  // learns far faster on a CPU budget; see modality.hpp
        return c;
    }

    void validate() const {
        POLYMATH_CHECK(hidden > 0 && filter > 0 && layers >= 1 && heads >= 1 && experts >= 1 && k >= 1 &&
                           large_kernel >= 1 && dilation >= 1 && max_target_len >= 1,
                       "nn::MultiModelConfig", "sizes must be positive: hidden=", hidden, " filter=", filter,
                       " layers=", layers, " heads=", heads, " experts=", experts, " k=", k);
        POLYMATH_CHECK(hidden % heads == 0, "nn::MultiModelConfig", "hidden=", hidden,
                       " must be a multiple of heads=", heads);
        POLYMATH_CHECK(hidden % 2 == 0, "nn::MultiModelConfig", "hidden=", hidden, " must be even (timing signal)");
        POLYMATH_CHECK(k <= experts, "nn::MultiModelConfig", "k=", k, " > experts=", experts);
        POLYMATH_CHECK(dropout >= 0 && dropout < 1, "nn::MultiModelConfig", "dropout=", dropout, " outside [0, 1)");
    }

    nlohmann::json to_json() const {
        return {{"hidden", hidden},           {"filter", filter},
                {"layers", layers},           {"heads", heads},
                {"experts", experts},         {"k", k},
                {"large_kernel", large_kernel}, {"dilation", dilation},
                {"dropout", dropout},         {"capacity_factor", capacity_factor},
                {"moe_loss_coef", moe_loss_coef}, {"max_target_len", max_target_len},
                {"tie_embeddings", tie_embeddings}, {"flatten_classes", flatten_classes}};
    }
};

enum class InputKind { image, audio, text };
enum class OutputKind { classes, text };

// One task: what goes in, what comes out. Each task owns its modality nets;
// the body (encoder, mixer, decoder) is shared by all.
struct TaskSpec {
    std::string name;
    InputKind input = InputKind::image;
    OutputKind output = OutputKind::classes;
    std::int64_t channels = 0, height = 0, width = 0;  // image [C, H, W]
    std::int64_t n_mels = 0, frames = 0;               // audio [frames, n_mels]
    std::int64_t vocab = 0;                            // text in and/or out (one shared subword vocabulary)
    std::int64_t num_classes = 0;                      // classes out

    static TaskSpec image_classification(std::string name, std::int64_t c, std::int64_t h, std::int64_t w,
                                         std::int64_t classes) {
        TaskSpec t;
        t.name = std::move(name);
        t.input = InputKind::image;
        t.channels = c, t.height = h, t.width = w, t.num_classes = classes;
        return t;
    }
    static TaskSpec audio_classification(std::string name, std::int64_t n_mels, std::int64_t frames,
                                         std::int64_t classes) {
        TaskSpec t;
        t.name = std::move(name);
        t.input = InputKind::audio;
        t.n_mels = n_mels, t.frames = frames, t.num_classes = classes;
        return t;
    }
    static TaskSpec translation(std::string name, std::int64_t vocab) {
        TaskSpec t;
        t.name = std::move(name);
        t.input = InputKind::text;
        t.output = OutputKind::text;
        t.vocab = vocab;
        return t;
    }

    // Length of the body's sequence for this task's input (image: two stride-2
    // convolutions then a ConvRes; audio: two ConvRes; each halves, rounding up).
    std::int64_t body_length() const {
        auto half = [](std::int64_t n) { return (n + 1) / 2; };
        if (input == InputKind::image) return half(half(half(height)) * half(half(width)));
        if (input == InputKind::audio) return half(half(frames));
        return 0;
    }

    void validate() const {
        POLYMATH_CHECK(!name.empty(), "nn::TaskSpec", "a task needs a name");
        if (input == InputKind::image)
            POLYMATH_CHECK(channels > 0 && height > 0 && width > 0, "nn::TaskSpec", "task '", name,
                           "': image input needs channels, height, width > 0, got ", channels, "x", height, "x", width);
        if (input == InputKind::audio)
            POLYMATH_CHECK(n_mels > 0 && frames > 0, "nn::TaskSpec", "task '", name,
                           "': audio input needs n_mels and frames > 0");
        if (input == InputKind::text || output == OutputKind::text)
            POLYMATH_CHECK(vocab > 3, "nn::TaskSpec", "task '", name, "': text needs a vocabulary, got ", vocab);
        if (output == OutputKind::classes)
            POLYMATH_CHECK(num_classes >= 2, "nn::TaskSpec", "task '", name, "': needs >= 2 classes, got ", num_classes);
        if (output == OutputKind::text)
            POLYMATH_CHECK(input == InputKind::text, "nn::TaskSpec", "task '", name,
                           "': text output is supported for text input (translation) only");
    }

    nlohmann::json to_json() const {
        return {{"name", name},       {"input", int(input)},   {"output", int(output)}, {"channels", channels},
                {"height", height},   {"width", width},        {"n_mels", n_mels},      {"frames", frames},
                {"vocab", vocab},     {"num_classes", num_classes}};
    }
};

}  // namespace polymath::nn
