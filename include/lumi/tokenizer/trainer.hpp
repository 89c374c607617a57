#pragma once

// Trains a SentencePiece tokenizer (unigram or BPE) into a directory that both lumi::tokenizer::Tokenizer and
// Hugging Face's LlamaTokenizer load:
//
//   spm.model, spm.vocab        the model, and its pieces with their scores
//   tokenizer.model             a copy of spm.model under the name transformers looks for
//   tokenizer_config.json       transformers' fields, and under "lumi": vocab size, special ids and pieces,
//                               normalisation, model type, SHA-256 of spm.model, the settings used
//   special_tokens_map.json     transformers' special tokens
//   manifest.json               the input read (files, documents, lines, sampling) and each file's SHA-256
//
// Sentences reach SentencePiece through its iterator API, one line at a time, straight from the corpus
// shards: the corpus is never copied into a temporary text file.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/parallel.hpp"
#include "lumi/core/sha256.hpp"

namespace lumi::tokenizer {

enum class ModelType { unigram, bpe };

// The normalisations SentencePiece ships precompiled.
inline constexpr std::string_view normalizations[] = {"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf",
                                                      "identity"};

// Fixed piece names of the special ids (LLaMA's).
inline constexpr std::string_view unk_piece = "<unk>";
inline constexpr std::string_view bos_piece = "<s>";
inline constexpr std::string_view eos_piece = "</s>";
inline constexpr std::string_view pad_piece = "<pad>";

struct TrainerSettings {
    // Input and output.
    // A corpus directory (its shard_*.jsonl), a text file, or a folder of text files.
    std::filesystem::path input;
    std::filesystem::path output = "tokenizer";

    // The model.
    ModelType model_type = ModelType::unigram;
    std::int32_t vocab_size = 32768;
    double character_coverage = 0.9995;  // the rarest characters left out of the alphabet
    // NFKC; the nmt_ rules also turn newlines and tabs into spaces, which "nfkc" keeps (as byte pieces).
    std::string normalization = "nmt_nfkc";
    bool byte_fallback = true;              // characters outside the alphabet as UTF-8 byte pieces, not <unk>
    bool split_digits = true;               // every digit a piece of its own, as LLaMA
    bool remove_extra_whitespaces = false;  // keep runs of spaces: decode(encode(x)) gives x back
    // Always single pieces, never split or merged: e.g. the instruction template's markers.
    std::vector<std::string> user_defined_symbols;

    // Special ids, LLaMA's; -1 leaves bos, eos or pad out of the vocabulary.
    std::int32_t unk_id = 0;
    std::int32_t bos_id = 1;
    std::int32_t eos_id = 2;
    std::int32_t pad_id = 3;
    std::int64_t model_max_length = 1024;  // the context length recorded for transformers (the presets')

    // What SentencePiece sees.
    std::uint64_t input_sentence_size = 1'000'000;  // lines sampled for training; 0 = all of them
    bool shuffle = true;                            // a uniform sample (seeded), else the first lines
    std::uint64_t seed = 0;
    std::uint32_t max_sentence_length = 16384;  // in bytes; longer lines are skipped and counted
    std::uint32_t threads = 0;  // 0 = lumi::default_threads(); a unigram model depends on the count (sums)
    bool verbose = false;       // SentencePiece's own progress log on stderr

    void validate() const {
        using lumi::config::FieldError;
        if (input.empty()) throw FieldError("input", "is required: a corpus directory or text files");
        if (output.empty()) throw FieldError("output", "must name a directory");
        if (std::find(std::begin(normalizations), std::end(normalizations), normalization) ==
            std::end(normalizations))
            throw FieldError("normalization",
                             "unknown rule '" + normalization +
                                 "', expected nmt_nfkc, nfkc, nmt_nfkc_cf, nfkc_cf or identity");
        if (!(character_coverage >= 0.98 && character_coverage <= 1.0))
            throw FieldError("character_coverage", "must be in [0.98, 1] (SentencePiece's range)");
        if (max_sentence_length < 10 || max_sentence_length > (1u << 30))
            throw FieldError("max_sentence_length", "must be in [10, 2^30] bytes");
        if (input_sentence_size > 0 && input_sentence_size <= 100)
            throw FieldError("input_sentence_size", "must be 0 (all lines) or more than 100");
        if (threads > 128) throw FieldError("threads", "must be at most 128");
        if (model_max_length < 1) throw FieldError("model_max_length", "must be at least 1");

        const std::pair<const char*, std::int32_t> ids[] = {
            {"unk_id", unk_id}, {"bos_id", bos_id}, {"eos_id", eos_id}, {"pad_id", pad_id}};
        if (unk_id < 0) throw FieldError("unk_id", "must be defined (>= 0): SentencePiece needs <unk>");
        for (const auto& [name, id] : ids) {
            if (id < -1) throw FieldError(name, "must be an id >= 0, or -1 to leave it out");
            if (id >= vocab_size)
                throw FieldError(name, "must be below vocab_size " + std::to_string(vocab_size));
        }
        for (std::size_t i = 0; i < std::size(ids); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (ids[i].second >= 0 && ids[i].second == ids[j].second)
                    throw FieldError(ids[i].first, "equals " + std::string(ids[j].first) + " (" +
                                                       std::to_string(ids[i].second) +
                                                       "): special ids must differ");

        for (std::size_t i = 0; i < user_defined_symbols.size(); ++i) {
            const std::string& symbol = user_defined_symbols[i];
            const std::string field = "user_defined_symbols[" + std::to_string(i) + "]";
            if (symbol.empty()) throw FieldError(field, "must not be empty");
            // SentencePiece receives the list comma-separated.
            if (symbol.find(',') != std::string::npos) throw FieldError(field, "must not contain a comma");
            if (symbol == unk_piece || symbol == bos_piece || symbol == eos_piece || symbol == pad_piece)
                throw FieldError(field, "'" + symbol + "' is already a special piece");
            if (std::find(user_defined_symbols.begin(), user_defined_symbols.begin() + i, symbol) !=
                user_defined_symbols.begin() + i)
                throw FieldError(field, "'" + symbol + "' is listed twice");
        }

        // Below this SentencePiece aborts the process instead of returning an error.
        const std::int64_t reserved =
            std::count_if(std::begin(ids), std::end(ids), [](const auto& id) { return id.second >= 0; }) +
            std::int64_t(user_defined_symbols.size()) + (byte_fallback ? 256 : 0);
        if (vocab_size <= reserved + 1)
            throw FieldError("vocab_size", "must exceed the " + std::to_string(reserved) +
                                               " special, user-defined and byte pieces; " +
                                               std::to_string(vocab_size) + " leaves no room for text");
    }
};

// What was read, and what SentencePiece saw.
struct InputStatistics {
    std::uint64_t files = 0;
    std::uint64_t documents = 0;     // JSONL records (0 for plain text)
    std::uint64_t lines = 0;         // non-empty lines read
    std::uint64_t skipped_long = 0;  // lines over max_sentence_length
    std::uint64_t sentences = 0;     // lines given to SentencePiece, after sampling
    std::uint64_t bytes = 0;         // their size
};

struct TrainingReport {
    std::filesystem::path directory;
    std::int32_t vocab_size = 0;
    std::string sha256;  // of spm.model
    InputStatistics input;
    double seconds = 0;
};

namespace detail {

struct InputFile {
    std::filesystem::path path;
    bool jsonl = false;
};

// A corpus directory gives its shard_*.jsonl; any other directory its visible files; a file itself.
inline std::vector<InputFile> input_files(const std::filesystem::path& input) {
    namespace fs = std::filesystem;
    std::error_code error;
    const auto status = fs::status(input, error);
    if (!fs::exists(status)) throw lumi::Error(input.string() + ": the tokenizer input does not exist");
    auto is_jsonl = [](const fs::path& p) { return p.extension() == ".jsonl"; };
    if (!fs::is_directory(status)) return {{input, is_jsonl(input)}};

    std::vector<fs::path> shards, others;
    for (const auto& entry : fs::directory_iterator(input)) {
        if (!entry.is_regular_file()) continue;
        const std::string name = entry.path().filename().string();
        if (name.starts_with(".") || name == "manifest.json") continue;
        (name.starts_with("shard_") && is_jsonl(name) ? shards : others).push_back(entry.path());
    }
    std::vector<fs::path>& chosen = shards.empty() ? others : shards;
    if (chosen.empty())
        throw lumi::Error(input.string() +
                          ": no input files (expected shard_*.jsonl from the corpus stage, or text files)");
    std::sort(chosen.begin(), chosen.end());
    std::vector<InputFile> files;
    for (auto& path : chosen) files.push_back({path, is_jsonl(path)});
    return files;
}

// The non-empty lines of every file in order; a JSONL record's "text" is split into its lines.
class CorpusReader {
  public:
    CorpusReader(std::vector<InputFile> files, std::size_t max_length)
        : files_(std::move(files)), max_length_(max_length) {}

    // The next line to train on, or false at the end; a malformed JSONL line throws naming file:line.
    bool next(std::string& line) {
        for (;;) {
            if (pending_offset_ < pending_.size()) {
                std::size_t end = pending_.find('\n', pending_offset_);
                if (end == std::string::npos) end = pending_.size();
                std::string_view piece(pending_.data() + pending_offset_, end - pending_offset_);
                pending_offset_ = end + 1;
                if (piece.ends_with('\r')) piece.remove_suffix(1);
                if (accept(piece)) {
                    line.assign(piece);
                    return true;
                }
                continue;
            }
            if (!read_record()) return false;
        }
    }

    const InputStatistics& statistics() const { return statistics_; }

  private:
    bool accept(std::string_view piece) {
        if (piece.find_first_not_of(" \t") == std::string_view::npos) return false;
        ++statistics_.lines;
        if (piece.size() > max_length_) {
            ++statistics_.skipped_long;
            return false;
        }
        return true;
    }

    // Loads the next line (text) or record (JSONL) into pending_; false when every file is read.
    bool read_record() {
        pending_.clear();
        pending_offset_ = 0;
        while (!std::getline(in_, pending_)) {
            if (in_.bad()) throw lumi::Error(files_[index_ - 1].path.string() + ": read error");
            if (index_ == files_.size()) return false;
            in_ = lumi::open_file(files_[index_].path);
            ++index_;
            ++statistics_.files;
            line_number_ = 0;
        }
        ++line_number_;
        if (files_[index_ - 1].jsonl) parse_record();
        return true;
    }

    void parse_record() {
        if (pending_.find_first_not_of(" \t\r") == std::string::npos) return pending_.clear();
        const std::string where = files_[index_ - 1].path.string() + ":" + std::to_string(line_number_);
        boost::json::error_code error;
        const boost::json::value record = boost::json::parse(pending_, error);
        if (error) throw lumi::Error(where + ": invalid JSON: " + error.message());
        const boost::json::object* object = record.if_object();
        const boost::json::value* text = object ? object->if_contains("text") : nullptr;
        if (!text || !text->is_string())
            throw lumi::Error(where +
                              ": expected an object with a string \"text\", as the corpus stage writes");
        pending_.assign(text->get_string().data(), text->get_string().size());
        ++statistics_.documents;
    }

    std::vector<InputFile> files_;
    std::size_t max_length_;
    std::size_t index_ = 0;  // of the next file to open
    std::ifstream in_;
    std::size_t line_number_ = 0;
    std::string pending_;
    std::size_t pending_offset_ = 0;
    InputStatistics statistics_;
};

// Hands the corpus to SentencePiece line by line, or a seeded uniform sample of it (SentencePiece's own
// sampler has a fixed seed). An input error ends the iteration and is rethrown once training returns.
class SentenceFeed final : public sentencepiece::SentenceIterator {
  public:
    SentenceFeed(CorpusReader& reader, const TrainerSettings& settings)
        : reader_(reader), limit_(settings.input_sentence_size) {
        if (limit_ > 0 && settings.shuffle) sample(settings.seed);
        Next();
    }

    bool done() const override { return done_; }
    const std::string& value() const override { return current_; }
    sentencepiece::util::Status status() const override {
        if (!failure_) return {};
        return {sentencepiece::util::StatusCode::kAborted, "lumi could not read the tokenizer input"};
    }

    void Next() override {
        if (done_) return;
        try {
            if (sampled_)
                done_ = position_ == reservoir_.size();
            else
                done_ = (limit_ > 0 && statistics_.sentences == limit_) || !reader_.next(current_);
            if (done_) return;
            if (sampled_) current_ = std::move(reservoir_[position_++]);
            ++statistics_.sentences;
            statistics_.bytes += current_.size();
        } catch (...) {
            failure_ = std::current_exception();
            done_ = true;
        }
    }

    std::exception_ptr failure() const { return failure_; }

    InputStatistics statistics() const {
        InputStatistics all = reader_.statistics();
        all.sentences = statistics_.sentences;
        all.bytes = statistics_.bytes;
        return all;
    }

  private:
    // Reservoir sampling (Algorithm R): every line equally likely, in one pass, holding `limit_` lines.
    void sample(std::uint64_t seed) {
        std::mt19937_64 random(seed);
        std::string line;
        for (std::uint64_t seen = 0; reader_.next(line); ++seen) {
            if (seen < limit_) {
                reservoir_.push_back(std::move(line));
            } else if (const std::uint64_t slot =
                           std::uniform_int_distribution<std::uint64_t>(0, seen)(random);
                       slot < limit_) {
                reservoir_[slot] = std::move(line);
            }
        }
        sampled_ = true;
    }

    CorpusReader& reader_;
    std::uint64_t limit_;
    bool sampled_ = false;
    std::vector<std::string> reservoir_;
    std::size_t position_ = 0;
    std::string current_;
    bool done_ = false;
    std::exception_ptr failure_;
    InputStatistics statistics_;
};

inline std::string number_text(double value) {
    char buffer[32];
    return std::string(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

inline std::unordered_map<std::string, std::string> spm_arguments(const TrainerSettings& s) {
    auto flag = [](bool value) { return std::string(value ? "true" : "false"); };
    std::string symbols;
    for (const std::string& symbol : s.user_defined_symbols) {
        if (!symbols.empty()) symbols += ',';
        symbols += symbol;
    }
    const std::size_t threads =
        s.threads > 0 ? s.threads : std::min<std::size_t>(lumi::default_threads(), 128);
    return {
        {"model_type", s.model_type == ModelType::bpe ? "bpe" : "unigram"},
        {"vocab_size", std::to_string(s.vocab_size)},
        {"character_coverage", number_text(s.character_coverage)},
        {"normalization_rule_name", s.normalization},
        {"byte_fallback", flag(s.byte_fallback)},
        {"split_digits", flag(s.split_digits)},
        {"remove_extra_whitespaces", flag(s.remove_extra_whitespaces)},
        {"user_defined_symbols", symbols},
        {"unk_id", std::to_string(s.unk_id)},
        {"bos_id", std::to_string(s.bos_id)},
        {"eos_id", std::to_string(s.eos_id)},
        {"pad_id", std::to_string(s.pad_id)},
        {"unk_piece", std::string(unk_piece)},
        {"bos_piece", std::string(bos_piece)},
        {"eos_piece", std::string(eos_piece)},
        {"pad_piece", std::string(pad_piece)},
        // The feed samples and skips long lines itself; SentencePiece takes what it is given.
        {"input_sentence_size", "0"},
        {"shuffle_input_sentence", "false"},
        {"max_sentence_length", std::to_string(s.max_sentence_length)},
        {"num_threads", std::to_string(threads)},
        {"hard_vocab_limit", "true"},
        {"minloglevel", s.verbose ? "0" : "1"},
    };
}

// SentencePiece's message, with what to change.
inline std::string training_failure(const TrainerSettings& s, const std::string& message) {
    std::string hint;
    if (message.find("Vocabulary size too high") != std::string::npos)
        hint = "; the input is too small for vocab_size " + std::to_string(s.vocab_size) +
               ": lower vocab_size (to at most the value above) or give more text";
    else if (message.find("smaller than required_chars") != std::string::npos)
        hint = "; raise vocab_size, or lower character_coverage so fewer characters need pieces";
    return s.input.string() + ": SentencePiece could not train the tokenizer: " + message + hint;
}

// spm.vocab as spm_train writes it: each piece and its score, a tab between.
inline std::string vocabulary(const sentencepiece::SentencePieceProcessor& processor) {
    std::ostringstream out;
    for (int id = 0; id < processor.GetPieceSize(); ++id)
        out << processor.IdToPiece(id) << "\t" << processor.GetScore(id) << "\n";
    return std::move(out).str();
}

inline boost::json::object special_piece(std::int32_t id, std::string_view piece) {
    if (id < 0) return {{"id", -1}, {"piece", nullptr}};
    return {{"id", id}, {"piece", piece}};
}

inline boost::json::value token_or_null(std::int32_t id, std::string_view piece) {
    if (id < 0) return nullptr;
    return boost::json::string(piece);
}

}  // namespace detail

// Trains on settings.input and replaces settings.output with the finished directory (never half of one).
inline TrainingReport train_tokenizer(const TrainerSettings& settings) {
    namespace json = boost::json;
    settings.validate();
    const auto start = std::chrono::steady_clock::now();

    detail::CorpusReader reader(detail::input_files(settings.input), settings.max_sentence_length);
    detail::SentenceFeed feed(reader, settings);
    if (feed.failure()) std::rethrow_exception(feed.failure());
    if (feed.done()) {
        const auto read = feed.statistics();
        throw lumi::Error(settings.input.string() + ": no text to train the tokenizer on (" +
                          std::to_string(read.files) + " files, " + std::to_string(read.lines) +
                          " non-empty lines, " + std::to_string(read.skipped_long) +
                          " of them longer than max_sentence_length)");
    }

    // The model comes back in memory: written by SentencePiece it would record its temporary path.
    std::string model;
    const auto status =
        sentencepiece::SentencePieceTrainer::Train(detail::spm_arguments(settings), &feed, &model);
    if (feed.failure()) std::rethrow_exception(feed.failure());
    if (!status.ok()) throw lumi::Error(detail::training_failure(settings, status.message()));

    sentencepiece::SentencePieceProcessor processor;
    if (const auto loaded = processor.LoadFromSerializedProto(model); !loaded.ok())
        throw lumi::Error(settings.input.string() +
                          ": cannot load the model just trained: " + loaded.message());
    if (processor.GetPieceSize() != settings.vocab_size)
        throw lumi::Error(settings.input.string() + ": trained " + std::to_string(processor.GetPieceSize()) +
                          " pieces, expected vocab_size " + std::to_string(settings.vocab_size));

    lumi::StagedDirectory staged(settings.output);
    lumi::write_file_atomic(staged.path() / "spm.model", model);
    lumi::write_file_atomic(staged.path() / "tokenizer.model", model);
    lumi::write_file_atomic(staged.path() / "spm.vocab", detail::vocabulary(processor));

    TrainingReport report{settings.output, processor.GetPieceSize(), lumi::sha256_hex(model),
                          feed.statistics()};

    const std::string model_type = settings.model_type == ModelType::bpe ? "bpe" : "unigram";
    json::object lumi_fields{
        {"format", 1},
        {"vocab_size", report.vocab_size},
        {"model_type", model_type},
        {"normalization", settings.normalization},
        {"byte_fallback", settings.byte_fallback},
        {"special",
         {{"unk", detail::special_piece(settings.unk_id, unk_piece)},
          {"bos", detail::special_piece(settings.bos_id, bos_piece)},
          {"eos", detail::special_piece(settings.eos_id, eos_piece)},
          {"pad", detail::special_piece(settings.pad_id, pad_piece)}}},
        {"user_defined_symbols", lumi::config::to_json(settings.user_defined_symbols)},
        {"spm_model", "spm.model"},
        {"spm_model_sha256", report.sha256},
        {"settings", lumi::config::to_json(settings)},
    };
    // transformers reads the fields it knows and keeps the rest ("lumi") as unused init arguments.
    json::object config{
        {"tokenizer_class", "LlamaTokenizer"},
        {"bos_token", detail::token_or_null(settings.bos_id, bos_piece)},
        {"eos_token", detail::token_or_null(settings.eos_id, eos_piece)},
        {"unk_token", detail::token_or_null(settings.unk_id, unk_piece)},
        {"pad_token", detail::token_or_null(settings.pad_id, pad_piece)},
        {"add_bos_token", settings.bos_id >= 0},
        {"add_eos_token", false},
        {"legacy", true},
        {"model_max_length", settings.model_max_length},
        {"clean_up_tokenization_spaces", false},
        {"sp_model_kwargs", json::object()},
        {"lumi", std::move(lumi_fields)},
    };
    lumi::config::write_json_file(config, staged.path() / "tokenizer_config.json");

    json::object special_tokens;
    for (const auto* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
        if (!config.at(key).is_null()) special_tokens[key] = config.at(key);
    lumi::config::write_json_file(special_tokens, staged.path() / "special_tokens_map.json");

    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    json::object files;
    for (const char* name :
         {"spm.model", "spm.vocab", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
        files[name] = lumi::sha256_file(staged.path() / name);
    const InputStatistics& read = report.input;
    json::object manifest{
        {"stage", "tokenizer"},
        {"input", settings.input.string()},
        {"input_files", read.files},
        {"documents", read.documents},
        {"lines", read.lines},
        {"skipped_long_lines", read.skipped_long},
        {"sentences", read.sentences},
        {"bytes", read.bytes},
        {"vocab_size", report.vocab_size},
        {"seconds", report.seconds},
        {"sha256", std::move(files)},
    };
    lumi::config::write_json_file(manifest, staged.path() / "manifest.json");
    staged.commit();
    return report;
}

}  // namespace lumi::tokenizer
