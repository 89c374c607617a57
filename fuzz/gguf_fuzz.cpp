// A GGUF file: magic, version, metadata of every value type (arrays included), tensor infos and the data they
// point into; every tensor is read back as float32 (Q8_0 dequantised).
#include "fuzz_input.hpp"
#include "lumi/io/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto file =
            lumi::io::GgufFile::parse(std::string(lumi::fuzz::as_text(data, size)), "fuzz.gguf");
        for (const auto& info : file.tensors) {
            const torch::Tensor t = file.tensor(info.name);
            if (std::uint64_t(t.numel()) != info.elements()) std::abort();  // read what the header says
        }
    } catch (const lumi::Error&) {
    }
    return 0;
}
