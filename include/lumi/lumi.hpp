#pragma once

// lumi's public surface.
#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/model/spec.hpp>
#include <lumi/model/transformer.hpp>
#include <lumi/io/hf_config.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/io/safetensors.hpp>
#include <lumi/lora/lora.hpp>
#include <lumi/model/context.hpp>
