// polymath/peft/mixgen.hpp — MixGen (Hao et al. 2023, arXiv 2206.08358):
// new image-text pairs by blending two images and concatenating their texts.
//
//   auto [images, texts] = peft::mixgen(images, texts, /*M=*/8, /*lambda=*/0.5);
//
// Over a batch of B pairs, as the paper's Algorithm 1 (default MixGen): for
// i in [0, M), pair i is replaced by
//   image_i = lambda · image_i + (1 − lambda) · image_{i+M}
//   text_i  = text_i ++ [separator] ++ text_{i+M}     (token ids; separator < 0: none)
// and pairs M .. B−1 are unchanged (so B stays B; the partners are "shuffled"
// because the loader already shuffled the batch). Needs 2M <= B. With
// max_text_length > 0 the concatenated ids are truncated to that length.
// The inputs are not modified; the result owns new storage.
#pragma once
#include <cstdint>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/tensor/tensor.hpp"

namespace polymath::peft {

template <class T>
struct MixGenBatch {
    Tensor<T> images;                              // same shape as the input
    std::vector<std::vector<std::int64_t>> texts;  // B token-id sequences
};

template <class T>
MixGenBatch<T> mixgen(const Tensor<T>& images, const std::vector<std::vector<std::int64_t>>& texts, std::int64_t M,
                      double lambda = 0.5, std::int64_t separator = -1, std::int64_t max_text_length = 0) {
    POLYMATH_CHECK(images.dim() >= 1, "peft::mixgen", "images must have a batch axis, got ", images.shape());
    const std::int64_t B = images.size(0);
    POLYMATH_CHECK(std::int64_t(texts.size()) == B, "peft::mixgen", "images ", images.shape(), " but ", texts.size(),
                   " texts");
    POLYMATH_CHECK(M >= 0 && 2 * M <= B, "peft::mixgen", "M=", M, " pairs need 2M <= batch ", B);
    POLYMATH_CHECK(lambda >= 0 && lambda <= 1, "peft::mixgen", "lambda ", lambda, " not in [0, 1]");
    MixGenBatch<T> out{images.clone(), texts};
    const std::int64_t per = B > 0 ? images.numel() / B : 0;
    T* p = out.images.data();  // clone() is contiguous
    for (std::int64_t i = 0; i < M; ++i) {
        T* a = p + i * per;
        const T* b = p + (i + M) * per;
        for (std::int64_t j = 0; j < per; ++j) a[j] = T(lambda * double(a[j]) + (1.0 - lambda) * double(b[j]));
        auto& t = out.texts[std::size_t(i)];
        if (separator >= 0) t.push_back(separator);
        const auto& u = texts[std::size_t(i + M)];
        t.insert(t.end(), u.begin(), u.end());
        if (max_text_length > 0 && std::int64_t(t.size()) > max_text_length) t.resize(std::size_t(max_text_length));
    }
    return out;
}

}  // namespace polymath::peft
