// polymath/peft.hpp — parameter-efficient transfer (polymath::peft): LoRA,
// adapters, prompts (prompt tuning / CoOp / VPT), AIM axis adapters, feature
// taps and Head2Toe, MixGen, distillation. Builds on polymath/nn.hpp.
#pragma once
#include "polymath/peft/match.hpp"
#include "polymath/peft/extension.hpp"
#include "polymath/peft/lora.hpp"
#include "polymath/peft/adapter.hpp"
#include "polymath/peft/prompt.hpp"
#include "polymath/peft/aim.hpp"
#include "polymath/peft/freeze.hpp"
#include "polymath/peft/feature_tap.hpp"
#include "polymath/peft/head2toe.hpp"
#include "polymath/peft/mixgen.hpp"
#include "polymath/peft/distill.hpp"
