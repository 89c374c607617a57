// A corpus source file read into documents (plain text by file, paragraph or line; JSON Lines; gzip and
// zstd detected by their magic numbers), each then repaired, normalised and measured as the corpus stage
// does. The first byte chooses the reading options, the rest is the file.
#include "fuzz_input.hpp"
#include "lumi/data/corpus.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t choice = data[0];
    lumi::data::ReadOptions options;
    options.format = (choice & 1) ? lumi::data::SourceFormat::jsonl : lumi::data::SourceFormat::text;
    options.unit = lumi::data::TextUnit((choice >> 1) % 3);
    options.skip_malformed = (choice >> 3) & 1;
    options.compression = (choice >> 4) & 1 ? lumi::data::Compression::detect : lumi::data::Compression::none;
    const auto file = lumi::fuzz::write_input(lumi::fuzz::scratch() / "source.txt",
                                              lumi::fuzz::as_text(data + 1, size - 1));
    try {
        const auto read = lumi::data::read_records(file, options);
        for (const auto& record : read.records) {
            if (lumi::data::count_invalid_utf8(record.text) != 0) std::abort();  // records are valid UTF-8
            const std::string normal = lumi::data::nfkc(record.text);
            lumi::data::normalize_whitespace(normal, lumi::data::Whitespace((choice >> 5) % 3));
            lumi::data::count_sentences(normal);
            lumi::data::count_code_points(normal);
        }
    } catch (const lumi::Error&) {
    }
    return 0;
}
