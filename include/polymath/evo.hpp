// polymath/evo.hpp — evolutionary multi-task optimisation (issue #7): genomes
// and operators, non-dominated sorting, crowding, hypervolume, NSGA-II, MFEA,
// MO-MFEA, checkpoints, and masks over a model's parameter groups.
// Opt-in (like polymath/io.hpp): it pulls in nlohmann/json for checkpoints.
#pragma once
#include "polymath/evo/checkpoint.hpp"
#include "polymath/evo/crossover.hpp"
#include "polymath/evo/crowding.hpp"
#include "polymath/evo/evaluate.hpp"
#include "polymath/evo/genome.hpp"
#include "polymath/evo/hypervolume.hpp"
#include "polymath/evo/individual.hpp"
#include "polymath/evo/mask.hpp"
#include "polymath/evo/mfea.hpp"
#include "polymath/evo/mo_mfea.hpp"
#include "polymath/evo/mu2net.hpp"
#include "polymath/evo/mutation.hpp"
#include "polymath/evo/nsga2.hpp"
#include "polymath/evo/pareto.hpp"
#include "polymath/evo/progress.hpp"
#include "polymath/evo/rng.hpp"
#include "polymath/evo/selection.hpp"
#include "polymath/evo/variation.hpp"
