# Writes or checks docs/config-reference.md: every stage binary's `--describe` output under a heading, so the
# reference is generated from the settings structs themselves. An entry is binary|stage|type[|arguments].
#   cmake -DBINARY_DIR=<dir with the binaries> -DPRESETS_DIR=<lumi>/presets -DOUTPUT=docs/config-reference.md
#         [-DCHECK=ON] -P config_reference.cmake
set(stages
  "lumi_prepare_corpus|01, 03 (pretraining corpus)|lumi::CorpusSettings"
  "lumi_train_tokenizer|02 (tokenizer)|lumi::tokenizer::TrainerSettings"
  "lumi_pack_dataset|04 (packing)|lumi::data::PackSettings"
  "lumi_pretrain_nano|05 (pretraining, `lumi_pretrain_<preset>`), recipe adamw_cosine (the default)|lumi::train::PretrainSettings<AdamW, CosineWarmup>"
  "lumi_pretrain_nano|05 (pretraining), recipe muon_wsd|lumi::train::PretrainSettings<MuonAdamW, WarmupStableDecay>|--set=recipe=muon_wsd"
  "lumi_evaluate_nano|06, 08 (evaluation, `lumi_evaluate_<preset>`)|EvaluateSettings (examples/evaluate.cpp)"
  "lumi_prepare_sft|07a (instruction corpus)|lumi::data::SftSettings"
  "lumi_train_sft_nano|07b (LoRA or full fine-tuning, `lumi_train_sft_<preset>`)|lumi::train::FinetuneSettings<>"
  "lumi_prepare_dpo|preference pairs for DPO|lumi::data::PreferenceSettings"
  "lumi_train_dpo_nano|preference optimisation (DPO or IPO, `lumi_train_dpo_<preset>`)|lumi::train::DpoStageSettings<>"
  "lumi_generate_nano|generation (`lumi_generate_<preset>`)|GenerateSettings (examples/generate.cpp)"
  "lumi_chat_nano|chat in a terminal (`lumi_chat_<preset>`)|ChatSettings (examples/chat.cpp)"
  "lumi_serve_nano|the OpenAI-compatible server (`lumi_serve_<preset>`)|ServeSettings (examples/serve.cpp)"
  "lumi_pipeline_nano|the whole pipeline (defaults: the embedded nano run)|lumi::pipeline::PipelineSettings"
  "lumi_export_gguf|GGUF export for llama.cpp|lumi::io::GgufExportSettings"
  "lumi_import_config|Lumi-Lab's configuration files as pipeline settings (docs/reproducing-lumi-lab.md)|lumi::pipeline::LumiLabImportSettings")

set(text "# Configuration reference\n\n")
string(APPEND text "Generated from the settings structs by each binary's `--describe`; do not edit: "
  "`cmake --build build --target lumi_config_reference` rewrites this file and the test "
  "`examples.config_reference_is_current` fails when it is stale. How settings are read, overridden and "
  "checked: [configuration](configuration.md). Keys are dotted paths for `--set` (`a[]` is each element of the "
  "list `a`); defaults are JSON, `{presets}` standing for lumi's `presets/` folder as compiled into the binary.\n")
foreach(entry IN LISTS stages)
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 binary)
  list(GET parts 1 what)
  list(GET parts 2 type)
  set(extra "")
  list(LENGTH parts count)
  if(count GREATER 3)
    list(GET parts 3 extra)
  endif()
  execute_process(COMMAND "${BINARY_DIR}/${binary}" ${extra} --describe RESULT_VARIABLE rc OUTPUT_VARIABLE table
    ERROR_VARIABLE error)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${binary} --describe failed (${rc}): ${error}")
  endif()
  # Defaults that point into lumi's tree depend on where it was built.
  string(REPLACE "${PRESETS_DIR}" "{presets}" table "${table}")
  string(APPEND text "\n## `${binary}`: ${what}\n\n`${type}`\n\n${table}")
endforeach()

if(CHECK)
  file(READ "${OUTPUT}" current)
  if(NOT current STREQUAL text)
    file(WRITE "${BINARY_DIR}/config-reference.md.new" "${text}")
    message(FATAL_ERROR "${OUTPUT} is stale (a settings struct changed): compare with "
      "${BINARY_DIR}/config-reference.md.new and run "
      "`cmake --build <build> --target lumi_config_reference` to regenerate it")
  endif()
  message(STATUS "${OUTPUT} is current")
else()
  file(WRITE "${OUTPUT}" "${text}")
endif()
