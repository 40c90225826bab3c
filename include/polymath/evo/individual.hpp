// polymath/evo/individual.hpp — a member of a (multi-task, multi-objective)
// population.
#pragma once
#include <cstddef>
#include <vector>

namespace polymath::evo {

template <class G>
struct Individual {
    G genome;
    std::size_t task = 0;            // skill factor: the one task it is evaluated on
    std::vector<double> objectives;  // on `task`, all minimised
    std::size_t rank = 0;            // non-domination front within its task (0 = best)
    double crowding = 0.0;           // crowding distance within its front (+inf at the extremes)
};

}  // namespace polymath::evo
