#pragma once

// The prepare_sft stage: instruction datasets -> conversations -> templated token sequences with a loss
// mask (response tokens and EOS only) -> several examples packed per sequence (best fit) -> train/val
// shards in the packed format with loss mask and segment ids, manifest.json and config.json.
//
// Readers: Alpaca (instruction, input, output), Dolly (instruction, context, response), OpenAssistant
// oasst1 flat messages (message_id, parent_id, role prompter/assistant, text, rank: the best-ranked thread
// from each root prompt), ShareGPT ({"conversations": [{"from": "human", "value": ...}, ...]}) and OpenOrca
// (system_prompt, question, response); a dataset is a file or folder as data/records.hpp reads them (JSON
// array, JSON lines, Parquet), its format detected from its first record unless configured.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/parallel.hpp"
#include "lumi/core/progress.hpp"
#include "lumi/data/chat_template.hpp"
#include "lumi/data/pack.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/data/records.hpp"
#include "lumi/data/spill.hpp"

namespace lumi::data {

enum class SftFormat { detect, alpaca, dolly, oasst, sharegpt, orca };

// best_fit_decreasing: longest first, each into the fullest sequence it fits; best_fit: the same in input
// order; none: one example per sequence.
enum class PackingAlgorithm { best_fit_decreasing, best_fit, none };

struct Turn {
    std::string prompt;
    std::string response;
};

struct Conversation {
    std::string context;  // Alpaca input, Dolly context, ShareGPT system message: shown with the first prompt
    std::vector<Turn> turns;
    std::string origin;  // file:line or file[element], for messages
};

struct SftDataset {
    std::filesystem::path path;
    SftFormat format = SftFormat::detect;
    double weight = 1.0;           // copies of each training example: 2 doubles it, 0.5 keeps a fixed half
    std::uint64_t max_tokens = 0;  // training-token budget after weighting; 0: no limit
    std::uint32_t max_turns = 0;   // 0: every turn; 1: the first prompt/response pair only
    std::string language;          // OpenAssistant `lang` to keep; empty: all

    void validate() const {
        if (path.empty()) throw config::FieldError("path", "must name a dataset file or folder");
        if (!(weight >= 0 && std::isfinite(weight))) throw config::FieldError("weight", "must be >= 0");
    }
};

struct SftSettings {
    std::vector<SftDataset> datasets;
    std::filesystem::path tokenizer = "data/tokenizer";  // read by the prepare_sft executable
    std::filesystem::path output = "data/sft";
    ChatTemplate chat_template = ChatTemplate::instruct;
    PackingAlgorithm packing = PackingAlgorithm::best_fit_decreasing;
    std::uint32_t sequence_length = 256;
    double validation_fraction = 0.02;
    std::uint64_t seed = 1234;
    std::uint64_t sequences_per_shard = 16384;
    std::uint32_t threads = 0;    // 0: lumi::default_threads()
    bool skip_malformed = false;  // skip and count bad records instead of stopping at the first

    void validate() const {
        if (datasets.empty()) throw config::FieldError("datasets", "must list at least one dataset");
        if (output.empty()) throw config::FieldError("output", "must name the output directory");
        if (sequence_length < 2 || sequence_length > 65535)
            throw config::FieldError("sequence_length", "must be in [2, 65535] (segment ids are 16-bit)");
        if (!(validation_fraction >= 0 && validation_fraction < 1))
            throw config::FieldError("validation_fraction", "must be in [0, 1)");
        if (sequences_per_shard < 1) throw config::FieldError("sequences_per_shard", "must be at least 1");
    }
};

struct SftReadResult {
    SftFormat format = SftFormat::detect;
    std::vector<Conversation> conversations;
    std::uint64_t records = 0;  // lines, elements or messages read
    std::uint64_t skipped = 0;  // malformed, skipped because skip_malformed
    std::uint64_t empty = 0;    // no prompt or no response: nothing to learn from
};

namespace detail {

inline std::string optional_string_field(const json::value& record, std::string_view key) {
    const json::value* value = record.as_object().if_contains(key);
    if (!value || value->is_null()) return {};
    if (const json::string* text = value->if_string()) return std::string(*text);
    throw RecordError("field '" + std::string(key) + "': expected a string, found " +
                      config::detail::describe_found(*value));
}

inline SftFormat detect_format(const json::value& record, const std::string& origin) {
    const json::object* object = record.if_object();
    if (object) {
        if (object->contains("conversations")) return SftFormat::sharegpt;
        if (object->contains("message_id") && object->contains("role")) return SftFormat::oasst;
        if (object->contains("question") && object->contains("response")) return SftFormat::orca;
        if (object->contains("response")) return SftFormat::dolly;
        if (object->contains("output")) return SftFormat::alpaca;
    }
    std::string keys;
    if (object)
        for (const auto& item : *object) keys += (keys.empty() ? "" : ", ") + std::string(item.key());
    throw lumi::Error(origin + ": cannot detect the dataset format from the first record (keys: " + keys +
                      "); expected alpaca (instruction, input, output), dolly (instruction, context, "
                      "response), oasst (message_id, parent_id, role, text), sharegpt (conversations) or "
                      "orca (system_prompt, question, response); "
                      "set the dataset's format");
}

inline bool is_prompt_role(std::string_view role) {
    return role == "human" || role == "user";
}
inline bool is_response_role(std::string_view role) {
    return role == "gpt" || role == "assistant" || role == "chatgpt" || role == "bard" || role == "bing" ||
           role == "model";
}

inline Conversation read_sharegpt(const json::value& record, std::uint32_t max_turns) {
    const json::object* object = record.if_object();
    if (!object) throw RecordError("expected a JSON object, found " + config::detail::describe_found(record));
    const json::value* messages = object->if_contains("conversations");
    if (!messages) throw RecordError("missing field 'conversations'");
    if (!messages->is_array()) throw RecordError("field 'conversations': expected an array");
    Conversation conversation;
    std::string prompt;
    for (std::size_t i = 0; i < messages->as_array().size(); ++i) {
        const json::value& message = messages->as_array()[i];
        const std::string at = "conversations[" + std::to_string(i) + "]";
        std::string role, value;
        try {
            role = string_field(message, "from");
            value = string_field(message, "value");
        } catch (const RecordError& e) {
            throw RecordError(at + ": " + e.what());
        }
        if (role == "system") {
            conversation.context = value;
        } else if (is_prompt_role(role)) {
            prompt = prompt.empty() ? value : prompt + "\n\n" + value;
        } else if (is_response_role(role)) {
            if (prompt.empty()) continue;  // a reply before any prompt teaches nothing
            conversation.turns.push_back({std::move(prompt), value});
            prompt.clear();
            if (max_turns > 0 && conversation.turns.size() == max_turns) break;
        } else {
            throw RecordError(at + ".from: unknown role '" + role +
                              "' (expected human/user, gpt/assistant or system)");
        }
    }
    return conversation;
}

struct OasstMessage {
    std::string id, parent, role, text;
    double rank;  // lower is better; unranked last
};

// The best-ranked thread from each root prompt: prompter, best assistant reply, best prompter follow-up...
inline std::vector<Conversation> oasst_threads(const std::vector<OasstMessage>& messages,
                                               const std::vector<std::string>& origins,
                                               std::uint32_t max_turns) {
    std::unordered_map<std::string, std::vector<std::size_t>> children;
    for (std::size_t i = 0; i < messages.size(); ++i)
        if (!messages[i].parent.empty()) children[messages[i].parent].push_back(i);
    auto best_child = [&](const std::string& id, std::string_view role) -> const OasstMessage* {
        const auto it = children.find(id);
        if (it == children.end()) return nullptr;
        const OasstMessage* best = nullptr;
        for (std::size_t i : it->second)
            if (messages[i].role == role && (!best || messages[i].rank < best->rank)) best = &messages[i];
        return best;
    };
    std::vector<Conversation> conversations;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (!messages[i].parent.empty() || messages[i].role != "prompter") continue;
        Conversation conversation{{}, {}, origins[i]};
        for (const OasstMessage* prompt = &messages[i]; prompt;) {
            const OasstMessage* answer = best_child(prompt->id, "assistant");
            if (!answer) break;
            conversation.turns.push_back({prompt->text, answer->text});
            if (max_turns > 0 && conversation.turns.size() == max_turns) break;
            prompt = best_child(answer->id, "prompter");
        }
        conversations.push_back(std::move(conversation));
    }
    return conversations;
}

}  // namespace detail

// Calls f(conversation) for each usable conversation of a dataset as it is read (OpenAssistant's threads at
// the end: they need the whole tree); the format is detected from the first record unless set. The result
// holds the counts, not the conversations.
template <class F>
SftReadResult for_each_sft_conversation(const SftDataset& dataset, bool skip_malformed, F&& f) {
    SftReadResult result;
    result.format = dataset.format;
    std::vector<detail::OasstMessage> messages;
    std::vector<std::string> message_origins;
    auto keep = [&](Conversation conversation, std::string origin) {
        const bool usable =
            !conversation.turns.empty() &&
            std::all_of(conversation.turns.begin(), conversation.turns.end(),
                        [](const Turn& t) { return !t.prompt.empty() && !t.response.empty(); });
        if (!usable) {
            ++result.empty;
            return;
        }
        conversation.origin = std::move(origin);
        f(std::move(conversation));
    };
    result.skipped = for_each_dataset_record(
        dataset.path, skip_malformed, [&](const json::value& record, const std::string& origin) {
            ++result.records;
            if (result.format == SftFormat::detect) result.format = detail::detect_format(record, origin);
            if (!record.is_object())
                throw RecordError("expected a JSON object, found " + config::detail::describe_found(record));
            switch (result.format) {
                case SftFormat::alpaca:
                    keep({detail::optional_string_field(record, "input"),
                          {{std::string(string_field(record, "instruction")),
                            std::string(string_field(record, "output"))}},
                          {}},
                         origin);
                    break;
                case SftFormat::dolly:
                    keep({detail::optional_string_field(record, "context"),
                          {{std::string(string_field(record, "instruction")),
                            std::string(string_field(record, "response"))}},
                          {}},
                         origin);
                    break;
                case SftFormat::orca:
                    keep({detail::optional_string_field(record, "system_prompt"),
                          {{std::string(string_field(record, "question")),
                            std::string(string_field(record, "response"))}},
                          {}},
                         origin);
                    break;
                case SftFormat::sharegpt:
                    keep(detail::read_sharegpt(record, dataset.max_turns), origin);
                    break;
                case SftFormat::oasst: {
                    const json::object& object = record.as_object();
                    detail::OasstMessage message{std::string(string_field(record, "message_id")),
                                                 detail::optional_string_field(record, "parent_id"),
                                                 std::string(string_field(record, "role")),
                                                 std::string(string_field(record, "text")),
                                                 std::numeric_limits<double>::infinity()};
                    if (message.role != "prompter" && message.role != "assistant")
                        throw RecordError("field 'role': expected 'prompter' or 'assistant', found '" +
                                          message.role + "'");
                    if (const json::value* rank = object.if_contains("rank"); rank && rank->is_number())
                        message.rank = rank->to_number<double>();
                    const json::value* deleted = object.if_contains("deleted");
                    if (deleted && deleted->is_bool() && deleted->get_bool()) break;
                    if (!dataset.language.empty() &&
                        detail::optional_string_field(record, "lang") != dataset.language)
                        break;
                    messages.push_back(std::move(message));
                    message_origins.push_back(origin);
                    break;
                }
                case SftFormat::detect:
                    break;
            }
        });
    if (result.format == SftFormat::oasst)
        for (Conversation& c : detail::oasst_threads(messages, message_origins, dataset.max_turns)) {
            std::string origin = c.origin;
            keep(std::move(c), std::move(origin));
        }
    if (result.records == 0) throw lumi::Error(dataset.path.string() + ": the dataset has no records");
    return result;
}

// Reads one dataset (a file or a folder) into conversations.
inline SftReadResult read_sft_dataset(const SftDataset& dataset, bool skip_malformed = false) {
    std::vector<Conversation> conversations;
    SftReadResult result = for_each_sft_conversation(
        dataset, skip_malformed, [&](Conversation c) { conversations.push_back(std::move(c)); });
    result.conversations = std::move(conversations);
    return result;
}

struct TemplatePiece {
    std::string text;
    bool trainable;  // response text: the loss is computed on its tokens
};

// The conversation as alternating prompt (not trained) and response (trained) pieces; EOS follows.
inline std::vector<TemplatePiece> render(const Conversation& conversation, ChatTemplate kind) {
    std::vector<TemplatePiece> pieces;
    for (std::size_t i = 0; i < conversation.turns.size(); ++i) {
        const Turn& turn = conversation.turns[i];
        pieces.push_back({prompt_text(kind, turn.prompt, i == 0 ? conversation.context : "", i), false});
        pieces.push_back({response_text(kind, turn.response), true});
    }
    return pieces;
}

struct TokenizedExample {
    std::vector<int> tokens;
    std::vector<std::uint8_t> loss_mask;  // 1 on response tokens and EOS
};

// Each piece is encoded on its own, so the prompt/response boundary in tokens is exactly the one in text.
template <Encoder Encode>
TokenizedExample tokenize(const Conversation& conversation, ChatTemplate kind, const Encode& encode,
                          int eos_id) {
    TokenizedExample example;
    for (const TemplatePiece& piece : render(conversation, kind)) {
        const std::vector<int> ids = encode(std::string_view(piece.text));
        example.tokens.insert(example.tokens.end(), ids.begin(), ids.end());
        example.loss_mask.insert(example.loss_mask.end(), ids.size(), piece.trainable ? 1 : 0);
    }
    example.tokens.push_back(eos_id);
    example.loss_mask.push_back(1);
    return example;
}

// Groups examples (by index) into sequences of `capacity` tokens, never splitting one; every length must be
// at most `capacity` (truncate first).
inline std::vector<std::vector<std::size_t>> pack_examples(std::span<const std::size_t> lengths,
                                                           std::size_t capacity, PackingAlgorithm algorithm) {
    std::vector<std::size_t> order(lengths.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
        if (lengths[i] > capacity || lengths[i] == 0)
            throw lumi::Error("pack_examples: example " + std::to_string(i) + " has " +
                              std::to_string(lengths[i]) + " tokens; expected 1 to " +
                              std::to_string(capacity));
    }
    if (algorithm == PackingAlgorithm::best_fit_decreasing)
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return lengths[a] > lengths[b]; });
    std::vector<std::vector<std::size_t>> bins;
    std::multimap<std::size_t, std::size_t> by_room;  // room left -> bin
    for (std::size_t i : order) {
        if (algorithm == PackingAlgorithm::none) {
            bins.push_back({i});
            continue;
        }
        // The bin with the least room that still fits: the first at or above the length.
        auto it = by_room.lower_bound(lengths[i]);
        std::size_t bin;
        std::size_t room;
        if (it == by_room.end()) {
            bin = bins.size();
            bins.emplace_back();
            room = capacity;
        } else {
            bin = it->second;
            room = it->first;
            by_room.erase(it);
        }
        bins[bin].push_back(i);
        if (room - lengths[i] > 0) by_room.emplace(room - lengths[i], bin);
    }
    return bins;
}

// Stored tokens that are not padding, over all tokens stored.
inline double packing_efficiency(std::span<const std::size_t> lengths,
                                 const std::vector<std::vector<std::size_t>>& bins, std::size_t capacity) {
    if (bins.empty()) return 0.0;
    std::uint64_t used = 0;
    for (const auto& bin : bins)
        for (std::size_t i : bin) used += lengths[i];
    return double(used) / double(bins.size() * capacity);
}

struct SftSplitReport {
    SplitReport split;
    std::uint64_t content_tokens = 0;  // not padding
    std::uint64_t loss_tokens = 0;     // loss mask true
    double efficiency = 0;             // content_tokens / stored tokens
};

struct SftDatasetReport {
    std::string path;
    SftFormat format = SftFormat::detect;
    std::uint64_t records = 0, skipped = 0, empty = 0, conversations = 0;
    std::uint64_t train_examples = 0, val_examples = 0, train_tokens = 0;
    std::uint64_t over_budget = 0;  // training examples left out by max_tokens
};

struct SftReport {
    SftSplitReport train, val;
    std::vector<SftDatasetReport> datasets;
    std::uint64_t truncated = 0;        // longer than a sequence: cut to its length
    std::uint64_t dropped_no_loss = 0;  // truncation left no response token
    std::uint64_t text_bytes = 0;
    double seconds = 0;

    double efficiency() const {
        const std::uint64_t stored = train.split.tokens + val.split.tokens;
        return stored ? double(train.content_tokens + val.content_tokens) / double(stored) : 0.0;
    }
    double megabytes_per_second() const { return seconds > 0 ? double(text_bytes) / 1e6 / seconds : 0.0; }
};

namespace detail {

// A tokenised example in the stage's scratch file: its tokens (int32), then its loss mask (a byte each).
struct SpilledExample {
    std::uint64_t offset = 0;
    std::uint32_t tokens = 0;
};

inline SpilledExample spill_example(SpillFile& spill, const TokenizedExample& example) {
    const SpilledExample at{spill.bytes(), static_cast<std::uint32_t>(example.tokens.size())};
    spill.append({reinterpret_cast<const char*>(example.tokens.data()), example.tokens.size() * sizeof(int)});
    spill.append({reinterpret_cast<const char*>(example.loss_mask.data()), example.loss_mask.size()});
    return at;
}

inline TokenizedExample load_example(SpillFile& spill, const SpilledExample& at) {
    const std::string bytes = spill.read(at.offset, std::uint64_t{at.tokens} * (sizeof(int) + 1));
    TokenizedExample example;
    example.tokens.resize(at.tokens);
    example.loss_mask.resize(at.tokens);
    std::memcpy(example.tokens.data(), bytes.data(), at.tokens * sizeof(int));
    std::memcpy(example.loss_mask.data(), bytes.data() + at.tokens * sizeof(int), at.tokens);
    return example;
}

// Packs examples (indexes into `spilled`) and writes them, reading each back from the scratch file.
inline SftSplitReport write_sft_split(const std::vector<std::size_t>& examples,
                                      const std::vector<SpilledExample>& spilled, SpillFile& spill,
                                      const SftSettings& settings, const ShardLayout& layout, int pad_id,
                                      const std::filesystem::path& directory, const std::string& name) {
    const std::size_t length = settings.sequence_length;
    std::vector<std::size_t> lengths(examples.size());
    for (std::size_t i = 0; i < examples.size(); ++i) lengths[i] = spilled[examples[i]].tokens;
    const auto bins = pack_examples(lengths, length, settings.packing);

    ShardWriter writer(directory, name, layout, settings.sequences_per_shard);
    SftSplitReport report;
    std::vector<int> tokens(length);
    std::vector<std::uint8_t> mask(length);
    std::vector<std::uint16_t> segments(length);
    for (const auto& bin : bins) {
        std::size_t at = 0;
        std::uint16_t segment = 0;
        for (std::size_t i : bin) {
            const TokenizedExample example = load_example(spill, spilled[examples[i]]);
            ++segment;
            std::copy(example.tokens.begin(), example.tokens.end(), tokens.begin() + at);
            std::copy(example.loss_mask.begin(), example.loss_mask.end(), mask.begin() + at);
            std::fill_n(segments.begin() + at, example.tokens.size(), segment);
            at += example.tokens.size();
            report.loss_tokens += std::count(example.loss_mask.begin(), example.loss_mask.end(), 1);
        }
        report.content_tokens += at;
        std::fill(tokens.begin() + at, tokens.end(), pad_id);
        std::fill(mask.begin() + at, mask.end(), 0);
        std::fill(segments.begin() + at, segments.end(), 0);
        writer.add(tokens, mask, segments);
    }
    report.split.documents = examples.size();
    report.split.sequences = writer.sequences();
    report.split.tokens = report.split.sequences * length;
    report.split.shards = writer.finish();
    report.efficiency = packing_efficiency(lengths, bins, length);
    return report;
}

inline json::object sft_split_json(const SftSplitReport& report) {
    json::object object = split_json(report.split);
    object.erase("dropped_tail_tokens");
    object["examples"] = object["documents"];
    object.erase("documents");
    object["content_tokens"] = report.content_tokens;
    object["loss_tokens"] = report.loss_tokens;
    object["packing_efficiency"] = report.efficiency;
    return object;
}

}  // namespace detail

// Reads, templates, tokenises and packs settings.datasets into settings.output (replaced atomically).
// `show_progress`: lumi::InputProgress on stderr.
template <Encoder Encode>
SftReport prepare_sft(const SftSettings& settings, const Encode& encode, const TokenizerInfo& tokenizer,
                      bool show_progress = false) {
    settings.validate();
    check_tokenizer(tokenizer);
    const auto start = std::chrono::steady_clock::now();
    const std::size_t threads = settings.threads > 0 ? settings.threads : lumi::default_threads();
    const std::size_t length = settings.sequence_length;
    const int pad_id = tokenizer.pad_id >= 0 ? tokenizer.pad_id : tokenizer.eos_id;
    SftReport report;

    // Each dataset is read, tokenised a batch of conversations at a time on all threads and its examples kept
    // in a scratch file, so memory holds one batch and a few bytes per example.
    lumi::StagedDirectory staged(settings.output);
    std::optional<SpillFile> spill;
    spill.emplace(staged.path() / ".examples");
    std::vector<detail::SpilledExample> spilled;
    std::vector<std::size_t> train, val;
    constexpr std::size_t batch_conversations = 4096;
    lumi::InputProgress progress("sft", dataset_bytes(settings.datasets), show_progress);
    for (std::size_t d = 0; d < settings.datasets.size(); ++d) {
        const SftDataset& dataset = settings.datasets[d];
        SftDatasetReport stats;
        std::vector<std::size_t> candidates;
        std::vector<Conversation> batch;
        auto flush = [&] {
            std::vector<TokenizedExample> tokenized(batch.size());
            std::vector<std::uint64_t> text_bytes(batch.size());
            lumi::parallel_for(batch.size(), threads, [&](std::size_t begin, std::size_t end) {
                for (std::size_t i = begin; i < end; ++i) {
                    tokenized[i] = tokenize(batch[i], settings.chat_template, encode, tokenizer.eos_id);
                    for (const Turn& t : batch[i].turns) text_bytes[i] += t.prompt.size() + t.response.size();
                    text_bytes[i] += batch[i].context.size();
                    for (int id : tokenized[i].tokens)
                        if (id < 0 || static_cast<std::uint32_t>(id) >= tokenizer.vocab_size)
                            throw lumi::Error(batch[i].origin + ": the encoder returned id " +
                                              std::to_string(id) + ", outside the vocabulary (size " +
                                              std::to_string(tokenizer.vocab_size) + ")");
                }
            });
            for (std::size_t c = 0; c < batch.size(); ++c) {
                TokenizedExample& example = tokenized[c];
                report.text_bytes += text_bytes[c];
                if (example.tokens.size() > length) {
                    ++report.truncated;
                    example.tokens.resize(length);
                    example.loss_mask.resize(length);
                    if (std::find(example.loss_mask.begin(), example.loss_mask.end(), 1) ==
                        example.loss_mask.end()) {
                        ++report.dropped_no_loss;
                        continue;
                    }
                }
                const std::size_t id = spilled.size();
                spilled.push_back(detail::spill_example(*spill, example));
                // Split by the example's tokens (so a duplicate lands with its twin), before any copies are
                // made.
                const std::string_view bytes(reinterpret_cast<const char*>(example.tokens.data()),
                                             example.tokens.size() * sizeof(int));
                if (in_validation(bytes, settings.validation_fraction, settings.seed)) {
                    val.push_back(id);
                    ++stats.val_examples;
                    continue;
                }
                const double whole = std::floor(dataset.weight);
                std::size_t copies = static_cast<std::size_t>(whole);
                if (in_validation(bytes, dataset.weight - whole, settings.seed + 1)) ++copies;
                candidates.insert(candidates.end(), copies, id);
            }
            batch.clear();
            std::uint64_t bytes = 0;
            for (std::uint64_t b : text_bytes) bytes += b;
            progress.advance(bytes);
        };
        const SftReadResult read =
            for_each_sft_conversation(dataset, settings.skip_malformed, [&](Conversation conversation) {
                batch.push_back(std::move(conversation));
                ++stats.conversations;
                if (batch.size() == batch_conversations) flush();
            });
        flush();
        stats.path = dataset.path.string();
        stats.format = read.format;
        stats.records = read.records;
        stats.skipped = read.skipped;
        stats.empty = read.empty;
        // The budget takes a seeded random subset, not the file's first examples.
        const auto order = shuffled_order(static_cast<std::int64_t>(candidates.size()), settings.seed, d);
        for (std::int64_t i : order) {
            const std::size_t id = candidates[static_cast<std::size_t>(i)];
            if (dataset.max_tokens > 0 && stats.train_tokens + spilled[id].tokens > dataset.max_tokens) {
                ++stats.over_budget;
                continue;
            }
            stats.train_tokens += spilled[id].tokens;
            ++stats.train_examples;
            train.push_back(id);
        }
        report.datasets.push_back(stats);
    }

    progress.finish();
    const ShardLayout layout{length, tokenizer.vocab_size, tokenizer.sha256, true, true};
    report.train =
        detail::write_sft_split(train, spilled, *spill, settings, layout, pad_id, staged.path(), "train");
    report.val =
        detail::write_sft_split(val, spilled, *spill, settings, layout, pad_id, staged.path(), "val");
    spill.reset();  // its scratch file must not reach the output

    json::array datasets;
    for (const SftDatasetReport& d : report.datasets)
        datasets.push_back(json::object{{"path", d.path},
                                        {"format", std::string(config::enum_name(d.format))},
                                        {"records", d.records},
                                        {"skipped_malformed", d.skipped},
                                        {"empty", d.empty},
                                        {"conversations", d.conversations},
                                        {"train_examples", d.train_examples},
                                        {"val_examples", d.val_examples},
                                        {"train_tokens", d.train_tokens},
                                        {"over_budget", d.over_budget}});
    json::object manifest{
        {"kind", "lumi.sft"},
        {"format_version", shard_version},
        {"tokenizer", tokenizer_json(tokenizer)},
        {"sequence_length", settings.sequence_length},
        {"token_bytes", layout.token_bytes()},
        {"arrays", json::array{"tokens", "segments", "loss_mask"}},
        {"loss_mask", "1 on response tokens and the EOS after each example, 0 on prompts and padding"},
        {"segments",
         "per token, the example's number within its sequence (1, 2, ...; 0 for padding): "
         "attention must not cross segments and positions restart at each"},
        {"template", std::string(config::enum_name(settings.chat_template))},
        {"packing", json::object{{"algorithm", std::string(config::enum_name(settings.packing))},
                                 {"efficiency", report.efficiency()},
                                 {"pad_id", pad_id},
                                 {"truncated_examples", report.truncated},
                                 {"dropped_without_loss_tokens", report.dropped_no_loss}}},
        {"split",
         json::object{{"method", "example to val when xxh64(tokens, seed) / 2^64 < validation_fraction"},
                      {"validation_fraction", settings.validation_fraction},
                      {"seed", settings.seed}}},
        {"datasets", std::move(datasets)},
        {"train", detail::sft_split_json(report.train)},
        {"val", detail::sft_split_json(report.val)},
        {"settings", config::to_json(settings)}};
    config::write_json_file(manifest, staged.path() / "manifest.json");
    config::save(settings, staged.path() / "config.json");
    staged.commit();
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
}

}  // namespace lumi::data
