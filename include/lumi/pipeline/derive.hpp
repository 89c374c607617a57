#pragma once

// Real text and instructions derived from Debian packages, for machines without downloaded data sets
// (scripts/setup.sh installs the packages; nothing is fetched at run time):
//
//   - fortunes (package `fortunes`): the fortune(6) files, one `%` line between entries, become JSON Lines
//     with one document per entry, so no separator reaches the corpus;
//   - WordNet 3.0 (package `wordnet-base`): each synset's gloss becomes an Alpaca-format instruction
//     ("What does the word "X" mean?" -> "X is a noun meaning ..."), the question picked per synset among
//     those it can answer by a seeded generator, so the same settings give the same file on any machine.
//
// Both write their output atomically and return what they read and wrote.

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "lumi/config/config.hpp"
#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"
#include "lumi/data/corpus.hpp"
#include "lumi/data/sources.hpp"
#include "lumi/data/text.hpp"

namespace lumi::pipeline {

// Initialised by functions: GCC 12 crashes on a braced list in a member initialiser that Boost.PFR inspects.
inline std::vector<std::filesystem::path> default_fortune_paths() {
    return {"/usr/share/games/fortunes"};
}
inline std::vector<std::string> default_fortune_match() {
    return {"*.u8"};  // the UTF-8 copies, not the .dat indexes
}

struct FortuneSettings {
    std::vector<std::filesystem::path> paths = default_fortune_paths();  // files or folders
    std::vector<std::string> match = default_fortune_match();            // file-name globs in folders

    void validate() const {
        if (paths.empty()) throw config::FieldError("paths", "list at least one file or folder");
    }
};

struct WordnetSettings {
    std::filesystem::path directory = "/usr/share/wordnet";  // data.noun, data.verb, data.adj, data.adv
    std::uint64_t examples = 5000;                           // synsets drawn; 0 = every usable one
    std::uint64_t seed = 0;
};

struct DeriveReport {
    std::uint64_t files = 0;    // read
    std::uint64_t records = 0;  // entries or synsets found
    std::uint64_t written = 0;  // documents or instructions written
};

// One `{"text": entry}` line per fortune of every file, in file-name order.
inline DeriveReport derive_fortunes(const FortuneSettings& settings, const std::filesystem::path& output) {
    settings.validate();
    DeriveReport report;
    std::string out;
    for (const auto& path : settings.paths) {
        for (const auto& file : data::list_files(path, settings.match)) {
            ++report.files;
            const std::string text = data::repair_utf8(lumi::read_file(file));
            std::string entry;
            auto flush = [&] {
                while (!entry.empty() && (entry.back() == '\n' || entry.back() == ' ')) entry.pop_back();
                ++report.records;
                if (entry.find_first_not_of(" \t\n") != std::string::npos) {
                    out += boost::json::serialize(boost::json::object{{"text", entry}}) + "\n";
                    ++report.written;
                }
                entry.clear();
            };
            std::size_t begin = 0;
            while (begin < text.size()) {
                std::size_t end = text.find('\n', begin);
                if (end == std::string::npos) end = text.size();
                std::string_view line(text.data() + begin, end - begin);
                if (line.ends_with('\r')) line.remove_suffix(1);
                if (line == "%")
                    flush();
                else
                    entry.append(line).push_back('\n');
                begin = end + 1;
            }
            if (entry.find_first_not_of(" \t\n") != std::string::npos) flush();
        }
    }
    if (report.written == 0)
        throw lumi::Error(settings.paths.front().string() +
                          ": no fortunes found (install the 'fortunes' package)");
    lumi::write_file_atomic(output, out);
    return report;
}

struct Synset {
    char pos = 'n';                  // n, v, a, s (satellite adjective), r
    std::vector<std::string> words;  // lemmas, underscores as spaces
    std::string definition;          // the gloss before its first quoted example
    std::vector<std::string> examples;
};

namespace detail {

inline std::string trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n;");
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(" \t\r\n;");
    return std::string(text.substr(first, last - first + 1));
}

inline std::string capitalised(std::string text) {
    if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
    return text;
}

inline std::string sentence(std::string text) {
    text = capitalised(std::move(text));
    if (!text.empty() && text.back() != '.' && text.back() != '!' && text.back() != '?') text += '.';
    return text;
}

inline const char* part_of_speech(char pos) {
    switch (pos) {
        case 'n':
            return "noun";
        case 'v':
            return "verb";
        case 'r':
            return "adverb";
        default:
            return "adjective";
    }
}

}  // namespace detail

// One line of a WordNet data.* file (wndb(5WN)): `offset lex_filenum ss_type w_cnt word lex_id ... | gloss`.
// The licence header's lines start with two spaces and give nothing.
inline std::optional<Synset> parse_synset(std::string_view line) {
    if (line.empty() || line[0] == ' ') return std::nullopt;
    const auto bar = line.find(" | ");
    if (bar == std::string_view::npos) return std::nullopt;
    std::vector<std::string_view> fields;
    for (std::size_t at = 0; at < bar;) {
        const auto end = std::min(line.find(' ', at), bar);
        if (end > at) fields.push_back(line.substr(at, end - at));
        at = end + 1;
    }
    if (fields.size() < 4 || fields[2].size() != 1) return std::nullopt;
    Synset synset;
    synset.pos = fields[2][0];
    const std::size_t count = std::strtoul(std::string(fields[3]).c_str(), nullptr, 16);
    for (std::size_t i = 0; i < count && 4 + 2 * i < fields.size(); ++i) {
        std::string word(fields[4 + 2 * i]);
        if (const auto marker = word.find('('); marker != std::string::npos) word.resize(marker);  // (a), (p)
        std::replace(word.begin(), word.end(), '_', ' ');
        if (!word.empty()) synset.words.push_back(std::move(word));
    }
    // The gloss: definitions, then examples in double quotes, separated by "; ".
    const std::string_view gloss = line.substr(bar + 3);
    const auto quote = gloss.find('"');
    synset.definition = detail::trim(gloss.substr(0, quote));
    for (auto at = quote; at != std::string_view::npos;) {
        const auto close = gloss.find('"', at + 1);
        if (close == std::string_view::npos) break;
        if (auto example = detail::trim(gloss.substr(at + 1, close - at - 1)); !example.empty())
            synset.examples.push_back(std::move(example));
        at = gloss.find('"', close + 1);
    }
    if (synset.words.empty() || synset.definition.empty()) return std::nullopt;
    return synset;
}

// The questions a synset can answer: 0 what the word means, 1 its definition, 2 the word in a sentence (when
// WordNet has an example), 3 a synonym (when the synset has a second lemma).
inline std::vector<std::uint64_t> question_kinds(const Synset& s) {
    std::vector<std::uint64_t> kinds{0, 1};
    if (!s.examples.empty()) kinds.push_back(2);
    if (s.words.size() > 1) kinds.push_back(3);
    return kinds;
}

// The instruction for question `kind` (see question_kinds; one the synset cannot answer falls back to 0).
inline boost::json::object wordnet_instruction(const Synset& s, std::uint64_t kind) {
    const std::string& word = s.words.front();
    const std::string quoted = "\"" + word + "\"";
    if (kind == 2 && !s.examples.empty())
        return {{"instruction", "Use the word " + quoted + " in a sentence."},
                {"input", ""},
                {"output", detail::sentence(s.examples.front())}};
    if (kind == 3 && s.words.size() > 1)
        return {{"instruction", "Give a synonym for " + quoted + "."},
                {"input", ""},
                {"output", detail::sentence(s.words[1])}};
    if (kind == 1)
        return {{"instruction", "Define " + quoted + "."},
                {"input", ""},
                {"output", detail::sentence(s.definition)}};
    return {{"instruction", "What does the word " + quoted + " mean?"},
            {"input", ""},
            {"output",
             detail::sentence(word + " is " + (s.pos == 'a' || s.pos == 's' || s.pos == 'r' ? "an " : "a ") +
                              detail::part_of_speech(s.pos) + " meaning " + s.definition)}};
}

// Alpaca-format JSON Lines from WordNet's glosses: `examples` synsets drawn without replacement (seeded,
// the same on every standard library), each asked one of the questions it can answer, drawn alike.
inline DeriveReport derive_wordnet_instructions(const WordnetSettings& settings,
                                                const std::filesystem::path& output) {
    DeriveReport report;
    std::vector<Synset> synsets;
    for (const char* name : {"data.noun", "data.verb", "data.adj", "data.adv"}) {
        const auto file = settings.directory / name;
        if (!std::filesystem::exists(file))
            throw lumi::Error(file.string() +
                              ": not found (install the 'wordnet-base' package, or set "
                              "instructions.wordnet.directory)");
        ++report.files;
        const std::string text = lumi::read_file(file);
        data::detail::for_each_line(text, [&](std::string_view line, std::uint64_t) {
            if (auto synset = parse_synset(line)) synsets.push_back(std::move(*synset));
        });
    }
    report.records = synsets.size();
    if (synsets.empty()) throw lumi::Error(settings.directory.string() + ": no WordNet synsets found");
    std::vector<std::size_t> order(synsets.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    data::detail::shuffle(order, settings.seed);
    if (settings.examples > 0 && order.size() > settings.examples) order.resize(settings.examples);
    std::mt19937_64 random(settings.seed + 1);
    std::string out;
    for (const std::size_t i : order) {
        const auto kinds = question_kinds(synsets[i]);
        const auto kind = kinds[data::detail::bounded(random, kinds.size())];
        out += boost::json::serialize(wordnet_instruction(synsets[i], kind)) + "\n";
        ++report.written;
    }
    lumi::write_file_atomic(output, out);
    return report;
}

}  // namespace lumi::pipeline
