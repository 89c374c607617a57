// A preference dataset (HH-RLHF transcripts, prompt/chosen/rejected pairs, TRL message lists; JSON or JSON
// Lines, maybe gzip or zstd) read into pairs, rendered in each chat template and truncated. The first byte
// chooses the format (or detection), whether malformed records are skipped and the file's name (so its
// suffix picks the decompressor); the rest is the file.
#include "fuzz_input.hpp"
#include "lumi/data/preference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t choice = data[0];
    static constexpr const char* names[] = {"pairs.jsonl", "pairs.json", "pairs.jsonl.gz", "pairs.jsonl.zst"};
    lumi::data::PreferenceSource source;
    source.format = lumi::data::PreferenceFormat(choice % 4);
    source.path = lumi::fuzz::write_input(lumi::fuzz::scratch() / names[(choice >> 2) & 3],
                                          lumi::fuzz::as_text(data + 1, size - 1));
    try {
        const auto read = lumi::data::read_preference_dataset(source, (choice >> 4) & 1);
        const auto encode = [](std::string_view text) {
            std::vector<int> ids;
            for (unsigned char c : text) ids.push_back(c);
            return ids;
        };
        for (const auto& pair : read.pairs)
            for (const auto kind : {lumi::data::ChatTemplate::instruct, lumi::data::ChatTemplate::chatml,
                                    lumi::data::ChatTemplate::chat}) {
                auto tokens = lumi::data::tokenize(pair, kind, encode, 256);
                lumi::data::truncate_pair(tokens, 64, 16);
            }
    } catch (const lumi::Error&) {
    }
    return 0;
}
