#pragma once

// A trained tokenizer directory (see trainer.hpp), loaded after checking that spm.model is the file its
// tokenizer_config.json was written for.
//
//   auto tokenizer = lumi::tokenizer::Tokenizer::load("runs/x/tokenizer");
//   std::vector<int> ids = tokenizer.encode("To be, or not to be");  // no BOS or EOS added
//   std::string text = tokenizer.decode(ids);

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sentencepiece_processor.h>
#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/parallel.hpp"
#include "lumi/core/sha256.hpp"

namespace lumi::tokenizer {

// Cheap to copy: copies share one immutable SentencePiece processor, whose encoding is thread-safe.
class Tokenizer {
  public:
    // `expected_sha256`, when given, is the model a later stage was made with (a packed dataset's header).
    static Tokenizer load(const std::filesystem::path& dir, std::optional<std::string> expected_sha256 = {}) {
        const std::filesystem::path config_file = dir / "tokenizer_config.json";
        if (!std::filesystem::exists(config_file))
            throw lumi::Error(config_file.string() + ": not found: " + dir.string() +
                              " is not a tokenizer directory written by train_tokenizer");
        const boost::json::value config = lumi::config::read_json_file(config_file);
        const boost::json::value* recorded = nullptr;
        const boost::json::value* model_name = nullptr;
        if (const auto* lumi_fields = config.is_object() ? config.as_object().if_contains("lumi") : nullptr;
            lumi_fields && lumi_fields->is_object()) {
            recorded = lumi_fields->as_object().if_contains("spm_model_sha256");
            model_name = lumi_fields->as_object().if_contains("spm_model");
        }
        if (!recorded || !recorded->is_string() || !model_name || !model_name->is_string())
            throw lumi::Error(
                config_file.string() +
                ": lumi.spm_model and lumi.spm_model_sha256 are missing: not written by train_tokenizer");

        Tokenizer tokenizer;
        tokenizer.directory_ = dir;
        // The model is a file of the tokenizer directory: a path in the config cannot lead out of it.
        const std::filesystem::path model_path(std::string(model_name->get_string()));
        if (model_path.empty() || model_path != model_path.filename() || model_path == "." ||
            model_path == "..")
            throw lumi::Error(config_file.string() + ": lumi.spm_model: expected the name of a file in " +
                              dir.string() + ", found \"" + std::string(model_name->get_string()) + "\"");
        const std::filesystem::path model_file = dir / model_path;
        // Hash the very bytes that are loaded, so the file cannot change in between.
        const std::string bytes = lumi::read_file(model_file);
        tokenizer.sha256_ = lumi::sha256_hex(bytes);
        const std::string recorded_sha256(recorded->get_string());
        if (tokenizer.sha256_ != recorded_sha256)
            throw lumi::Error(model_file.string() + ": SHA-256 " + tokenizer.sha256_ + " differs from " +
                              recorded_sha256 + " recorded in " + config_file.string() +
                              ": the model file was modified or replaced");
        if (expected_sha256 && tokenizer.sha256_ != *expected_sha256)
            throw lumi::Error(model_file.string() + ": SHA-256 " + tokenizer.sha256_ +
                              " differs from the expected " + *expected_sha256 +
                              ": this is not the tokenizer the data was made with");

        auto processor = std::make_shared<sentencepiece::SentencePieceProcessor>();
        if (const auto status = processor->LoadFromSerializedProto(bytes); !status.ok())
            throw lumi::Error(model_file.string() + ": not a SentencePiece model: " + status.message());
        tokenizer.processor_ = std::move(processor);
        return tokenizer;
    }

    std::vector<int> encode(std::string_view text) const {
        std::vector<int> ids;
        if (const auto status = processor_->Encode(absl::string_view(text.data(), text.size()), &ids);
            !status.ok())
            throw lumi::Error("tokenizer " + directory_.string() + ": cannot encode: " + status.message());
        return ids;
    }

    // encode() of each text, spread over `threads` threads.
    std::vector<std::vector<int>> encode_batch(const std::vector<std::string>& texts,
                                               std::size_t threads = lumi::default_threads()) const {
        std::vector<std::vector<int>> ids(texts.size());
        lumi::parallel_for(texts.size(), threads, [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) ids[i] = encode(texts[i]);
        });
        return ids;
    }

    std::string decode(std::span<const int> ids) const {
        for (const int id : ids) check_id(id);
        std::string text;
        if (const auto status = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
            !status.ok())
            throw lumi::Error("tokenizer " + directory_.string() + ": cannot decode: " + status.message());
        return text;
    }

    int vocab_size() const { return processor_->GetPieceSize(); }
    int unk_id() const { return processor_->unk_id(); }
    int bos_id() const { return processor_->bos_id(); }  // -1 when the tokenizer has none
    int eos_id() const { return processor_->eos_id(); }
    int pad_id() const { return processor_->pad_id(); }

    // unk_id() for a piece not in the vocabulary, as SentencePiece.
    int piece_to_id(std::string_view piece) const {
        return processor_->PieceToId(absl::string_view(piece.data(), piece.size()));
    }
    std::string id_to_piece(int id) const {
        check_id(id);
        return processor_->IdToPiece(id);
    }

    // Of the model file: what packed data and checkpoints record.
    const std::string& sha256() const { return sha256_; }
    const std::filesystem::path& directory() const { return directory_; }

    // The processor itself, for what this class does not wrap (pieces, sampling, n-best).
    const sentencepiece::SentencePieceProcessor& processor() const { return *processor_; }

  private:
    Tokenizer() = default;

    void check_id(int id) const {
        if (id < 0 || id >= vocab_size())
            throw lumi::Error("tokenizer " + directory_.string() + ": id " + std::to_string(id) +
                              " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    }

    std::shared_ptr<const sentencepiece::SentencePieceProcessor> processor_;
    std::string sha256_;
    std::filesystem::path directory_;
};

}  // namespace lumi::tokenizer

namespace lumi {
using tokenizer::Tokenizer;
}  // namespace lumi
