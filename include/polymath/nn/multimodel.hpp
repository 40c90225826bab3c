// polymath/nn/multimodel.hpp — MultiModel ("One Model To Learn Them All"):
// config and task specs, modality nets, encoder / I-O mixer / decoder, the
// model, greedy and beam-search decoding.
#pragma once
#include "polymath/nn/multimodel/config.hpp"
#include "polymath/nn/multimodel/modality.hpp"
#include "polymath/nn/multimodel/body.hpp"
#include "polymath/nn/multimodel/model.hpp"
#include "polymath/nn/multimodel/decode.hpp"
