// A settings file and `--set` overrides, read strictly into the pipeline's settings (which hold every
// stage's): the input is the JSON text, then after a NUL byte one `key=value` per line. Settings that load
// write back as JSON that loads to the same settings.
#include "fuzz_input.hpp"
#include "lumi/pipeline/pipeline.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input = lumi::fuzz::as_text(data, size);
    const std::size_t nul = input.find('\0');
    const auto file = lumi::fuzz::write_input(lumi::fuzz::scratch() / "settings.json", input.substr(0, nul));
    std::vector<std::string> sets;
    if (nul != std::string_view::npos)
        for (std::string_view rest = input.substr(nul + 1); !rest.empty();) {
            const std::size_t end = std::min(rest.find('\n'), rest.size());
            sets.emplace_back(rest.substr(0, end));
            rest.remove_prefix(std::min(end + 1, rest.size()));
        }
    using Settings = lumi::pipeline::PipelineSettings;
    try {
        const Settings settings = lumi::config::load<Settings>(file, sets);
        const auto json = lumi::config::to_json(settings);
        const auto again =
            lumi::config::from_json<Settings>(boost::json::parse(boost::json::serialize(json)), "written");
        if (lumi::config::to_json(again) != json) std::abort();
    } catch (const lumi::Error&) {
    }
    return 0;
}
