// A Hugging Face `config.json` read as a LLaMA configuration: a spec that parses writes back and parses
// to the same spec.
#include "fuzz_input.hpp"
#include "lumi/io/hf_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto file =
        lumi::fuzz::write_input(lumi::fuzz::scratch() / "config.json", lumi::fuzz::as_text(data, size));
    try {
        const lumi::ModelSpec spec =
            lumi::io::spec_from_llama_config(lumi::config::read_json_file(file), "config.json");
        const lumi::ModelSpec again =
            lumi::io::spec_from_llama_config(lumi::io::llama_config(spec), "written");
        if (!lumi::io::spec_differences(spec, again).empty()) std::abort();
    } catch (const lumi::Error&) {
    }
    return 0;
}
