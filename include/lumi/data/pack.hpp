#pragma once

// The pack_dataset stage: corpus shards (JSONL, one {"text": ...} per line) -> token sequences of a fixed
// length in train/val binary shards (see packed.hpp) plus manifest.json and config.json.
//
// Each document is tokenised, followed by EOS, and appended to its split's token stream, which is cut
// into sequences of `sequence_length`; the tail shorter than one sequence is dropped and counted. A
// document goes to the validation split when the hash of its text (with the seed) falls below
// `validation_fraction`, so no document is in both and duplicates land together. A trainer predicting the
// next token reads tokens[:-1] -> tokens[1:] of a sequence.
//
// The library does not depend on the tokenizer type: it takes an encoder (text -> ids, called from several
// threads at once) and the tokenizer's identity (SHA-256, vocabulary size, EOS id).

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/parallel.hpp"
#include "lumi/core/progress.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/data/records.hpp"

namespace lumi::data {

namespace json = boost::json;

// What a packed file records about the tokenizer that made it.
struct TokenizerInfo {
    std::string sha256;
    std::uint32_t vocab_size = 0;
    int eos_id = -1;
    int pad_id = -1;  // < 0: none (SFT padding then uses EOS, masked out)
};

// From any tokenizer with sha256(), vocab_size(), eos_id() and pad_id() (lumi::tokenizer::Tokenizer).
template <class T>
TokenizerInfo tokenizer_info(const T& tokenizer) {
    return {std::string(tokenizer.sha256()), static_cast<std::uint32_t>(tokenizer.vocab_size()),
            static_cast<int>(tokenizer.eos_id()), static_cast<int>(tokenizer.pad_id())};
}

// A text -> token ids function, safe to call from several threads.
template <class E>
concept Encoder = std::convertible_to<std::invoke_result_t<const E&, std::string_view>, std::vector<int>>;

// The string member `key` of a record, or a RecordError saying what is missing.
inline const json::string& string_field(const json::value& record, std::string_view key) {
    const json::object* object = record.if_object();
    if (!object) throw RecordError("expected a JSON object, found " + config::detail::describe_found(record));
    const json::value* value = object->if_contains(key);
    if (!value) throw RecordError("missing field '" + std::string(key) + "'");
    const json::string* text = value->if_string();
    if (!text)
        throw RecordError("field '" + std::string(key) + "': expected a string, found " +
                          config::detail::describe_found(*value));
    return *text;
}

// Deterministic train/validation assignment of a document by the hash of its text.
inline bool in_validation(std::string_view text, double fraction, std::uint64_t seed) {
    if (fraction <= 0) return false;
    return static_cast<double>(xxh64(text, seed) >> 11) * 0x1.0p-53 < fraction;
}

struct PackSettings {
    std::filesystem::path corpus = "data/corpus";        // a directory of *.jsonl shards, or one .jsonl file
    std::filesystem::path tokenizer = "data/tokenizer";  // read by the pack_dataset executable
    std::filesystem::path output = "data/packed";
    std::uint32_t sequence_length = 256;
    double validation_fraction = 0.01;
    std::uint64_t seed = 1234;
    std::uint64_t sequences_per_shard = 16384;
    std::uint32_t batch_documents = 512;  // documents tokenised together, split across the threads
    std::uint32_t threads = 0;            // 0: lumi::default_threads()
    std::string text_field = "text";
    bool skip_malformed = false;  // skip and count bad lines instead of stopping at the first

    void validate() const {
        if (corpus.empty()) throw config::FieldError("corpus", "must name the corpus directory");
        if (output.empty()) throw config::FieldError("output", "must name the output directory");
        if (sequence_length < 2) throw config::FieldError("sequence_length", "must be at least 2");
        if (!(validation_fraction >= 0 && validation_fraction < 1))
            throw config::FieldError("validation_fraction", "must be in [0, 1)");
        if (sequences_per_shard < 1) throw config::FieldError("sequences_per_shard", "must be at least 1");
        if (batch_documents < 1) throw config::FieldError("batch_documents", "must be at least 1");
        if (text_field.empty()) throw config::FieldError("text_field", "must not be empty");
    }
};

struct SplitReport {
    std::uint64_t documents = 0;  // examples, for SFT
    std::uint64_t sequences = 0;
    std::uint64_t tokens = 0;  // stored, padding included
    std::uint64_t dropped_tail_tokens = 0;
    std::vector<ShardRecord> shards;
};

struct PackReport {
    SplitReport train, val;
    std::uint64_t files = 0, text_bytes = 0, skipped_lines = 0, empty_documents = 0;
    double seconds = 0;

    double megabytes_per_second() const { return seconds > 0 ? double(text_bytes) / 1e6 / seconds : 0.0; }
};

// The corpus shards in name order: a directory's *.jsonl files, or the one file given.
inline std::vector<std::filesystem::path> jsonl_files(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (fs::is_regular_file(path)) return {path};
    if (!fs::is_directory(path)) throw lumi::Error(path.string() + ": no such corpus file or directory");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.path().extension() != ".jsonl") continue;
        // A shard that is not a file (a directory of that name) must not be skipped silently.
        if (!entry.is_regular_file())
            throw lumi::Error(entry.path().string() + ": is not a regular file, expected a corpus shard");
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw lumi::Error(path.string() + ": the corpus directory has no .jsonl shards");
    return files;
}

inline void check_tokenizer(const TokenizerInfo& tokenizer) {
    if (tokenizer.vocab_size == 0) throw lumi::Error("tokenizer: vocabulary size is 0");
    if (tokenizer.eos_id < 0 || static_cast<std::uint32_t>(tokenizer.eos_id) >= tokenizer.vocab_size)
        throw lumi::Error("tokenizer: EOS id " + std::to_string(tokenizer.eos_id) +
                          " is not in the vocabulary (size " + std::to_string(tokenizer.vocab_size) + ")");
}

inline json::object split_json(const SplitReport& split) {
    json::array shards;
    for (const ShardRecord& shard : split.shards)
        shards.push_back(json::object{{"file", shard.file},
                                      {"bytes", shard.bytes},
                                      {"sequences", shard.sequences},
                                      {"xxh64", shard.xxh64}});
    return {{"documents", split.documents},
            {"sequences", split.sequences},
            {"tokens", split.tokens},
            {"dropped_tail_tokens", split.dropped_tail_tokens},
            {"shards", std::move(shards)}};
}

inline json::object tokenizer_json(const TokenizerInfo& tokenizer) {
    return {{"sha256", tokenizer.sha256},
            {"vocab_size", tokenizer.vocab_size},
            {"eos_id", tokenizer.eos_id},
            {"pad_id", tokenizer.pad_id}};
}

namespace detail {

// One split's token stream, cut into sequences as documents arrive.
class TokenStream {
  public:
    TokenStream(const std::filesystem::path& directory, std::string split, const ShardLayout& layout,
                std::uint64_t sequences_per_shard)
        : writer_(directory, std::move(split), layout, sequences_per_shard),
          length_(layout.sequence_length) {}

    void add_document(const std::vector<int>& ids, int eos) {
        pending_.insert(pending_.end(), ids.begin(), ids.end());
        pending_.push_back(eos);
        ++report_.documents;
        std::size_t at = 0;
        for (; pending_.size() - at >= length_; at += length_)
            writer_.add(std::span<const int>(pending_.data() + at, length_));
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(at));
    }

    SplitReport finish() {
        report_.sequences = writer_.sequences();
        report_.tokens = report_.sequences * length_;
        report_.dropped_tail_tokens = pending_.size();
        report_.shards = writer_.finish();
        return report_;
    }

  private:
    ShardWriter writer_;
    std::size_t length_;
    std::vector<int> pending_;
    SplitReport report_;
};

}  // namespace detail

// Packs settings.corpus into settings.output (replaced atomically). Returns what it wrote.
// `show_progress`: lumi::InputProgress on stderr.
template <Encoder Encode>
PackReport pack_dataset(const PackSettings& settings, const Encode& encode, const TokenizerInfo& tokenizer,
                        bool show_progress = false) {
    namespace fs = std::filesystem;
    settings.validate();
    check_tokenizer(tokenizer);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<fs::path> files = jsonl_files(settings.corpus);
    const std::size_t threads = settings.threads > 0 ? settings.threads : lumi::default_threads();

    StagedDirectory staged(settings.output);
    const ShardLayout layout{settings.sequence_length, tokenizer.vocab_size, tokenizer.sha256};
    detail::TokenStream train(staged.path(), "train", layout, settings.sequences_per_shard);
    detail::TokenStream val(staged.path(), "val", layout, settings.sequences_per_shard);
    PackReport report;
    report.files = files.size();
    std::uint64_t total_bytes = 0;
    for (const fs::path& file : files) {
        std::error_code error;
        const std::uint64_t size = fs::file_size(file, error);
        total_bytes += error ? 0 : size;
    }
    lumi::InputProgress progress("pack", total_bytes, show_progress);

    struct Document {
        std::string text;
        std::uint64_t line;
        bool validation;
    };
    std::vector<Document> batch;
    std::vector<std::vector<int>> ids;
    auto tokenise = [&](const fs::path& file) {
        ids.assign(batch.size(), {});
        lumi::parallel_for(batch.size(), threads, [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) ids[i] = encode(std::string_view(batch[i].text));
        });
        std::uint64_t bytes = 0;  // of the batch's lines: each text and its `{"text": ""}`
        for (std::size_t i = 0; i < batch.size(); ++i) {
            for (int id : ids[i])
                if (id < 0 || static_cast<std::uint32_t>(id) >= tokenizer.vocab_size)
                    throw lumi::Error(file.string() + ":" + std::to_string(batch[i].line) +
                                      ": the encoder returned id " + std::to_string(id) +
                                      ", outside the vocabulary (size " +
                                      std::to_string(tokenizer.vocab_size) + ")");
            (batch[i].validation ? val : train).add_document(ids[i], tokenizer.eos_id);
            bytes += batch[i].text.size() + 12;
        }
        batch.clear();
        progress.advance(bytes);
    };

    for (const fs::path& file : files) {
        report.skipped_lines +=
            for_each_jsonl(file, settings.skip_malformed, [&](const json::value& record, std::uint64_t line) {
                const json::string& text = string_field(record, settings.text_field);
                if (text.empty()) {
                    ++report.empty_documents;
                    return;
                }
                report.text_bytes += text.size();
                const bool validation = in_validation(text, settings.validation_fraction, settings.seed);
                batch.push_back({std::string(text), line, validation});
                if (batch.size() == settings.batch_documents) tokenise(file);
            });
        tokenise(file);  // documents never carry over to the next file, so errors name the right one
    }
    report.train = train.finish();
    report.val = val.finish();
    progress.finish();

    json::object manifest{
        {"kind", "lumi.packed"},
        {"format_version", shard_version},
        {"tokenizer", tokenizer_json(tokenizer)},
        {"sequence_length", settings.sequence_length},
        {"token_bytes", layout.token_bytes()},
        {"arrays", json::array{"tokens"}},
        {"split",
         json::object{{"method", "document to val when xxh64(text, seed) / 2^64 < validation_fraction"},
                      {"validation_fraction", settings.validation_fraction},
                      {"seed", settings.seed}}},
        {"corpus", json::object{{"path", settings.corpus.string()},
                                {"files", report.files},
                                {"text_bytes", report.text_bytes},
                                {"skipped_lines", report.skipped_lines},
                                {"empty_documents", report.empty_documents}}},
        {"train", split_json(report.train)},
        {"val", split_json(report.val)},
        {"settings", config::to_json(settings)}};
    config::write_json_file(manifest, staged.path() / "manifest.json");
    config::save(settings, staged.path() / "config.json");
    staged.commit();
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
}

}  // namespace lumi::data
