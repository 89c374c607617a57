#pragma once

// The prepare_dpo stage: preference datasets -> (prompt, chosen, rejected) rendered with SFT's chat templates
// -> tokens, truncated by one rule -> train/val shards where pair i is rows 2i (chosen) and 2i + 1
// (rejected), each the prompt then the response, right-padded, with a loss mask on the response -> manifest.
//
// Readers (a dataset file or folder as data/records.hpp reads it: JSON array, JSON lines, Parquet; the format
// detected from the first record unless configured):
//   hh_rlhf:  {"chosen": "\n\nHuman: ...\n\nAssistant: ...", "rejected": ...}: the prompt is the common text
//             up to the last "\n\nAssistant:", earlier turns become the conversation's history.
//   pairs:    {"prompt" (or "question"): ..., "chosen": ..., "rejected": ..., "system": optional} (strings,
//             as Intel's Orca DPO pairs).
//   messages: TRL's conversational format: "prompt" a list of {"role", "content"} and "chosen"/"rejected" the
//             assistant's message lists; or no "prompt", and chosen/rejected whole conversations sharing it.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/parallel.hpp"
#include "lumi/core/progress.hpp"
#include "lumi/data/pack.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/data/records.hpp"
#include "lumi/data/sft.hpp"

namespace lumi::data {

enum class PreferenceFormat { detect, hh_rlhf, pairs, messages };

struct PreferenceSource {
    std::filesystem::path path;
    PreferenceFormat format = PreferenceFormat::detect;
    std::uint64_t max_pairs = 0;  // 0: every pair; else the file's first N usable pairs

    void validate() const {
        if (path.empty()) throw config::FieldError("path", "must name a dataset file or folder");
    }
};

// Truncation: a prompt longer than max_prompt_tokens keeps its last max_prompt_tokens tokens (the turn being
// answered matters most); then each response keeps its first sequence_length - prompt tokens. A pair whose
// responses are equal after that is dropped.
struct PreferenceSettings {
    std::vector<PreferenceSource> datasets;
    std::filesystem::path tokenizer = "data/tokenizer";  // read by the prepare_dpo executable
    std::filesystem::path output = "data/dpo";
    ChatTemplate chat_template = ChatTemplate::instruct;  // the SFT stage's, so the model knows the turns
    std::uint32_t sequence_length = 256;                  // prompt + response tokens of each stored row
    std::uint32_t max_prompt_tokens = 128;
    double validation_fraction = 0.05;  // of prompts: every pair of a prompt lands on the same side
    std::uint64_t seed = 1234;
    std::uint64_t sequences_per_shard = 16384;  // rows (two per pair)
    std::uint32_t threads = 0;                  // 0: lumi::default_threads()
    bool skip_malformed = false;                // skip and count bad records instead of stopping at the first

    // An empty `datasets` is valid here (the pipeline's DPO stages are off without data); preparing needs
    // one.
    void validate() const {
        if (output.empty()) throw config::FieldError("output", "must name the output directory");
        if (sequence_length < 2) throw config::FieldError("sequence_length", "must be at least 2");
        if (max_prompt_tokens < 1 || max_prompt_tokens >= sequence_length)
            throw config::FieldError("max_prompt_tokens",
                                     "must be in [1, sequence_length): a response needs room too");
        if (!(validation_fraction >= 0 && validation_fraction < 1))
            throw config::FieldError("validation_fraction", "must be in [0, 1)");
        if (sequences_per_shard < 1) throw config::FieldError("sequences_per_shard", "must be at least 1");
    }
};

// A prompt (its conversation; the last turn's response is the one being chosen) and two answers.
struct PreferencePair {
    Conversation prompt;
    std::string chosen, rejected;
};

struct PreferenceRead {
    PreferenceFormat format = PreferenceFormat::detect;
    std::vector<PreferencePair> pairs;
    std::uint64_t records = 0;  // lines or elements read
    std::uint64_t skipped = 0;  // malformed, skipped because skip_malformed
    std::uint64_t empty = 0;    // an empty prompt or response: nothing to compare
};

namespace detail {

inline PreferenceFormat detect_preference_format(const json::value& record, const std::string& origin) {
    const json::object* object = record.if_object();
    if (object && object->contains("chosen") && object->contains("rejected")) {
        const json::value* prompt = object->if_contains("prompt");
        if (object->at("chosen").is_array() || (prompt && prompt->is_array()))
            return PreferenceFormat::messages;
        if (prompt || object->contains("question")) return PreferenceFormat::pairs;
        return PreferenceFormat::hh_rlhf;
    }
    std::string keys;
    if (object)
        for (const auto& item : *object) keys += (keys.empty() ? "" : ", ") + std::string(item.key());
    throw lumi::Error(
        origin + ": cannot detect the preference format from the first record (keys: " + keys +
        "); expected hh_rlhf (chosen, rejected transcripts), pairs (prompt or question, chosen, "
        "rejected) or messages (chosen and rejected message lists); set the dataset's format");
}

inline std::string trim(std::string_view text) {
    const std::size_t begin = text.find_first_not_of(" \t\r\n");
    if (begin == std::string_view::npos) return {};
    const std::size_t end = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(begin, end - begin + 1));
}

// "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:" -> turns (a, b), (c, "").
inline Conversation parse_hh_prompt(std::string_view prompt) {
    static constexpr std::string_view human = "\n\nHuman:", assistant = "\n\nAssistant:";
    Conversation conversation;
    std::size_t at = 0;
    while (at < prompt.size()) {
        if (!prompt.substr(at).starts_with(human))
            throw RecordError(
                "the transcript does not alternate \"\\n\\nHuman:\" and \"\\n\\nAssistant:\" (at byte " +
                std::to_string(at) + ")");
        const std::size_t question = at + human.size();
        const std::size_t answer_mark = prompt.find(assistant, question);
        if (answer_mark == std::string_view::npos)
            throw RecordError("a \"Human:\" turn without an \"Assistant:\" reply");
        const std::size_t answer = answer_mark + assistant.size();
        const std::size_t next = std::min(prompt.find(human, answer), prompt.size());
        conversation.turns.push_back({trim(prompt.substr(question, answer_mark - question)),
                                      trim(prompt.substr(answer, next - answer))});
        at = next;
    }
    return conversation;
}

inline PreferencePair read_hh_rlhf(const json::value& record) {
    static constexpr std::string_view assistant = "\n\nAssistant:";
    const std::string_view chosen = string_field(record, "chosen"),
                           rejected = string_field(record, "rejected");
    const std::size_t last = chosen.rfind(assistant);
    if (last == std::string_view::npos) throw RecordError("field 'chosen': no \"\\n\\nAssistant:\" turn");
    const std::string_view prompt = chosen.substr(0, last + assistant.size());
    if (!rejected.starts_with(prompt))
        throw RecordError(
            "'chosen' and 'rejected' do not share the prompt up to chosen's last \"Assistant:\"");
    PreferencePair pair{parse_hh_prompt(prompt), trim(chosen.substr(prompt.size())),
                        trim(rejected.substr(prompt.size()))};
    if (pair.prompt.turns.back().response.empty()) return pair;
    throw RecordError("the prompt does not end with an \"Assistant:\" turn to answer");
}

inline PreferencePair read_pairs(const json::value& record) {
    const json::object& object = record.as_object();
    const char* prompt_key = object.contains("prompt") ? "prompt" : "question";
    PreferencePair pair;
    pair.prompt.context = optional_string_field(record, "system");
    pair.prompt.turns.push_back({trim(string_field(record, prompt_key)), ""});
    pair.chosen = trim(string_field(record, "chosen"));
    pair.rejected = trim(string_field(record, "rejected"));
    return pair;
}

struct Message {
    std::string role, content;
};

inline std::vector<Message> read_messages(const json::value& record, std::string_view key) {
    const json::value* value = record.as_object().if_contains(key);
    if (!value) throw RecordError("missing field '" + std::string(key) + "'");
    const json::array* array = value->if_array();
    if (!array)
        throw RecordError("field '" + std::string(key) + "': expected a list of messages, found " +
                          config::detail::describe_found(*value));
    std::vector<Message> messages;
    for (std::size_t i = 0; i < array->size(); ++i) {
        const std::string at = std::string(key) + "[" + std::to_string(i) + "]";
        try {
            messages.push_back({std::string(string_field((*array)[i], "role")),
                                std::string(string_field((*array)[i], "content"))});
        } catch (const RecordError& e) {
            throw RecordError(at + ": " + e.what());
        }
        const std::string& role = messages.back().role;
        if (role != "system" && !is_prompt_role(role) && !is_response_role(role))
            throw RecordError(at + ".role: unknown role '" + role + "' (expected system, user or assistant)");
    }
    return messages;
}

// A prompt's messages (system, then alternating user and assistant, ending with the user) as a conversation.
inline Conversation messages_prompt(const std::vector<Message>& messages, std::string_view key) {
    Conversation conversation;
    std::string pending;
    for (const Message& m : messages) {
        if (m.role == "system") {
            conversation.context = m.content;
        } else if (is_prompt_role(m.role)) {
            pending = pending.empty() ? m.content : pending + "\n\n" + m.content;
        } else {
            if (pending.empty())
                throw RecordError("field '" + std::string(key) +
                                  "': an assistant message before any user one");
            conversation.turns.push_back({std::move(pending), m.content});
            pending.clear();
        }
    }
    if (pending.empty())
        throw RecordError("field '" + std::string(key) + "': the prompt must end with a user message");
    conversation.turns.push_back({std::move(pending), ""});
    return conversation;
}

// The assistant's answer: one message, or several joined.
inline std::string messages_answer(const std::vector<Message>& messages, std::string_view key) {
    std::string answer;
    for (const Message& m : messages) {
        if (!is_response_role(m.role))
            throw RecordError("field '" + std::string(key) + "': the answer holds a '" + m.role +
                              "' message; only the assistant's belong there");
        answer = answer.empty() ? m.content : answer + "\n\n" + m.content;
    }
    return trim(answer);
}

inline PreferencePair read_messages_pair(const json::value& record) {
    auto chosen = read_messages(record, "chosen"), rejected = read_messages(record, "rejected");
    if (record.as_object().contains("prompt")) {
        PreferencePair pair{messages_prompt(read_messages(record, "prompt"), "prompt"),
                            messages_answer(chosen, "chosen"), messages_answer(rejected, "rejected")};
        return pair;
    }
    // Implicit prompt: the messages both conversations share, up to where they part.
    std::size_t shared = 0;
    while (shared < chosen.size() && shared < rejected.size() &&
           chosen[shared].role == rejected[shared].role && chosen[shared].content == rejected[shared].content)
        ++shared;
    while (shared > 0 && !is_prompt_role(chosen[shared - 1].role))
        --shared;  // answers start after a user turn
    if (shared == 0) throw RecordError("'chosen' and 'rejected' share no prompt (no common user message)");
    const std::vector<Message> prompt(chosen.begin(), chosen.begin() + std::ptrdiff_t(shared));
    return {messages_prompt(prompt, "chosen"),
            messages_answer({chosen.begin() + std::ptrdiff_t(shared), chosen.end()}, "chosen"),
            messages_answer({rejected.begin() + std::ptrdiff_t(shared), rejected.end()}, "rejected")};
}

}  // namespace detail

// Calls f(pair) for each usable pair of a preference dataset (a file or a folder of files) as it is read; the
// format is detected from the first record unless set. The result holds the counts, not the pairs.
template <class F>
PreferenceRead for_each_preference_pair(const PreferenceSource& source, bool skip_malformed, F&& f) {
    PreferenceRead result;
    result.format = source.format;
    std::uint64_t kept = 0;
    result.skipped = for_each_dataset_record(
        source.path, skip_malformed, [&](const json::value& record, const std::string& origin) {
            ++result.records;
            if (result.format == PreferenceFormat::detect)
                result.format = detail::detect_preference_format(record, origin);
            if (!record.is_object())
                throw RecordError("expected a JSON object, found " + config::detail::describe_found(record));
            if (source.max_pairs > 0 && kept >= source.max_pairs) return;
            PreferencePair pair = result.format == PreferenceFormat::hh_rlhf ? detail::read_hh_rlhf(record)
                                  : result.format == PreferenceFormat::pairs
                                      ? detail::read_pairs(record)
                                      : detail::read_messages_pair(record);
            const bool usable = !pair.chosen.empty() && !pair.rejected.empty() &&
                                std::all_of(pair.prompt.turns.begin(), pair.prompt.turns.end(),
                                            [](const Turn& t) { return !t.prompt.empty(); });
            if (!usable) {
                ++result.empty;
                return;
            }
            pair.prompt.origin = origin;
            ++kept;
            f(std::move(pair));
        });
    if (result.records == 0) throw lumi::Error(source.path.string() + ": the dataset has no records");
    return result;
}

// Reads one preference dataset into pairs.
inline PreferenceRead read_preference_dataset(const PreferenceSource& source, bool skip_malformed = false) {
    std::vector<PreferencePair> pairs;
    PreferenceRead result = for_each_preference_pair(
        source, skip_malformed, [&](PreferencePair pair) { pairs.push_back(std::move(pair)); });
    result.pairs = std::move(pairs);
    return result;
}

// The prompt's pieces as the chat template renders them (each encoded on its own, as SFT does).
inline std::vector<std::string> prompt_pieces(const Conversation& prompt, ChatTemplate kind) {
    std::vector<std::string> pieces;
    for (const TemplatePiece& piece : render(prompt, kind)) pieces.push_back(piece.text);
    pieces.pop_back();  // the last turn's response: what chosen and rejected fill
    return pieces;
}

struct TokenizedPair {
    std::vector<int> prompt, chosen, rejected;  // each response ends with EOS unless truncated
};

template <Encoder Encode>
TokenizedPair tokenize(const PreferencePair& pair, ChatTemplate kind, const Encode& encode, int eos_id) {
    TokenizedPair out;
    for (const std::string& piece : prompt_pieces(pair.prompt, kind)) {
        const std::vector<int> ids = encode(std::string_view(piece));
        out.prompt.insert(out.prompt.end(), ids.begin(), ids.end());
    }
    out.chosen = encode(std::string_view(response_text(kind, pair.chosen)));
    out.chosen.push_back(eos_id);
    out.rejected = encode(std::string_view(response_text(kind, pair.rejected)));
    out.rejected.push_back(eos_id);
    return out;
}

// Applies PreferenceSettings' truncation rule; says what it cut.
struct Truncation {
    bool prompt = false, response = false;
};
inline Truncation truncate_pair(TokenizedPair& pair, std::size_t sequence_length, std::size_t max_prompt) {
    Truncation cut;
    if (pair.prompt.size() > max_prompt) {
        pair.prompt.erase(pair.prompt.begin(), pair.prompt.end() - std::ptrdiff_t(max_prompt));
        cut.prompt = true;
    }
    const std::size_t room = sequence_length - pair.prompt.size();
    for (std::vector<int>* response : {&pair.chosen, &pair.rejected})
        if (response->size() > room) {
            response->resize(room);
            cut.response = true;
        }
    return cut;
}

struct PreferenceSplitReport {
    std::uint64_t pairs = 0, sequences = 0, tokens = 0;  // tokens stored, padding included
    std::uint64_t prompt_tokens = 0, chosen_tokens = 0, rejected_tokens = 0;
    std::vector<ShardRecord> shards;
};

struct PreferenceDatasetReport {
    std::string path;
    PreferenceFormat format = PreferenceFormat::detect;
    std::uint64_t records = 0, skipped_malformed = 0, empty = 0, pairs = 0;
    std::uint64_t train_pairs = 0, val_pairs = 0;
};

// What was dropped and why, in pairs.
struct PreferenceDrops {
    std::uint64_t identical = 0;  // chosen equals rejected (as tokens, after truncation)
    std::uint64_t duplicate = 0;  // the same prompt, chosen and rejected as an earlier pair
    std::uint64_t truncated_prompts = 0, truncated_responses = 0;  // kept, but cut (not drops)
};

// manifest.json of a preference dataset, written by reflection.
struct PreferenceManifest {
    std::string kind = "lumi.dpo";
    std::uint32_t format_version = shard_version;
    std::string layout =
        "pair i is rows 2i (chosen) and 2i + 1 (rejected): prompt tokens then the response's, right-padded "
        "with pad_id; loss_mask 1 on the response (and its EOS), 0 on the prompt and padding";
    std::string truncation =
        "a prompt over max_prompt_tokens keeps its last max_prompt_tokens tokens; each response keeps its "
        "first sequence_length - prompt tokens";
    std::string split = "a pair goes to val when xxh64(prompt tokens, seed) / 2^64 < validation_fraction";
    std::string tokenizer_sha256;
    std::uint32_t vocab_size = 0;
    int eos_id = -1, pad_id = -1;
    std::uint32_t sequence_length = 0;
    PreferenceDrops dropped;
    std::vector<PreferenceDatasetReport> datasets;
    PreferenceSplitReport train, val;
    PreferenceSettings settings;
};

struct PreferenceReport {
    PreferenceManifest manifest;
    double seconds = 0;
};

namespace detail {

// One split's shards, written as its pairs are decided: rows 2i (chosen) and 2i + 1 (rejected).
class PreferenceSplitWriter {
  public:
    PreferenceSplitWriter(const PreferenceSettings& settings, const ShardLayout& layout, int pad_id,
                          const std::filesystem::path& directory, const std::string& name)
        : writer_(directory, name, layout, settings.sequences_per_shard),
          pad_id_(pad_id),
          tokens_(settings.sequence_length),
          mask_(settings.sequence_length) {}

    void add(const TokenizedPair& pair) {
        for (const std::vector<int>* response : {&pair.chosen, &pair.rejected}) {
            std::copy(pair.prompt.begin(), pair.prompt.end(), tokens_.begin());
            std::copy(response->begin(), response->end(),
                      tokens_.begin() + std::ptrdiff_t(pair.prompt.size()));
            const std::size_t used = pair.prompt.size() + response->size();
            std::fill(tokens_.begin() + std::ptrdiff_t(used), tokens_.end(), pad_id_);
            std::fill(mask_.begin(), mask_.end(), 0);
            std::fill_n(mask_.begin() + std::ptrdiff_t(pair.prompt.size()), response->size(), 1);
            writer_.add(tokens_, mask_);
        }
        report_.prompt_tokens += pair.prompt.size();
        report_.chosen_tokens += pair.chosen.size();
        report_.rejected_tokens += pair.rejected.size();
        ++report_.pairs;
    }

    std::uint64_t pairs() const { return report_.pairs; }

    PreferenceSplitReport finish() {
        report_.sequences = writer_.sequences();
        report_.tokens = report_.sequences * tokens_.size();
        report_.shards = writer_.finish();
        return report_;
    }

  private:
    ShardWriter writer_;
    int pad_id_;
    std::vector<int> tokens_;
    std::vector<std::uint8_t> mask_;
    PreferenceSplitReport report_;
};

}  // namespace detail

// Reads, renders, tokenises, truncates and deduplicates settings.datasets into settings.output (replaced
// atomically).
// `show_progress`: lumi::InputProgress on stderr.
template <Encoder Encode>
PreferenceReport prepare_preferences(const PreferenceSettings& settings, const Encode& encode,
                                     const TokenizerInfo& tokenizer, bool show_progress = false) {
    settings.validate();
    if (settings.datasets.empty()) throw config::FieldError("datasets", "must list at least one dataset");
    check_tokenizer(tokenizer);
    const auto start = std::chrono::steady_clock::now();
    const std::size_t threads = settings.threads > 0 ? settings.threads : lumi::default_threads();
    const int pad_id = tokenizer.pad_id >= 0 ? tokenizer.pad_id : tokenizer.eos_id;
    PreferenceReport report;
    PreferenceManifest& manifest = report.manifest;

    // Each dataset is read and tokenised a batch of pairs at a time on all threads, and each pair written to
    // its split as it is decided: memory holds one batch and a hash per pair (to drop repeats).
    lumi::StagedDirectory staged(settings.output);
    const ShardLayout layout{settings.sequence_length, tokenizer.vocab_size, tokenizer.sha256, true, false};
    detail::PreferenceSplitWriter train(settings, layout, pad_id, staged.path(), "train");
    detail::PreferenceSplitWriter val(settings, layout, pad_id, staged.path(), "val");
    std::unordered_set<std::uint64_t> seen;
    auto bytes_of = [](const std::vector<int>& ids) {
        return std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int));
    };
    constexpr std::size_t batch_pairs = 4096;
    lumi::InputProgress progress("dpo", dataset_bytes(settings.datasets), show_progress);
    for (std::size_t d = 0; d < settings.datasets.size(); ++d) {
        PreferenceDatasetReport stats;
        std::vector<PreferencePair> batch;
        auto flush = [&] {
            std::vector<TokenizedPair> tokenized(batch.size());
            lumi::parallel_for(batch.size(), threads, [&](std::size_t begin, std::size_t end) {
                for (std::size_t i = begin; i < end; ++i) {
                    tokenized[i] = tokenize(batch[i], settings.chat_template, encode, tokenizer.eos_id);
                    for (const auto* ids :
                         {&tokenized[i].prompt, &tokenized[i].chosen, &tokenized[i].rejected})
                        for (int id : *ids)
                            if (id < 0 || static_cast<std::uint32_t>(id) >= tokenizer.vocab_size)
                                throw lumi::Error(batch[i].prompt.origin + ": the encoder returned id " +
                                                  std::to_string(id) + ", outside the vocabulary (size " +
                                                  std::to_string(tokenizer.vocab_size) + ")");
                }
            });
            std::uint64_t bytes = 0;
            for (const PreferencePair& pair : batch) {
                bytes += pair.chosen.size() + pair.rejected.size() + pair.prompt.context.size();
                for (const Turn& turn : pair.prompt.turns) bytes += turn.prompt.size() + turn.response.size();
            }
            progress.advance(bytes);
            for (TokenizedPair& pair : tokenized) {
                const Truncation cut =
                    truncate_pair(pair, settings.sequence_length, settings.max_prompt_tokens);
                manifest.dropped.truncated_prompts += cut.prompt;
                manifest.dropped.truncated_responses += cut.response;
                if (pair.chosen == pair.rejected) {
                    ++manifest.dropped.identical;
                    continue;
                }
                Xxh64 hash(settings.seed);
                for (const auto* ids : {&pair.prompt, &pair.chosen, &pair.rejected}) {
                    const std::uint64_t size = ids->size();
                    hash.update(&size, sizeof size);
                    hash.update(bytes_of(*ids).data(), bytes_of(*ids).size());
                }
                if (!seen.insert(hash.digest()).second) {
                    ++manifest.dropped.duplicate;
                    continue;
                }
                if (in_validation(bytes_of(pair.prompt), settings.validation_fraction, settings.seed)) {
                    val.add(pair);
                    ++stats.val_pairs;
                } else {
                    train.add(pair);
                    ++stats.train_pairs;
                }
            }
            batch.clear();
        };
        const PreferenceRead read =
            for_each_preference_pair(settings.datasets[d], settings.skip_malformed, [&](PreferencePair pair) {
                batch.push_back(std::move(pair));
                ++stats.pairs;
                if (batch.size() == batch_pairs) flush();
            });
        flush();
        stats.path = settings.datasets[d].path.string();
        stats.format = read.format;
        stats.records = read.records;
        stats.skipped_malformed = read.skipped;
        stats.empty = read.empty;
        manifest.datasets.push_back(stats);
    }
    progress.finish();
    if (train.pairs() == 0)
        throw lumi::Error("prepare_dpo: no training pairs are left (" +
                          std::to_string(manifest.dropped.identical) + " identical, " +
                          std::to_string(manifest.dropped.duplicate) + " duplicate, " +
                          std::to_string(val.pairs()) + " in validation)");
    manifest.train = train.finish();
    manifest.val = val.finish();
    manifest.tokenizer_sha256 = tokenizer.sha256;
    manifest.vocab_size = tokenizer.vocab_size;
    manifest.eos_id = tokenizer.eos_id;
    manifest.pad_id = pad_id;
    manifest.sequence_length = settings.sequence_length;
    manifest.settings = settings;
    config::save(manifest, staged.path() / "manifest.json");
    config::save(settings, staged.path() / "config.json");
    staged.commit();
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
}

// A prepared preference split, as the trainer reads it: example i is pair i, a batch of B pairs is 2B rows
// (the B chosen, then the B rejected, as TRL concatenates them), with the loss mask on the responses.
class PreferenceDataset {
  public:
    explicit PreferenceDataset(const std::filesystem::path& directory, PackedOptions options = {})
        : rows_(directory, options), seed_(options.seed) {
        const auto manifest = directory / "manifest.json";
        const std::string kind = std::filesystem::exists(manifest)
                                     ? std::string(config::read_json_file(manifest).at("kind").as_string())
                                     : std::string("none (no manifest.json)");
        if (kind != "lumi.dpo")
            throw lumi::Error(directory.string() + ": not a preference dataset (manifest kind " + kind +
                              "); prepare one with lumi_prepare_dpo");
        if (!rows_.has_loss_mask() || rows_.size() % 2 != 0)
            throw lumi::Error(directory.string() + ": the " + options.split +
                              " split does not hold whole pairs with loss masks (" +
                              std::to_string(rows_.size()) + " rows)");
    }

    std::int64_t size() const { return rows_.size() / 2; }
    std::int64_t sequence_length() const { return rows_.sequence_length(); }
    std::uint32_t vocab_size() const { return rows_.vocab_size(); }
    std::string tokenizer_sha256() const { return rows_.tokenizer_sha256(); }
    std::string identity() const { return rows_.identity(); }
    const PackedDataset& rows() const { return rows_; }

    std::vector<std::int64_t> order(std::uint64_t epoch) const {
        return shuffled_order(size(), seed_, epoch);
    }

    Sample samples(std::span<const std::int64_t> pairs) const {
        std::vector<std::int64_t> rows;
        rows.reserve(2 * pairs.size());
        for (std::int64_t i : pairs) rows.push_back(2 * i);
        for (std::int64_t i : pairs) rows.push_back(2 * i + 1);
        return rows_.samples(rows);
    }

    void check_matches(const PreferenceDataset& other) const { rows_.check_matches(other.rows_); }

  private:
    PackedDataset rows_;
    std::uint64_t seed_;
};

}  // namespace lumi::data
