// polymath/nn/multimodel/decode.hpp — greedy and beam-search decoding of a
// MultiModel text-output task.
//
//   model.eval();
//   auto out = nn::greedy_decode(model, task, src_ids, {.max_len = 40});
//   auto out = nn::beam_search(model, task, src_ids, {.max_len = 40, .beam = 4, .alpha = 0.6});
//   // out[b] = the token ids of sentence b, EOS not included
//
// Both encode the source once and re-run the (causal) mixer and decoder over
// the growing prefix at each step: with causal convolutions this gives the
// logits of the teacher-forced pass (no cache, so a step costs O(prefix)).
//
// Beam search (as tensor2tensor's beam_search.py): K alive beams per
// sentence; each step extends every alive beam by every token, keeps the 2K
// best by log-probability; candidates ending in EOS move to the finished set
// with score logp / lp(length), lp(n) = ((5 + n) / 6)^alpha (GNMT length
// penalty; n counts the EOS); the K best others stay alive. A sentence stops
// when its best finished score beats what any alive beam could still reach
// (alive logp / lp(max_len)), or at max_len (then alive beams are scored as
// if finished).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "polymath/autograd/grad_mode.hpp"
#include "polymath/nn/multimodel/model.hpp"
#include "polymath/ops/index.hpp"
#include "polymath/ops/softmax.hpp"

namespace polymath::nn {

struct DecodeOptions {
    std::int64_t max_len = 64;  // tokens generated at most (EOS included)
    std::int64_t eos_id = 1;
    std::int64_t beam = 4;
    double alpha = 0.6;  // length penalty exponent
};

namespace detail {

inline void check_decode(bool training, const TaskSpec& spec, const Tensor<std::int64_t>& src,
                         const DecodeOptions& o, const char* op) {
    POLYMATH_CHECK(!training, op, "model is in training mode (dropout, MoE noise); call model.eval() first");
    POLYMATH_CHECK(spec.output == OutputKind::text, op, "task '", spec.name, "' does not output text");
    POLYMATH_CHECK(src.dim() == 2 && src.size(0) >= 1, op, "source ids ", src.shape(), " must be [B, L]");
    POLYMATH_CHECK(o.max_len >= 1 && o.beam >= 1 && o.eos_id >= 0 && o.eos_id < spec.vocab, op,
                   "bad options: max_len=", o.max_len, " beam=", o.beam, " eos_id=", o.eos_id);
}

inline Tensor<std::int64_t> ids_tensor(const std::vector<std::vector<std::int64_t>>& seqs, std::int64_t len) {
    Tensor<std::int64_t> t = Tensor<std::int64_t>::zeros({std::int64_t(seqs.size()), len});
    for (std::size_t b = 0; b < seqs.size(); ++b)
        for (std::int64_t i = 0; i < len; ++i) t.data()[std::int64_t(b) * len + i] = seqs[b][std::size_t(i)];
    return t;
}

// log-softmax of the last position: [B, V].
template <class T>
Tensor<T> last_log_probs(const Var<T>& logits) {
    const std::int64_t P = logits.size(1);
    Tensor<T> last = logits.value().select(1, P - 1).contiguous();
    return ops::log_softmax(last, 1);
}

}  // namespace detail

template <class T>
std::vector<std::vector<std::int64_t>> greedy_decode(const MultiModel<T>& model, std::size_t task,
                                                     const Tensor<std::int64_t>& src, const DecodeOptions& o = {}) {
    detail::check_decode(model.is_training(), model.task(task), src, o, "nn::greedy_decode");
    NoGradGuard ng;
    const std::int64_t B = src.size(0);
    Encoded<T> e = model.encode(task, src);
    std::vector<std::vector<std::int64_t>> seqs(static_cast<std::size_t>(B)), out(static_cast<std::size_t>(B));
    std::vector<char> done(static_cast<std::size_t>(B), 0);
    for (std::int64_t step = 0; step < o.max_len; ++step) {
        Tensor<T> lp = detail::last_log_probs(model.decode_prefix(task, e, detail::ids_tensor(seqs, step)).logits);
        Tensor<std::int64_t> next = ops::argmax(lp, 1);
        bool all = true;
        for (std::int64_t b = 0; b < B; ++b) {
            const std::int64_t tok = done[std::size_t(b)] ? 0 : next.data()[b];
            seqs[std::size_t(b)].push_back(tok);
            if (!done[std::size_t(b)]) {
                if (tok == o.eos_id) done[std::size_t(b)] = 1;
                else out[std::size_t(b)].push_back(tok);
            }
            all &= done[std::size_t(b)] != 0;
        }
        if (all) break;
    }
    return out;
}

template <class T>
std::vector<std::vector<std::int64_t>> beam_search(const MultiModel<T>& model, std::size_t task,
                                                   const Tensor<std::int64_t>& src, const DecodeOptions& o = {}) {
    detail::check_decode(model.is_training(), model.task(task), src, o, "nn::beam_search");
    NoGradGuard ng;
    const std::int64_t B = src.size(0), K = o.beam, V = model.task(task).vocab;
    const double neg_inf = -std::numeric_limits<double>::infinity();
    auto lp = [&](std::int64_t n) { return std::pow((5.0 + double(n)) / 6.0, o.alpha); };

    // Encode once, repeat each sentence K times (row b*K + k).
    Encoded<T> e0 = model.encode(task, src);
    Tensor<std::int64_t> rep = Tensor<std::int64_t>::empty({B * K});
    for (std::int64_t i = 0; i < B * K; ++i) rep.data()[i] = i / K;
    Encoded<T> e;
    e.h = Var<T>(ops::index_select(e0.h.value(), 0, rep));
    if (e0.padding.defined()) e.padding = ops::index_select(e0.padding, 0, rep);

    struct Beam {
        std::vector<std::int64_t> tokens;
        double logp;
    };
    std::vector<std::vector<Beam>> alive(static_cast<std::size_t>(B));
    std::vector<std::vector<std::pair<double, std::vector<std::int64_t>>>> finished(static_cast<std::size_t>(B));
    std::vector<char> stopped(static_cast<std::size_t>(B), 0);
    for (std::int64_t b = 0; b < B; ++b) {
        alive[std::size_t(b)].push_back({{}, 0.0});
        for (std::int64_t k = 1; k < K; ++k) alive[std::size_t(b)].push_back({{}, neg_inf});
    }
    for (std::int64_t step = 0; step < o.max_len; ++step) {
        std::vector<std::vector<std::int64_t>> prefixes;
        prefixes.reserve(std::size_t(B * K));
        for (std::int64_t b = 0; b < B; ++b)
            for (std::int64_t k = 0; k < K; ++k) prefixes.push_back(alive[std::size_t(b)][std::size_t(k)].tokens);
        Tensor<T> logp = detail::last_log_probs(model.decode_prefix(task, e, detail::ids_tensor(prefixes, step)).logits);
        bool all = true;
        for (std::int64_t b = 0; b < B; ++b) {
            if (stopped[std::size_t(b)]) continue;
            auto& al = alive[std::size_t(b)];
            // The 2K best extensions of the K alive beams.
            std::vector<std::pair<double, std::int64_t>> cand;  // (logp, k * V + token)
            cand.reserve(std::size_t(K * V));
            for (std::int64_t k = 0; k < K; ++k) {
                if (al[std::size_t(k)].logp == neg_inf) continue;
                const T* row = logp.data() + (b * K + k) * V;
                for (std::int64_t v = 0; v < V; ++v) cand.push_back({al[std::size_t(k)].logp + double(row[v]), k * V + v});
            }
            const std::size_t keep = std::min<std::size_t>(cand.size(), std::size_t(2 * K));
            // Ties broken by the lower index (deterministic).
            std::partial_sort(cand.begin(), cand.begin() + std::ptrdiff_t(keep), cand.end(),
                              [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
            std::vector<Beam> next;
            for (std::size_t c = 0; c < keep; ++c) {
                const std::int64_t k = cand[c].second / V, tok = cand[c].second % V;
                std::vector<std::int64_t> toks = al[std::size_t(k)].tokens;
                toks.push_back(tok);
                if (tok == o.eos_id) {
                    toks.pop_back();
                    finished[std::size_t(b)].push_back({cand[c].first / lp(step + 1), std::move(toks)});
                } else if (std::int64_t(next.size()) < K) {
                    next.push_back({std::move(toks), cand[c].first});
                }
            }
            while (std::int64_t(next.size()) < K) next.push_back({std::vector<std::int64_t>(std::size_t(step + 1), 0), neg_inf});
            al = std::move(next);
            // Early stop: no alive beam can beat the best finished one any more.
            double best_fin = neg_inf;
            for (const auto& f : finished[std::size_t(b)]) best_fin = std::max(best_fin, f.first);
            const double best_alive_bound = al[0].logp == neg_inf ? neg_inf : al[0].logp / lp(o.max_len);
            if (best_fin != neg_inf && best_fin >= best_alive_bound) stopped[std::size_t(b)] = 1;
            all &= stopped[std::size_t(b)] != 0;
        }
        if (all) break;
    }
    std::vector<std::vector<std::int64_t>> out(static_cast<std::size_t>(B));
    for (std::int64_t b = 0; b < B; ++b) {
        auto fin = finished[std::size_t(b)];
        if (!stopped[std::size_t(b)])  // ran out of length: alive beams count as finished
            for (const auto& a : alive[std::size_t(b)])
                if (a.logp != neg_inf) fin.push_back({a.logp / lp(std::int64_t(a.tokens.size())), a.tokens});
        if (fin.empty()) continue;
        std::size_t best = 0;
        for (std::size_t i = 1; i < fin.size(); ++i)
            if (fin[i].first > fin[best].first) best = i;
        out[std::size_t(b)] = fin[best].second;
    }
    return out;
}

}  // namespace polymath::nn
