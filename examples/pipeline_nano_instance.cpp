// The nano pipeline instantiated once, for lumi_pipeline_nano and the pipeline tests: the longest compile in
// the tree, which each would otherwise repeat (LUMI_PIPELINE_NANO_INSTANCE declares it extern there).
#include <lumi/pipeline/pipeline.hpp>
#include <lumi/presets.hpp>

template lumi::pipeline::PipelineResult
    lumi::pipeline::run_pipeline<lumi::presets::nano, lumi::presets::nano_lora>(
        lumi::pipeline::PipelineSettings, lumi::pipeline::RunOptions);
