#pragma once

// The corpus stage: read sources, clean, deduplicate, sample to budgets, write JSON Lines shards.
//
//   auto settings = lumi::config::load<lumi::CorpusSettings>("corpus.json", {"output=out/corpus"});
//   lumi::CorpusReport report = lumi::prepare_corpus(settings, &std::cout);
//
// Output (one directory, written under a temporary name and renamed when complete):
//   shard_NNNNN.jsonl   one `{"text": ...}` per line
//   manifest.json       per-source counts (read, dropped by reason, duplicates, sampled), shard SHA-256s,
//                       the effective settings
//   DATA_CARD.md        the same for people
//   corpus_config.json  the effective settings, loadable with --config to run it again
//
// Budgets, after cleaning and deduplication, in characters (code points) or estimated tokens
// (characters / budget.chars_per_token: no tokenizer is trained yet at this stage; about 4 characters per
// token is the usual rule of thumb for English with a 32k vocabulary, and the manifest records the ratio):
//   - a source with its own `characters` or `tokens` gets that many, its documents drawn at random (seed);
//   - sources with a `weight` share budget.characters or budget.tokens in proportion to their weights; with
//     no corpus budget they form the largest mix in those proportions that their text allows;
//   - a source with neither keeps all its documents.
// A document is taken whole: a source fills its budget from its shuffled documents and ends at most one
// shortest document below it. A budget beyond a source's text is an error, or with
// budget.on_shortfall = warn a warning and a shortfall count in the manifest.
//
// Every step is a function of the settings and the input bytes: the same seed gives the same shards on any
// number of threads and any batch_bytes.
//
// Memory: documents are read, cleaned and deduplicated batch_bytes at a time (files read whole, a Parquet
// file in batches), and those that pass go to a scratch file in the staging directory, read back when the
// shards are written. What stays in memory grows with the number of documents, not their text: 48 bytes for
// each document kept (offsets, counts), about 40 for the exact-duplicate index, and the near-duplicate index,
// bounded by dedup.max_index_bytes (docs/data.md).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <range/v3/numeric/accumulate.hpp>
#include <range/v3/range/conversion.hpp>
#include <range/v3/view/filter.hpp>
#include <range/v3/view/iota.hpp>
#include <range/v3/view/transform.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/core/parallel.hpp"
#include "lumi/core/progress.hpp"
#include "lumi/core/sha256.hpp"
#include "lumi/data/dedup.hpp"
#include "lumi/data/sources.hpp"
#include "lumi/data/spill.hpp"
#include "lumi/data/text.hpp"

namespace lumi::data {

enum class OnError { fail, skip };
enum class Shortfall { fail, warn };
enum class InvalidUtf8 { repair, drop };

struct CorpusSource {
    std::string name;                          // in the manifest; the first path's file name when empty
    std::vector<std::filesystem::path> paths;  // files or folders; relative to the working directory
    std::vector<std::string> match;            // file-name globs in folders (`*.txt`); empty: all files
    bool recursive = true;
    SourceFormat format = SourceFormat::detect;
    Compression compression = Compression::detect;
    TextUnit unit = TextUnit::file;           // plain text: one document per file, paragraph or line
    std::string text_field = "text";          // JSON Lines and Parquet: the key or column holding the text
    std::optional<double> weight;             // share of the corpus budget among weighted sources
    std::optional<std::uint64_t> characters;  // or a budget of its own, in characters
    std::optional<std::uint64_t> tokens;      // or in estimated tokens
    std::string license;                      // recorded in the manifest and the data card
    // This source's length bounds in code points, over clean.min_characters and clean.max_characters.
    std::optional<std::uint64_t> min_characters;
    std::optional<std::uint64_t> max_characters;

    std::string label() const {
        if (!name.empty()) return name;
        return paths.empty() ? std::string("source") : paths.front().filename().string();
    }

    void validate() const {
        if (paths.empty()) throw config::FieldError("paths", "list at least one file or folder");
        if (text_field.empty()) throw config::FieldError("text_field", "must not be empty");
        if (weight && !(std::isfinite(*weight) && *weight >= 0.0))
            throw config::FieldError("weight", "must be a finite number >= 0");
        if (characters && tokens)
            throw config::FieldError("tokens", "give a budget in characters or in tokens, not both");
        if (weight && (characters || tokens))
            throw config::FieldError(
                "weight", "a source takes a weight (a share of budget) or a budget of its own, not both");
        if ((characters && *characters == 0) || (tokens && *tokens == 0))
            throw config::FieldError(characters ? "characters" : "tokens", "must be at least 1");
        if (max_characters && *max_characters == 0)
            throw config::FieldError("max_characters", "must be at least 1");
        if (min_characters && max_characters && *min_characters > *max_characters)
            throw config::FieldError(
                "min_characters", "must not exceed max_characters (" + std::to_string(*max_characters) + ")");
    }
};

struct BudgetSettings {
    std::optional<std::uint64_t> tokens;      // estimated tokens, shared by the weighted sources
    std::optional<std::uint64_t> characters;  // or characters
    double chars_per_token = 4.0;             // the token estimate: characters / chars_per_token
    Shortfall on_shortfall = Shortfall::fail;

    void validate() const {
        if (!(std::isfinite(chars_per_token) && chars_per_token > 0.0))
            throw config::FieldError("chars_per_token", "must be a finite number > 0");
        if (tokens && characters)
            throw config::FieldError("tokens", "give the budget in characters or in tokens, not both");
        if ((tokens && *tokens == 0) || (characters && *characters == 0))
            throw config::FieldError(tokens ? "tokens" : "characters", "must be at least 1");
    }
};

struct CleanSettings {
    bool nfkc = true;
    Whitespace whitespace = Whitespace::collapse;
    InvalidUtf8 invalid_utf8 = InvalidUtf8::repair;  // repair: U+FFFD for each ill-formed sequence; drop
    std::uint64_t min_characters = 50;               // after cleaning, in code points
    std::uint64_t max_characters = 10'000;

    void validate() const {
        if (max_characters == 0) throw config::FieldError("max_characters", "must be at least 1");
        if (min_characters > max_characters)
            throw config::FieldError(
                "min_characters", "must not exceed max_characters (" + std::to_string(max_characters) + ")");
    }
};

struct ShardSettings {
    // A shard closes before the document that would pass either limit; 0: no limit.
    std::uint64_t max_documents = 0;
    std::uint64_t max_bytes = 64ULL << 20;
};

struct ErrorSettings {
    OnError malformed_records = OnError::fail;  // a JSON line that does not parse or lacks the text field
    OnError bad_files = OnError::fail;          // a missing, unreadable or corrupt (gzip, zstd) file
    OnError empty_sources = OnError::fail;      // a source with no documents at all
};

struct CorpusSettings {
    std::filesystem::path output = "corpus";
    std::vector<CorpusSource> sources;
    BudgetSettings budget;
    CleanSettings clean;
    DedupSettings dedup;
    ShardSettings shards;
    ErrorSettings errors;
    bool shuffle = true;        // mix the sources' documents across shards; false keeps the input order
    std::uint64_t seed = 0;     // of sampling and shuffling
    std::uint32_t threads = 0;  // 0: LUMI_THREADS, else every core
    // A source file larger than this, before or after decompression, is an error (a wrong path or a
    // decompression bomb must not exhaust the memory). A text or JSON Lines file is read whole; a Parquet
    // file is not, and has no limit.
    std::uint64_t max_file_bytes = default_max_file_bytes;
    // Text read and cleaned at once: small files are read together (in parallel) up to this many bytes, a
    // Parquet file this much of its text at a time. With the per-document indexes, what bounds memory.
    std::uint64_t batch_bytes = 256ULL << 20;

    void validate() const {
        if (output.empty()) throw config::FieldError("output", "must name a directory");
        if (max_file_bytes == 0) throw config::FieldError("max_file_bytes", "must be at least 1");
        if (batch_bytes == 0) throw config::FieldError("batch_bytes", "must be at least 1");
        if (sources.empty()) throw config::FieldError("sources", "list at least one source");
        double weights = 0;
        bool weighted = false;
        for (const CorpusSource& source : sources)
            if (source.weight) weighted = true, weights += *source.weight;
        if (weighted && weights <= 0.0)
            throw config::FieldError("sources", "the sources' weights add up to 0; give one a weight > 0");
        if ((budget.tokens || budget.characters) && !weighted)
            throw config::FieldError("budget",
                                     "a corpus budget is shared by the sources with a weight; give at "
                                     "least one source a weight");
    }
};

struct DroppedCounts {
    std::uint64_t malformed_record = 0;  // JSON lines that do not parse or are not objects
    std::uint64_t missing_field = 0;     // objects without the text field as a string
    std::uint64_t invalid_utf8 = 0;      // with clean.invalid_utf8 = drop
    std::uint64_t too_short = 0;
    std::uint64_t too_long = 0;

    std::uint64_t total() const {
        return malformed_record + missing_field + invalid_utf8 + too_short + too_long;
    }
};

// records = documents + dropped.total() + exact_duplicates + near_duplicates + not_sampled.
struct SourceReport {
    std::string name;
    std::string license;
    std::vector<std::string> paths;
    std::uint64_t files = 0;          // read
    std::uint64_t skipped_files = 0;  // missing, unreadable or corrupt, with errors.bad_files = skip
    std::uint64_t records = 0;        // documents and JSON lines read from the files
    DroppedCounts dropped;
    std::uint64_t exact_duplicates = 0;
    std::uint64_t near_duplicates = 0;
    std::uint64_t available_documents = 0;  // after cleaning and deduplication
    std::uint64_t available_characters = 0;
    std::optional<double> weight;
    std::optional<std::uint64_t> target_characters;  // what the budget asked for
    std::uint64_t shortfall_characters = 0;
    std::uint64_t not_sampled = 0;
    std::uint64_t documents = 0;  // written
    std::uint64_t characters = 0;
    std::uint64_t estimated_tokens = 0;
    std::uint64_t sentences = 0;
    std::uint64_t repaired_documents = 0;  // with U+FFFD for ill-formed UTF-8
    std::uint64_t replaced_sequences = 0;
    std::vector<std::string> problems;  // skipped files and records, the first few
};

struct ShardReport {
    std::string file;
    std::uint64_t documents = 0;
    std::uint64_t bytes = 0;
    std::string sha256;
};

struct CorpusReport {
    std::filesystem::path output;
    std::vector<SourceReport> sources;
    std::vector<ShardReport> shards;
    std::uint64_t records = 0;
    std::uint64_t documents = 0;
    std::uint64_t characters = 0;
    std::uint64_t estimated_tokens = 0;
    std::uint64_t sentences = 0;
    std::uint64_t bytes = 0;
    Banding banding;
    std::vector<std::string> warnings;
    double read_seconds = 0, clean_seconds = 0, dedup_seconds = 0, write_seconds = 0, seconds = 0;

    // Documents read (records) per second of the whole run.
    double documents_per_second() const { return seconds > 0 ? static_cast<double>(records) / seconds : 0.0; }
};

namespace detail {

enum class Fate : std::uint8_t {
    kept,
    invalid_utf8,
    too_short,
    too_long,
    exact_duplicate,
    near_duplicate,
    not_sampled
};

struct Document {
    std::string text;
    std::uint32_t source = 0;
    std::uint32_t invalid_utf8 = 0;
    std::uint64_t characters = 0;
    std::uint64_t hash = 0;
    Fate fate = Fate::kept;
};

// Unbiased in [0, n), from mt19937_64 alone: std::uniform_int_distribution and std::shuffle differ
// between standard libraries, and the shards must not.
inline std::uint64_t bounded(std::mt19937_64& random, std::uint64_t n) {
    const std::uint64_t limit =
        std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % n;
    std::uint64_t x;
    do x = random();
    while (x >= limit);
    return x % n;
}

template <class T>
void shuffle(std::vector<T>& items, std::uint64_t seed) {
    std::mt19937_64 random(seed);
    for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[bounded(random, i)]);
}

inline std::string grouped(std::uint64_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

inline std::string fixed(double value, int decimals) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(decimals) << value;
    return out.str();
}

inline std::uint64_t estimate_tokens(std::uint64_t characters, double chars_per_token) {
    return static_cast<std::uint64_t>(std::llround(static_cast<double>(characters) / chars_per_token));
}

inline double since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Repair or drop ill-formed UTF-8, NFKC, whitespace, length filters; the hash for exact deduplication.
inline void clean(std::vector<Document>& documents, const CleanSettings& settings, std::size_t threads) {
    parallel_for(documents.size(), threads, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
            Document& doc = documents[i];
            if (doc.invalid_utf8 > 0 && settings.invalid_utf8 == InvalidUtf8::drop) {
                doc.fate = Fate::invalid_utf8;
            } else {
                if (settings.nfkc && !is_ascii(doc.text)) doc.text = nfkc(doc.text);
                doc.text = normalize_whitespace(doc.text, settings.whitespace);
                doc.characters = count_code_points(doc.text);
                if (doc.characters < settings.min_characters) doc.fate = Fate::too_short;
                if (doc.characters > settings.max_characters) doc.fate = Fate::too_long;
            }
            if (doc.fate == Fate::kept)
                doc.hash = hash_bytes(doc.text);
            else
                std::string().swap(doc.text);
        }
    });
}

// A document that passed cleaning and exact deduplication: its counts, fate and where its text lies.
struct Entry {
    std::uint64_t offset = 0, length = 0;  // in the spill file
    std::uint64_t characters = 0, sentences = 0;
    std::uint32_t source = 0;
    Fate fate = Fate::kept;
};

// Cleans, deduplicates and spills documents a batch at a time, in the order they are read, so each decision
// is the one a single pass over the whole corpus in that order makes: the same shards for any batch size.
class CorpusBuilder {
  public:
    CorpusBuilder(const CorpusSettings& settings, std::size_t threads, CorpusReport& report,
                  const std::filesystem::path& spill)
        : settings_(settings),
          threads_(threads),
          report_(report),
          spill_(spill),
          near_(settings.dedup.permutations, settings.dedup.threshold, settings.dedup.bands),
          minhash_(settings.dedup.permutations, settings.dedup.seed) {}

    void add(std::vector<Record>& records, std::uint32_t source) {
        auto step = std::chrono::steady_clock::now();
        std::vector<Document> docs;
        docs.reserve(records.size());
        for (Record& record : records)
            docs.push_back(Document{std::move(record.text), source, record.invalid_utf8});
        records = {};
        CleanSettings bounds = settings_.clean;
        const CorpusSource& from = settings_.sources[source];
        bounds.min_characters = from.min_characters.value_or(bounds.min_characters);
        bounds.max_characters = from.max_characters.value_or(bounds.max_characters);
        clean(docs, bounds, threads_);
        report_.clean_seconds += since(step);

        step = std::chrono::steady_clock::now();
        SourceReport& stats = report_.sources[source];
        std::vector<std::size_t> kept;
        const std::size_t first = entries_.size();
        for (std::size_t i = 0; i < docs.size(); ++i) {
            Document& doc = docs[i];
            stats.repaired_documents += doc.invalid_utf8 > 0 && doc.fate != Fate::invalid_utf8;
            stats.replaced_sequences += doc.fate != Fate::invalid_utf8 ? doc.invalid_utf8 : 0;
            stats.dropped.invalid_utf8 += doc.fate == Fate::invalid_utf8;
            stats.dropped.too_short += doc.fate == Fate::too_short;
            stats.dropped.too_long += doc.fate == Fate::too_long;
            if (doc.fate != Fate::kept) continue;
            if (settings_.dedup.exact &&
                !exact_.insert(doc.hash, doc.text, entries_.size(), [&](std::uint64_t e) {
                    return spill_.read(entries_[e].offset, entries_[e].length);
                })) {
                ++stats.exact_duplicates;
                continue;
            }
            entries_.push_back(Entry{spill_.append(doc.text), doc.text.size(), doc.characters, 0, source});
            kept.push_back(i);
        }
        parallel_for(kept.size(), threads_, [&](std::size_t begin, std::size_t end) {
            for (std::size_t j = begin; j < end; ++j)
                entries_[first + j].sentences = count_sentences(docs[kept[j]].text);
        });
        if (settings_.dedup.near) near_duplicates(docs, kept, first, stats);
        report_.dedup_seconds += since(step);
    }

    std::vector<Entry>& entries() { return entries_; }
    std::string text(const Entry& entry) { return spill_.read(entry.offset, entry.length); }
    Banding banding() const { return settings_.dedup.near ? near_.banding() : Banding{0, 0}; }
    std::uint64_t spill_bytes() const { return spill_.bytes(); }

  private:
    void near_duplicates(const std::vector<Document>& docs, const std::vector<std::size_t>& kept,
                         std::size_t first, SourceReport& stats) {
        // Signatures in blocks, computed in parallel and indexed in document order.
        constexpr std::size_t block = 1 << 14;
        const DedupSettings& dedup = settings_.dedup;
        const std::size_t width = dedup.permutations;
        signatures_.resize(std::min(block, kept.size()) * width);
        has_shingles_.resize(std::min(block, kept.size()));
        for (std::size_t start = 0; start < kept.size(); start += block) {
            const std::size_t count = std::min(block, kept.size() - start);
            parallel_for(count, threads_, [&](std::size_t begin, std::size_t end) {
                for (std::size_t j = begin; j < end; ++j) {
                    const auto shingles =
                        shingle_hashes(docs[kept[start + j]].text, dedup.shingle, dedup.shingle_size);
                    has_shingles_[j] = !shingles.empty();
                    minhash_.signature(shingles, std::span(signatures_.data() + j * width, width));
                }
            });
            for (std::size_t j = 0; j < count; ++j) {
                if (!has_shingles_[j]) continue;  // no words: nothing to compare
                const bool room = dedup.max_index_bytes == 0 ||
                                  near_.bytes() + near_.bytes_per_document() <= dedup.max_index_bytes;
                if (!room && !full_) {
                    full_ = true;
                    report_.warnings.push_back(
                        "the near-duplicate index reached dedup.max_index_bytes (" +
                        grouped(dedup.max_index_bytes) + ") after " + grouped(near_.size()) +
                        " documents: later documents are compared with those, not added");
                }
                const std::size_t id = first + start + j;
                if (near_.find_or_insert(id, std::span(signatures_.data() + j * width, width), room)) {
                    entries_[id].fate = Fate::near_duplicate;
                    ++stats.near_duplicates;
                }
            }
        }
    }

    const CorpusSettings& settings_;
    std::size_t threads_;
    CorpusReport& report_;
    SpillFile spill_;
    std::vector<Entry> entries_;
    ExactDuplicateIndex exact_;
    NearDuplicateIndex near_;
    MinHash minhash_;
    std::vector<std::uint32_t> signatures_;
    std::vector<char> has_shingles_;
    bool full_ = false;
};

struct ReadTask {
    std::uint32_t source;
    std::filesystem::path file;
};

// Reads every source file in source, file and record order into `builder`: text and JSON Lines files in
// parallel, as many at a time as fit in settings.batch_bytes; a Parquet file alone, batch_bytes of its text
// at a time.
inline void read_sources(const CorpusSettings& settings, std::size_t threads, CorpusReport& report,
                         CorpusBuilder& builder, bool show_progress) {
    std::vector<ReadTask> tasks;
    for (std::uint32_t s = 0; s < settings.sources.size(); ++s) {
        const CorpusSource& source = settings.sources[s];
        SourceReport& stats = report.sources[s];
        for (const auto& path : source.paths) {
            try {
                for (auto& file : list_files(path, source.match, source.recursive))
                    tasks.push_back({s, file});
            } catch (const lumi::Error& error) {
                if (settings.errors.bad_files == OnError::fail)
                    throw lumi::Error("source '" + stats.name + "': " + error.what());
                ++stats.skipped_files;
                stats.problems.push_back(error.what());
            }
        }
    }
    // Each file's size (for batches and progress) and format, looked at once: a detected format is resolved
    // here, so the readers need not open the file to detect it again.
    std::uint64_t total_bytes = 0;
    std::vector<std::uint64_t> sizes;
    std::vector<SourceFormat> formats;
    for (const ReadTask& task : tasks) {
        std::error_code error;
        sizes.push_back(std::filesystem::file_size(task.file, error));
        if (error) sizes.back() = 0;
        total_bytes += sizes.back();
        const SourceFormat format = settings.sources[task.source].format;
        formats.push_back(reads_as_parquet(task.file, format) ? SourceFormat::parquet
                          : format == SourceFormat::detect    ? detect_format(task.file)
                                                              : format);
    }
    InputProgress progress("corpus", total_bytes, show_progress);
    auto advance = [&](std::size_t task) {
        progress.advance(sizes[task], ", " + grouped(builder.entries().size()) + " unique documents");
    };
    auto options_of = [&](std::size_t t) {
        const CorpusSource& source = settings.sources[tasks[t].source];
        return ReadOptions{formats[t],
                           source.compression,
                           source.unit,
                           source.text_field,
                           settings.errors.malformed_records == OnError::skip,
                           settings.max_file_bytes};
    };
    auto parquet = [&](std::size_t t) { return formats[t] == SourceFormat::parquet; };
    auto failed = [&](const ReadTask& task, const std::string& what) {
        SourceReport& stats = report.sources[task.source];
        if (settings.errors.bad_files == OnError::fail)
            throw lumi::Error("source '" + stats.name + "': " + what);
        ++stats.skipped_files;
        if (stats.problems.size() < max_problems_kept) stats.problems.push_back(what);
    };
    auto take = [&](FileRecords& file, std::uint32_t source) {
        SourceReport& stats = report.sources[source];
        stats.records += file.records.size() + file.malformed + file.missing_field;
        stats.dropped.malformed_record += file.malformed;
        stats.dropped.missing_field += file.missing_field;
        for (auto& problem : file.problems)
            if (stats.problems.size() < max_problems_kept) stats.problems.push_back(std::move(problem));
        builder.add(file.records, source);
        file = FileRecords{};
    };

    for (std::size_t t = 0; t < tasks.size();) {
        if (parquet(t)) {
            // A damaged file fails where the damage is: with bad_files = skip, its earlier row groups stay.
            try {
                read_record_batches(tasks[t].file, options_of(t), settings.batch_bytes,
                                    [&](FileRecords& batch) { take(batch, tasks[t].source); });
                ++report.sources[tasks[t].source].files;
            } catch (const StageError&) {
                throw;
            } catch (const lumi::Error& error) {
                failed(tasks[t], error.what());
            }
            advance(t);
            ++t;
            continue;
        }
        std::size_t end = t;
        for (std::uint64_t bytes = 0; end < tasks.size() && !parquet(end); ++end) {
            if (end > t && bytes + sizes[end] > settings.batch_bytes) break;
            bytes += sizes[end];
        }
        std::vector<FileRecords> results(end - t);
        std::vector<std::string> failures(end - t);
        parallel_for(end - t, threads, [&](std::size_t begin, std::size_t stop) {
            for (std::size_t k = begin; k < stop; ++k) {
                try {
                    results[k] = read_records(tasks[t + k].file, options_of(t + k));
                } catch (const lumi::Error& error) {
                    failures[k] = error.what();
                }
            }
        });
        for (std::size_t k = 0; k < end - t; ++k) {
            if (failures[k].empty()) {
                ++report.sources[tasks[t + k].source].files;
                take(results[k], tasks[t + k].source);
            } else {
                failed(tasks[t + k], failures[k]);
            }
            advance(t + k);
        }
        t = end;
    }
    progress.finish(", " + grouped(builder.entries().size()) + " unique documents");

    for (std::size_t s = 0; s < settings.sources.size(); ++s) {
        SourceReport& stats = report.sources[s];
        if (stats.records > 0) continue;
        std::string paths;
        for (const auto& path : stats.paths) paths += (paths.empty() ? "" : ", ") + path;
        const std::string message = "source '" + stats.name + "': no documents in " + paths + " (" +
                                    std::to_string(stats.files) + " files read, " +
                                    std::to_string(stats.skipped_files) + " skipped)";
        if (settings.errors.empty_sources == OnError::fail) throw lumi::Error(message);
        report.warnings.push_back(message);
    }
}

// Each source's target in characters (see the header comment), or none for "all of it".
inline std::vector<std::optional<std::uint64_t>> targets(const CorpusSettings& settings,
                                                         const std::vector<SourceReport>& sources) {
    const double cpt = settings.budget.chars_per_token;
    auto characters_of = [&](std::uint64_t tokens) {
        return static_cast<std::uint64_t>(std::llround(static_cast<double>(tokens) * cpt));
    };
    std::optional<double> corpus;
    if (settings.budget.characters) corpus = static_cast<double>(*settings.budget.characters);
    if (settings.budget.tokens) corpus = static_cast<double>(characters_of(*settings.budget.tokens));
    double weights = 0;
    for (const CorpusSource& source : settings.sources) weights += source.weight.value_or(0.0);
    if (!corpus && weights > 0) {
        // The largest mix in these proportions: the scarcest source, relative to its share, sets the total.
        double total = std::numeric_limits<double>::infinity();
        for (std::size_t s = 0; s < sources.size(); ++s) {
            const double share = settings.sources[s].weight.value_or(0.0) / weights;
            if (share > 0)
                total = std::min(total, static_cast<double>(sources[s].available_characters) / share);
        }
        corpus = total;
    }
    std::vector<std::optional<std::uint64_t>> out(sources.size());
    for (std::size_t s = 0; s < sources.size(); ++s) {
        const CorpusSource& source = settings.sources[s];
        if (source.characters) out[s] = *source.characters;
        if (source.tokens) out[s] = characters_of(*source.tokens);
        if (!source.weight) continue;
        const auto share = static_cast<std::uint64_t>(std::llround(*corpus * *source.weight / weights));
        // Without a corpus budget the scarcest source is its own limit, whatever the rounding.
        out[s] = settings.budget.characters || settings.budget.tokens
                     ? share
                     : std::min(share, sources[s].available_characters);
    }
    return out;
}

// Marks the documents a source does not take for its target as not sampled.
inline void sample(std::vector<Entry>& entries, const std::vector<std::size_t>& candidates,
                   std::uint64_t target, std::uint64_t shortest, std::uint64_t seed) {
    std::vector<std::size_t> order = candidates;
    shuffle(order, seed);
    std::uint64_t taken = 0;
    for (const std::size_t i : order) {
        Entry& entry = entries[i];
        // Whole documents only: skip one that would overshoot, stop when none could fit.
        if (taken + shortest <= target && taken + entry.characters <= target)
            taken += entry.characters;
        else
            entry.fate = Fate::not_sampled;
    }
}

inline std::string shard_name(std::size_t index) {
    std::ostringstream name;
    name << "shard_" << std::setw(5) << std::setfill('0') << index << ".jsonl";
    return name.str();
}

inline boost::json::object manifest(const CorpusSettings& settings, const CorpusReport& report) {
    namespace json = boost::json;
    json::array sources;
    for (const SourceReport& s : report.sources) {
        json::array paths, problems;
        for (const auto& path : s.paths) paths.emplace_back(path);
        for (const auto& problem : s.problems) problems.emplace_back(problem);
        const json::object dropped{{"malformed_record", s.dropped.malformed_record},
                                   {"missing_field", s.dropped.missing_field},
                                   {"invalid_utf8", s.dropped.invalid_utf8},
                                   {"too_short", s.dropped.too_short},
                                   {"too_long", s.dropped.too_long}};
        sources.push_back(json::object{
            {"name", s.name},
            {"license", s.license},
            {"paths", std::move(paths)},
            {"files", s.files},
            {"skipped_files", s.skipped_files},
            {"records", s.records},
            {"dropped", dropped},
            {"duplicates", json::object{{"exact", s.exact_duplicates}, {"near", s.near_duplicates}}},
            {"available_documents", s.available_documents},
            {"available_characters", s.available_characters},
            {"weight", s.weight ? json::value(*s.weight) : json::value(nullptr)},
            {"target_characters",
             s.target_characters ? json::value(*s.target_characters) : json::value(nullptr)},
            {"shortfall_characters", s.shortfall_characters},
            {"not_sampled", s.not_sampled},
            {"documents", s.documents},
            {"characters", s.characters},
            {"estimated_tokens", s.estimated_tokens},
            {"sentences", s.sentences},
            {"share", report.characters ? static_cast<double>(s.characters) / report.characters : 0.0},
            {"repaired_documents", s.repaired_documents},
            {"replaced_sequences", s.replaced_sequences},
            {"problems", std::move(problems)}});
    }
    json::array shards, warnings;
    for (const ShardReport& shard : report.shards)
        shards.push_back(json::object{{"file", shard.file},
                                      {"documents", shard.documents},
                                      {"bytes", shard.bytes},
                                      {"sha256", shard.sha256}});
    for (const auto& warning : report.warnings) warnings.emplace_back(warning);
    return json::object{
        {"format", "lumi.corpus"},
        {"version", 1},
        {"records", report.records},
        {"documents", report.documents},
        {"characters", report.characters},
        {"estimated_tokens", report.estimated_tokens},
        {"sentences", report.sentences},
        {"bytes", report.bytes},
        {"token_estimate", json::object{{"method", "characters / chars_per_token"},
                                        {"chars_per_token", settings.budget.chars_per_token}}},
        {"lsh", settings.dedup.near ? json::value(json::object{{"bands", report.banding.bands},
                                                               {"rows", report.banding.rows}})
                                    : json::value(nullptr)},
        {"sources", std::move(sources)},
        {"shards", std::move(shards)},
        {"warnings", std::move(warnings)},
        {"settings", config::to_json(settings)}};
}

inline std::string data_card(const CorpusSettings& settings, const CorpusReport& report) {
    const double cpt = settings.budget.chars_per_token;
    std::ostringstream md;
    md << "# Corpus data card\n\n"
       << grouped(report.documents) << " documents, " << grouped(report.characters) << " characters (about "
       << grouped(report.estimated_tokens) << " tokens at " << fixed(cpt, 2) << " characters per token), "
       << grouped(report.sentences) << " sentences, in " << report.shards.size() << " shards of JSON Lines ("
       << grouped(report.bytes) << " bytes).\n\n## Sources\n\n"
       << "| source | licence | paths | documents | characters | est. tokens | share | weight "
          "| budget (chars) |\n"
       << "|---|---|---|---:|---:|---:|---:|---:|---:|\n";
    for (const SourceReport& s : report.sources) {
        std::string paths;
        for (const auto& path : s.paths) paths += (paths.empty() ? "`" : ", `") + path + "`";
        const double share = report.characters ? 100.0 * s.characters / report.characters : 0.0;
        md << "| " << s.name << " | " << (s.license.empty() ? "not recorded" : s.license) << " | " << paths
           << " | " << grouped(s.documents) << " | " << grouped(s.characters) << " | "
           << grouped(s.estimated_tokens) << " | " << fixed(share, 1) << "% | "
           << (s.weight ? fixed(*s.weight, 3) : "-") << " | "
           << (s.target_characters ? grouped(*s.target_characters) : "all") << " |\n";
    }
    md << "\n## What was removed\n\n"
       << "| source | records read | malformed | missing field | invalid UTF-8 | too short | too long "
          "| exact dup. | near dup. | not sampled | skipped files |\n"
       << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const SourceReport& s : report.sources)
        md << "| " << s.name << " | " << grouped(s.records) << " | " << grouped(s.dropped.malformed_record)
           << " | " << grouped(s.dropped.missing_field) << " | " << grouped(s.dropped.invalid_utf8) << " | "
           << grouped(s.dropped.too_short) << " | " << grouped(s.dropped.too_long) << " | "
           << grouped(s.exact_duplicates) << " | " << grouped(s.near_duplicates) << " | "
           << grouped(s.not_sampled) << " | " << grouped(s.skipped_files) << " |\n";
    const CleanSettings& clean = settings.clean;
    const DedupSettings& dedup = settings.dedup;
    std::uint64_t repaired = 0, replaced = 0;
    for (const SourceReport& s : report.sources)
        repaired += s.repaired_documents, replaced += s.replaced_sequences;
    md << "\n## Processing\n\n"
       << "1. Ill-formed UTF-8: "
       << (clean.invalid_utf8 == InvalidUtf8::repair
               ? "each maximal ill-formed subsequence replaced by U+FFFD (" + grouped(replaced) + " in " +
                     grouped(repaired) + " documents)"
               : std::string("documents containing any were dropped"))
       << ".\n2. Unicode normalisation: "
       << (clean.nfkc ? std::string("NFKC (utf8proc ") + utf8proc_version() + ")" : std::string("none"))
       << ".\n3. Whitespace: " << config::to_json(clean.whitespace).as_string().c_str()
       << " (runs of spaces become one, lines trimmed, at most one blank line; controls removed).\n"
       << "4. Length: documents of " << grouped(clean.min_characters) << " to "
       << grouped(clean.max_characters) << " characters (Unicode code points) kept";
    for (const CorpusSource& source : settings.sources)
        if (source.min_characters || source.max_characters)
            md << "; " << source.label() << ": "
               << grouped(source.min_characters.value_or(clean.min_characters)) << " to "
               << grouped(source.max_characters.value_or(clean.max_characters));
    md << ".\n"
       << "5. Exact duplicates: "
       << (dedup.exact ? "a 64-bit hash of the normalised text, confirmed by comparing texts; the first kept"
                       : "not removed")
       << ".\n6. Near duplicates: ";
    if (dedup.near)
        md << "MinHash over " << dedup.shingle_size
           << (dedup.shingle == Shingle::words ? "-word" : "-character") << " shingles, "
           << dedup.permutations << " permutations (seed " << dedup.seed << "), LSH with "
           << report.banding.bands << " bands of " << report.banding.rows
           << " rows; a document whose estimated Jaccard similarity with a kept one reaches "
           << dedup.threshold
           << " is dropped. Sources are compared with each other too; the earlier source keeps a document.\n";
    else
        md << "not removed.\n";
    md << "7. Sampling: each budgeted source draws whole documents in a random order (seed " << settings.seed
       << ") until its budget is filled; "
       << (settings.shuffle ? "the documents are then shuffled across shards" : "input order kept")
       << ".\n8. Estimated tokens = characters / " << fixed(cpt, 2)
       << ": the tokenizer is not trained yet; its real count will differ.\n\n## Files\n\n";
    for (const ShardReport& shard : report.shards)
        md << "- `" << shard.file << "`: " << grouped(shard.documents) << " documents, "
           << grouped(shard.bytes) << " bytes, SHA-256 `" << shard.sha256 << "`\n";
    md << "- `manifest.json`: every count above, the shards' SHA-256 and the settings\n"
       << "- `corpus_config.json`: the effective settings; `lumi_prepare_corpus --config corpus_config.json` "
          "makes this corpus again\n";
    if (!report.warnings.empty()) {
        md << "\n## Warnings\n\n";
        for (const auto& warning : report.warnings) md << "- " << warning << "\n";
    }
    return md.str();
}

}  // namespace detail

// Reads, cleans, deduplicates and samples the sources and writes the corpus directory (see the header
// comment). `log`, when given, gets a line per step, and stderr the reading's progress (a bar on a terminal).
// Throws lumi::Error, leaving no output behind.
inline CorpusReport prepare_corpus(const CorpusSettings& settings, std::ostream* log = nullptr) {
    using namespace detail;
    namespace json = boost::json;
    const auto start = std::chrono::steady_clock::now();
    const std::size_t threads = settings.threads > 0 ? settings.threads : default_threads();
    const double cpt = settings.budget.chars_per_token;
    CorpusReport report;
    report.output = settings.output;
    for (const CorpusSource& source : settings.sources) {
        SourceReport stats;
        stats.name = source.label();
        stats.license = source.license;
        stats.weight = source.weight;
        for (const auto& path : source.paths) stats.paths.push_back(path.string());
        report.sources.push_back(std::move(stats));
    }

    StagedDirectory directory(settings.output);
    std::optional<CorpusBuilder> builder;
    builder.emplace(settings, threads, report, directory.path() / ".kept_texts");
    read_sources(settings, threads, report, *builder, log != nullptr);
    report.banding = builder->banding();
    report.read_seconds = since(start) - report.clean_seconds - report.dedup_seconds;
    report.records = ranges::accumulate(report.sources | ranges::views::transform(&SourceReport::records),
                                        std::uint64_t{0});
    if (log)
        *log << "read " << grouped(report.records) << " records from " << settings.sources.size()
             << " sources in " << fixed(report.read_seconds, 2) << " s, cleaned in "
             << fixed(report.clean_seconds, 2) << " s, deduplicated in " << fixed(report.dedup_seconds, 2)
             << " s (" << grouped(builder->spill_bytes()) << " bytes of text kept on disk)\n";

    std::vector<Entry>& entries = builder->entries();
    std::vector<std::vector<std::size_t>> available(settings.sources.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].fate != Fate::kept) continue;
        SourceReport& stats = report.sources[entries[i].source];
        available[entries[i].source].push_back(i);
        ++stats.available_documents;
        stats.available_characters += entries[i].characters;
    }

    const auto wanted = targets(settings, report.sources);
    for (std::size_t s = 0; s < settings.sources.size(); ++s) {
        SourceReport& stats = report.sources[s];
        if (!wanted[s]) continue;
        stats.target_characters = *wanted[s];
        if (*wanted[s] > stats.available_characters) {
            const std::string message = "source '" + stats.name + "': cannot meet its budget of " +
                                        grouped(*wanted[s]) + " characters (" +
                                        grouped(estimate_tokens(*wanted[s], cpt)) +
                                        " estimated tokens): " + grouped(stats.available_characters) +
                                        " characters remain after cleaning and deduplication";
            if (settings.budget.on_shortfall == Shortfall::fail)
                throw lumi::Error(message + "; lower the budget or set budget.on_shortfall to \"warn\"");
            report.warnings.push_back(message);
            stats.shortfall_characters = *wanted[s] - stats.available_characters;
        }
        sample(entries, available[s], *wanted[s],
               settings.sources[s].min_characters.value_or(settings.clean.min_characters),
               mix64(settings.seed ^ mix64(s + 1)));
    }

    std::vector<std::size_t> order =
        ranges::views::iota(std::size_t{0}, entries.size()) |
        ranges::views::filter([&](std::size_t i) { return entries[i].fate == Fate::kept; }) |
        ranges::to<std::vector>();
    if (order.empty()) throw lumi::Error("no documents are left after cleaning, deduplication and sampling");
    if (settings.shuffle) shuffle(order, mix64(settings.seed ^ 0x5EEDULL));

    const auto step = std::chrono::steady_clock::now();
    std::string shard;
    std::uint64_t shard_documents = 0;
    auto flush = [&] {
        if (shard_documents == 0) return;
        const std::string name = shard_name(report.shards.size());
        write_file_atomic(directory.path() / name, shard);
        report.shards.push_back({name, shard_documents, shard.size(), sha256_file(directory.path() / name)});
        report.bytes += shard.size();
        shard.clear();
        shard_documents = 0;
    };
    for (std::size_t j = 0; j < order.size(); ++j) {
        const Entry& doc = entries[order[j]];
        const std::string line =
            "{\"text\": " + json::serialize(json::string_view(builder->text(doc))) + "}\n";
        const bool full =
            (settings.shards.max_documents > 0 && shard_documents >= settings.shards.max_documents) ||
            (settings.shards.max_bytes > 0 && shard.size() + line.size() > settings.shards.max_bytes);
        if (full) flush();
        shard += line;
        ++shard_documents;
        SourceReport& stats = report.sources[doc.source];
        ++stats.documents;
        stats.characters += doc.characters;
        stats.sentences += doc.sentences;
    }
    flush();
    builder.reset();  // its scratch file must not reach the output

    for (SourceReport& stats : report.sources) {
        stats.estimated_tokens = estimate_tokens(stats.characters, cpt);
        stats.not_sampled = stats.available_documents - stats.documents;
        report.documents += stats.documents;
        report.characters += stats.characters;
        report.sentences += stats.sentences;
    }
    report.estimated_tokens = estimate_tokens(report.characters, cpt);

    write_file_atomic(directory.path() / "DATA_CARD.md", data_card(settings, report));
    config::save(settings, directory.path() / "corpus_config.json");
    report.write_seconds = since(step);
    report.seconds = since(start);
    config::write_json_file(manifest(settings, report), directory.path() / "manifest.json");
    directory.commit();
    return report;
}

// What the original printed at the end: shards, documents, sentences, estimated tokens, documents per second;
// then a line per source.
inline std::string summary(const CorpusReport& report) {
    using detail::fixed;
    using detail::grouped;
    std::ostringstream out;
    out << "corpus " << report.output.string() << "\n"
        << "  shards            " << report.shards.size() << " (" << grouped(report.bytes) << " bytes)\n"
        << "  documents         " << grouped(report.documents) << " of " << grouped(report.records)
        << " read\n"
        << "  sentences         " << grouped(report.sentences) << "\n"
        << "  characters        " << grouped(report.characters) << "\n"
        << "  estimated tokens  " << grouped(report.estimated_tokens) << "\n"
        << "  documents/second  " << grouped(static_cast<std::uint64_t>(report.documents_per_second()))
        << " (" << fixed(report.seconds, 2) << " s: read " << fixed(report.read_seconds, 2) << ", clean "
        << fixed(report.clean_seconds, 2) << ", dedup " << fixed(report.dedup_seconds, 2) << ", write "
        << fixed(report.write_seconds, 2) << ")\n";
    for (const SourceReport& s : report.sources) {
        const double share = report.characters ? 100.0 * s.characters / report.characters : 0.0;
        out << "  source " << s.name << ": " << grouped(s.documents) << " documents, "
            << grouped(s.characters) << " characters (" << fixed(share, 1) << "%), "
            << grouped(s.estimated_tokens) << " est. tokens; dropped " << grouped(s.dropped.total())
            << ", duplicates " << grouped(s.exact_duplicates) << " exact + " << grouped(s.near_duplicates)
            << " near, not sampled " << grouped(s.not_sampled) << "\n";
    }
    for (const auto& warning : report.warnings) out << "  warning: " << warning << "\n";
    return out.str();
}

}  // namespace lumi::data

namespace lumi {
using data::CorpusReport;
using data::CorpusSettings;
using data::prepare_corpus;
}  // namespace lumi
