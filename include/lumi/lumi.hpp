#pragma once

// lumi's public surface.
#include <lumi/core/error.hpp>
#include <lumi/core/torch.hpp>
#include <lumi/data/corpus.hpp>
#include <lumi/data/dedup.hpp>
#include <lumi/data/pack.hpp>
#include <lumi/data/packed.hpp>
#include <lumi/data/sft.hpp>
#include <lumi/data/sources.hpp>
#include <lumi/data/text.hpp>
#include <lumi/eval/boolq.hpp>
#include <lumi/eval/perplexity.hpp>
#include <lumi/eval/results.hpp>
#include <lumi/eval/scoring.hpp>
#include <lumi/eval/smoke.hpp>
#include <lumi/io/hf_config.hpp>
#include <lumi/io/model_io.hpp>
#include <lumi/io/safetensors.hpp>
#include <lumi/lora/lora.hpp>
#include <lumi/model/context.hpp>
#include <lumi/model/loss.hpp>
#include <lumi/model/spec.hpp>
#include <lumi/model/transformer.hpp>
#include <lumi/tokenizer/tokenizer.hpp>
#include <lumi/tokenizer/trainer.hpp>
