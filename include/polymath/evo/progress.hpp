// polymath/evo/progress.hpp — what the algorithms report after each generation
// (generation 0 is the evaluated initial population), e.g. to draw a progress bar:
//
//   algo.on_progress([](const evo::Progress& p) {
//       std::printf("\rgen %zu/%zu  evals %zu  hv %.4f", p.generation, p.generations,
//                   p.evaluations, p.hypervolume[0]);
//   });
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

namespace polymath::evo {

struct Progress {
    std::size_t generation = 0;   // generations completed (0: initial population)
    std::size_t generations = 0;  // the run's target
    std::size_t evaluations = 0;  // objective evaluations so far (all tasks)
    // Multi-objective: per task, the hypervolume of the task's first front
    // against its reference point (NaN when no reference point was given or
    // the task has neither 2 nor 3 objectives).
    std::vector<double> hypervolume;
    // Single-objective (MFEA): per task, the best cost found so far.
    std::vector<double> best_cost;
};

using ProgressCallback = std::function<void(const Progress&)>;

}  // namespace polymath::evo
