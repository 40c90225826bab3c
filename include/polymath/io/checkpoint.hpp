// polymath/io/checkpoint.hpp — training checkpoints: a model's parameters, an
// optional optimizer's state and the run's metadata in one safetensors file.
//
// Layout (a plain safetensors file, see io/safetensors.hpp; any safetensors
// reader can open it, and the model tensors carry the module's dotted names):
//
//   tensors   "<parameter name>"     every entry of model.state_dict(), its dtype T
//             "optim.<name>"         every tensor of optimizer.state() (when saved with one)
//   metadata  "format"               "polymath.checkpoint"
//             "format_version"       "1"
//             "config"               the caller's model config, a JSON text (verbatim)
//             "optimizer"            "present" or "none"
//             "scalar.<key>"         the caller's scalars (step counters, learning rate ...)
//             "optim.<key>"          the optimizer's scalars
//             "checksum"             "crc32:<8 hex digits>", zlib CRC-32 of a canonical
//                                    stream of everything else: each metadata key and
//                                    value (sorted, "checksum" left out), then each tensor
//                                    (sorted by name) as name, dtype, rank, dims, byte
//                                    count and bytes
//
// Guarantees:
//   - saving is atomic (save_safetensors: temporary file, fsync, rename); a
//     failed save leaves the previous checkpoint intact;
//   - loading checks the format, the version and the checksum before anything
//     is touched, so a flipped bit anywhere in the data, the tensor table or
//     the metadata is an Error naming the file; a model whose names or shapes
//     differ gets load_state_dict's Error listing every mismatch (prefixed with
//     the file); dtypes must match (the Error names both);
//   - a load changes the model and the optimizer together or not at all: when
//     the optimizer rejects its state, the model's previous values are restored;
//   - the optimizer is duck-typed: any type with `state() const` returning a
//     struct with `tensors` (vector of pair<string, Tensor<U>>) and `scalars`
//     (map<string, string>), and `load_state(const that struct&)` — e.g.
//     polymath::optim::OptimizerState<T> of optim/optimizer.hpp. This header
//     does not include optim/.
//
// Usage:
//
//   namespace io = polymath::io;
//   nn::Linear<float> model(4, 2);
//   optim::Adam<float> opt(model.named_parameters(), {.lr = 1e-3});
//   io::CheckpointExtras extras{R"({"in": 4, "out": 2})", {{"step", "100"}}};
//   io::save_checkpoint("run/ckpt.safetensors", model, extras, opt);
//
//   nn::Linear<float> fresh(4, 2);
//   optim::Adam<float> fresh_opt(fresh.named_parameters(), {.lr = 1e-3});
//   io::CheckpointExtras got = io::load_checkpoint("run/ckpt.safetensors", fresh, fresh_opt);
//   std::stoll(got.scalars.at("step")) == 100;
//   // io::read_checkpoint_extras(path) gives the config before a model exists.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/io/safetensors.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::io {

inline constexpr std::string_view kCheckpointFormat = "polymath.checkpoint";
inline constexpr std::string_view kCheckpointFormatVersion = "1";

// What a checkpoint stores besides tensors.
struct CheckpointExtras {
    std::string config = "{}";                   // model config, must be valid JSON
    std::map<std::string, std::string> scalars;  // caller's scalars, e.g. {"step", "1200"}
};

// A type save_checkpoint / load_checkpoint accept as optimizer.
template <class O>
concept CheckpointOptimizer = requires(const O& co, O& o) {
    co.state().tensors;
    co.state().scalars;
    o.load_state(co.state());
};

namespace detail {

inline void crc_feed(std::uint32_t& crc, const void* p, std::size_t n) {
    const auto* b = static_cast<const Bytef*>(p);
    uLong c = crc;
    while (n > 0) {
        const uInt chunk = static_cast<uInt>(std::min<std::size_t>(n, std::size_t(1) << 30));
        c = ::crc32(c, b, chunk);
        b += chunk;
        n -= chunk;
    }
    crc = static_cast<std::uint32_t>(c);
}
inline void crc_feed_str(std::uint32_t& crc, std::string_view s) {
    crc_feed(crc, s.data(), s.size());
    const char zero = 0;
    crc_feed(crc, &zero, 1);
}
inline void crc_feed_u64(std::uint32_t& crc, std::uint64_t v) {
    std::byte b[8];
    put_u64_le(b, v);
    crc_feed(crc, b, 8);
}

// The checksum string of `f` (its "checksum" metadata entry ignored).
inline std::string checkpoint_checksum(const SafetensorsFile& f) {
    std::uint32_t crc = static_cast<std::uint32_t>(::crc32(0L, Z_NULL, 0));
    for (const auto& [k, v] : f.metadata) {
        if (k == "checksum") continue;
        crc_feed_str(crc, k);
        crc_feed_str(crc, v);
    }
    std::vector<const TensorEntry*> order;
    for (const auto& e : f.tensors) order.push_back(&e);
    std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) { return a->name < b->name; });
    for (const TensorEntry* e : order) {
        crc_feed_str(crc, e->name);
        crc_feed_str(crc, safetensors_dtype_name(e->dtype));
        crc_feed_u64(crc, static_cast<std::uint64_t>(e->shape.size()));
        for (auto d : e->shape) crc_feed_u64(crc, static_cast<std::uint64_t>(d));
        crc_feed_u64(crc, e->bytes.size());
        crc_feed(crc, e->bytes.data(), e->bytes.size());
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "crc32:";
    for (int i = 7; i >= 0; --i) out += hex[(crc >> (4 * i)) & 0xFu];
    return out;
}

inline bool starts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.substr(0, prefix.size()) == prefix;
}

// Stands in for "no optimizer".
struct NoOptimizer {};

template <class Model, class Opt>
void save_checkpoint_impl(const std::string& path, const Model& model, const CheckpointExtras& extras, const Opt* opt) {
    POLYMATH_CHECK(nlohmann::json::accept(extras.config), "save_checkpoint", "'", path,
                   "': the model config is not valid JSON: ", extras.config.substr(0, 200));
    SafetensorsFile f;
    f.origin = path;
    for (const auto& [name, t] : model.state_dict()) {
        POLYMATH_CHECK(!starts_with(name, "optim."), "save_checkpoint", "'", path, "': model parameter '", name,
                       "' collides with the 'optim.' prefix reserved for optimizer state");
        put(f, name, t);
    }
    f.metadata["format"] = std::string(kCheckpointFormat);
    f.metadata["format_version"] = std::string(kCheckpointFormatVersion);
    f.metadata["config"] = extras.config;
    for (const auto& [k, v] : extras.scalars) f.metadata["scalar." + k] = v;
    if constexpr (std::is_same_v<Opt, NoOptimizer>) {
        f.metadata["optimizer"] = "none";
    } else {
        f.metadata["optimizer"] = "present";
        const auto st = opt->state();
        for (const auto& [name, t] : st.tensors) put(f, "optim." + name, t);
        for (const auto& [k, v] : st.scalars) f.metadata["optim." + k] = v;
    }
    f.metadata["checksum"] = checkpoint_checksum(f);
    save_safetensors(path, f);
}

// Loads `path` and checks format, version and checksum.
inline SafetensorsFile load_verified_checkpoint(const std::string& path) {
    SafetensorsFile f = load_safetensors(path);
    auto meta = [&](const char* key) -> const std::string* {
        auto it = f.metadata.find(key);
        return it == f.metadata.end() ? nullptr : &it->second;
    };
    const std::string* format = meta("format");
    POLYMATH_CHECK(format && *format == kCheckpointFormat, "load_checkpoint", "'", path,
                   "' is not a polymath checkpoint (metadata \"format\" is ",
                   format ? "'" + *format + "'" : std::string("missing"), ", expected '", kCheckpointFormat, "')");
    const std::string* version = meta("format_version");
    POLYMATH_CHECK(version && *version == kCheckpointFormatVersion, "load_checkpoint", "'", path,
                   "': unsupported checkpoint format_version ",
                   version ? "'" + *version + "'" : std::string("(missing)"), " (this build reads version ",
                   kCheckpointFormatVersion, ")");
    const std::string* stored = meta("checksum");
    POLYMATH_CHECK(stored != nullptr, "load_checkpoint", "'", path, "' has no checksum in its metadata");
    const std::string computed = checkpoint_checksum(f);
    POLYMATH_CHECK(*stored == computed, "load_checkpoint", "'", path, "' is corrupt: checksum mismatch (stored ",
                   *stored, ", computed ", computed, " over its tensors and metadata)");
    return f;
}

inline CheckpointExtras extras_of(const SafetensorsFile& f) {
    CheckpointExtras x;
    auto it = f.metadata.find("config");
    x.config = it == f.metadata.end() ? std::string("{}") : it->second;
    for (const auto& [k, v] : f.metadata)
        if (starts_with(k, "scalar.")) x.scalars.emplace(k.substr(7), v);
    return x;
}

template <class Model, class Opt>
CheckpointExtras load_checkpoint_impl(const std::string& path, Model& model, Opt* opt) {
    using T = typename Model::value_type;
    const SafetensorsFile f = load_verified_checkpoint(path);

    // Everything is read and converted before the model is touched.
    std::vector<std::pair<std::string, Tensor<T>>> state;
    for (const auto& e : f.tensors)
        if (!starts_with(e.name, "optim.")) state.emplace_back(e.name, get<T>(f, e.name));

    if constexpr (std::is_same_v<Opt, NoOptimizer>) {
        try {
            model.load_state_dict(state);
        } catch (const Error& ex) {
            POLYMATH_THROW("load_checkpoint", "'", path, "': ", ex.what());
        }
    } else {
        auto it = f.metadata.find("optimizer");
        POLYMATH_CHECK(it != f.metadata.end() && it->second == "present", "load_checkpoint", "'", path,
                       "' holds no optimizer state (saved without an optimizer)");
        using State = std::remove_cvref_t<decltype(std::as_const(*opt).state())>;
        using Entry = typename decltype(std::declval<State&>().tensors)::value_type;
        using U = typename std::remove_cvref_t<typename Entry::second_type>::value_type;
        State st;
        for (const auto& e : f.tensors)
            if (starts_with(e.name, "optim.")) st.tensors.emplace_back(e.name.substr(6), get<U>(f, e.name));
        for (const auto& [k, v] : f.metadata)
            if (starts_with(k, "optim.")) st.scalars.emplace(k.substr(6), v);

        std::vector<std::pair<std::string, Tensor<T>>> backup;
        for (const auto& [n, t] : model.state_dict()) backup.emplace_back(n, t.clone());
        try {
            model.load_state_dict(state);
        } catch (const Error& ex) {
            POLYMATH_THROW("load_checkpoint", "'", path, "': ", ex.what());
        }
        try {
            opt->load_state(st);
        } catch (const std::exception& ex) {
            model.load_state_dict(backup);
            POLYMATH_THROW("load_checkpoint", "'", path,
                           "': the optimizer rejected its state (model left unchanged): ", ex.what());
        }
    }
    return extras_of(f);
}

}  // namespace detail

// Writes model parameters + metadata (+ optimizer state) to `path`, atomically.
template <class Model>
void save_checkpoint(const std::string& path, const Model& model, const CheckpointExtras& extras = {}) {
    detail::save_checkpoint_impl<Model, detail::NoOptimizer>(path, model, extras, nullptr);
}
template <class Model, CheckpointOptimizer Optimizer>
void save_checkpoint(const std::string& path, const Model& model, const CheckpointExtras& extras,
                     const Optimizer& optimizer) {
    detail::save_checkpoint_impl(path, model, extras, &optimizer);
}

// Verifies `path` and copies its parameters into `model` (and its state into
// `optimizer`). Returns the stored config and scalars.
template <class Model>
CheckpointExtras load_checkpoint(const std::string& path, Model& model) {
    return detail::load_checkpoint_impl<Model, detail::NoOptimizer>(path, model, nullptr);
}
template <class Model, CheckpointOptimizer Optimizer>
CheckpointExtras load_checkpoint(const std::string& path, Model& model, Optimizer& optimizer) {
    return detail::load_checkpoint_impl(path, model, &optimizer);
}

// The config and scalars of a verified checkpoint, without a model (to build
// the model from its config first).
inline CheckpointExtras read_checkpoint_extras(const std::string& path) {
    return detail::extras_of(detail::load_verified_checkpoint(path));
}

}  // namespace polymath::io
