// polymath/evo/variation.hpp — ready-made variation policies: how an algorithm
// creates, recombines and mutates a genome type.
//
// A Variation is any type with
//   using genome_type = G;
//   G random(Rng&) const;
//   std::pair<G, G> crossover(const G&, const G&, Rng&) const;
//   void mutate(G&, Rng&) const;
// (checked by the Variation concept). NSGA-II, MFEA and MO-MFEA take one.
//
//   RealVariation   SBX + polynomial mutation over RealBounds (Deb's NSGA-II defaults)
//   BitVariation    uniform or one-point crossover + bit-flip (default rate 1/n)
//   IndexVariation  uniform crossover + adjacent-value mutation over value lists
#pragma once
#include <concepts>
#include <cstdint>
#include <utility>
#include <vector>

#include "polymath/core/error.hpp"
#include "polymath/evo/crossover.hpp"
#include "polymath/evo/genome.hpp"
#include "polymath/evo/mutation.hpp"
#include "polymath/evo/rng.hpp"

namespace polymath::evo {

template <class V>
concept Variation = requires(const V& v, const typename V::genome_type& g, typename V::genome_type& m, Rng& rng) {
    { v.random(rng) } -> std::convertible_to<typename V::genome_type>;
    { v.crossover(g, g, rng) } -> std::convertible_to<std::pair<typename V::genome_type, typename V::genome_type>>;
    v.mutate(m, rng);
};

struct RealVariation {
    using genome_type = RealGenome;
    RealBounds bounds{};
    SbxOptions sbx{};
    PolynomialMutationOptions mutation{};

    RealGenome random(Rng& rng) const { return random_reals(bounds, rng); }
    std::pair<RealGenome, RealGenome> crossover(const RealGenome& a, const RealGenome& b, Rng& rng) const {
        return sbx_crossover(a, b, bounds, rng, sbx);
    }
    void mutate(RealGenome& g, Rng& rng) const { polynomial_mutation(g, bounds, rng, mutation); }
};

enum class CrossoverKind { uniform, one_point };

struct BitVariation {
    using genome_type = BitGenome;
    std::size_t bits = 0;
    double init_density = 0.5;  // P(bit = 1) in random genomes
    double flip_rate = -1.0;    // per bit; < 0 means 1 / bits
    CrossoverKind kind = CrossoverKind::uniform;

    BitGenome random(Rng& rng) const { return random_bits(bits, init_density, rng); }
    std::pair<BitGenome, BitGenome> crossover(const BitGenome& a, const BitGenome& b, Rng& rng) const {
        return kind == CrossoverKind::uniform ? uniform_crossover(a, b, rng) : one_point_crossover(a, b, rng);
    }
    void mutate(BitGenome& g, Rng& rng) const {
        bit_flip_mutation(g, flip_rate < 0 ? (g.empty() ? 0.0 : 1.0 / double(g.size())) : flip_rate, rng);
    }
};

struct IndexVariation {
    using genome_type = IndexGenome;
    std::vector<std::int64_t> sizes{};  // list length per gene (choice_sizes(space))
    double rate = -1.0;               // per gene; < 0 means 1 / genes

    IndexGenome random(Rng& rng) const { return random_indices(sizes, rng); }
    std::pair<IndexGenome, IndexGenome> crossover(const IndexGenome& a, const IndexGenome& b, Rng& rng) const {
        return uniform_crossover(a, b, rng);
    }
    void mutate(IndexGenome& g, Rng& rng) const {
        adjacent_mutation(g, sizes, rate < 0 ? (g.empty() ? 0.0 : 1.0 / double(g.size())) : rate, rng);
    }
};

}  // namespace polymath::evo
