// A SentencePiece model file (protobuf): pieces with scores and types, trainer and normaliser fields.
#include "fuzz_input.hpp"
#include "lumi/tokenizer/spm_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto model = lumi::tokenizer::parse_spm_model(lumi::fuzz::as_text(data, size), "fuzz.model");
        if (model.pieces.empty()) std::abort();  // an empty model is an error, not a result
    } catch (const lumi::Error&) {
    }
    return 0;
}
