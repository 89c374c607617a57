#pragma once

// lumi's public surface.
#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/model/spec.hpp>
#include <lumi/model/transformer.hpp>
