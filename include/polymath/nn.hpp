// polymath/nn.hpp — every layer (nn/) in one include.
#pragma once
#include "polymath/nn/module.hpp"
#include "polymath/nn/init.hpp"
#include "polymath/nn/linear.hpp"
#include "polymath/nn/embedding.hpp"
#include "polymath/nn/layer_norm.hpp"
#include "polymath/nn/dropout.hpp"
#include "polymath/nn/conv.hpp"
#include "polymath/nn/pool.hpp"
#include "polymath/nn/lstm.hpp"
#include "polymath/nn/attention.hpp"
#include "polymath/nn/conv_block.hpp"
#include "polymath/nn/moe.hpp"
