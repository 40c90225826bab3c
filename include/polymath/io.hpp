// polymath/io.hpp — safetensors files and checkpoints (pulls in nlohmann/json,
// so it is not part of polymath.hpp: include it where you save or load).
#pragma once
#include "polymath/io/safetensors.hpp"
#include "polymath/io/checkpoint.hpp"
