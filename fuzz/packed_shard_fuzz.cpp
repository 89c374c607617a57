// A packed shard (`train_00000.bin`): the 128-byte header (magic, version, widths, sizes, checksum,
// tokenizer) and its arrays, opened as a dataset, checked and read.
#include "fuzz_input.hpp"
#include "lumi/data/packed.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto dir = lumi::fuzz::scratch() / "packed";
    lumi::fuzz::write_input(dir / "train_00000.bin", lumi::fuzz::as_text(data, size));
    try {
        const lumi::data::PackedDataset dataset(dir);
        const std::int64_t n = dataset.size();
        for (const std::int64_t i : {std::int64_t(0), n / 2, n - 1})
            if (i >= 0 && i < n) dataset.sample(i);
        dataset.verify();
    } catch (const lumi::Error&) {
    }
    return 0;
}
