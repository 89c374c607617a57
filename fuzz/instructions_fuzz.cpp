// An instruction dataset (Alpaca or Dolly JSON / JSON Lines, OpenAssistant message trees, ShareGPT
// conversations) read into conversations and rendered in each chat template. The first byte chooses the
// format (or detection) and whether malformed records are skipped; the rest is the file.
#include "fuzz_input.hpp"
#include "lumi/data/sft.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t choice = data[0];
    lumi::data::SftDataset dataset;
    dataset.format = lumi::data::SftFormat(choice % 5);
    dataset.max_turns = (choice >> 3) & 3;
    const bool jsonl = (choice >> 5) & 1;
    dataset.path = lumi::fuzz::write_input(lumi::fuzz::scratch() / (jsonl ? "data.jsonl" : "data.json"),
                                           lumi::fuzz::as_text(data + 1, size - 1));
    try {
        const auto read = lumi::data::read_sft_dataset(dataset, (choice >> 6) & 1);
        for (const auto& conversation : read.conversations)
            for (const auto kind : {lumi::data::ChatTemplate::instruct, lumi::data::ChatTemplate::chatml,
                                    lumi::data::ChatTemplate::chat})
                lumi::data::render(conversation, kind);
    } catch (const lumi::Error&) {
    }
    return 0;
}
