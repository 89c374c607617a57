// A safetensors file: the header length, the JSON header (dtypes, shapes, offsets, metadata) and the data
// buffer it describes; every tensor is read back.
#include "fuzz_input.hpp"
#include "lumi/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto file =
        lumi::fuzz::write_input(lumi::fuzz::scratch() / "model.safetensors", lumi::fuzz::as_text(data, size));
    try {
        lumi::io::SafetensorsReader reader(file);
        for (const auto& entry : reader.header().tensors) {
            const torch::Tensor t = reader.read(entry);
            if (t.numel() != 0 && t.sizes().vec() != entry.shape) std::abort();  // read what the header says
        }
    } catch (const lumi::Error&) {
    }
    return 0;
}
