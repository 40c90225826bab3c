// polymath/optim.hpp — optimizers, gradient clipping and learning-rate schedules in one include.
#pragma once
#include "polymath/optim/optimizer.hpp"
#include "polymath/optim/sgd.hpp"
#include "polymath/optim/adam.hpp"
#include "polymath/optim/adafactor.hpp"
#include "polymath/optim/clip.hpp"
#include "polymath/optim/schedule.hpp"
