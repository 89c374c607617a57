#pragma once

// Smoke prompts: fixed prompts in categories, each generated once and scored 0..1 by a documented rule
// (docs/evaluation.md). Not a benchmark: a quick look at whether a model answers, stays on topic, stops
// cleanly and does not loop. Generation is injected, so this header does not depend on the generator:
//
//   auto set = lumi::eval::load_smoke_prompts("presets/eval/smoke_prompts.json");
//   auto result = lumi::eval::run_smoke(set, [&](const std::vector<std::string>& prompts) { ... });

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/error.hpp>
#include <lumi/data/chat_template.hpp>
#include <lumi/eval/results.hpp>

namespace lumi::eval {

// What a prompt's output must satisfy; every member has a default, so a rule names only what it checks.
struct SmokeRule {
    std::vector<std::string> any{};   // at least one of these words or phrases appears
    std::vector<std::string> all{};   // each appears (partial credit: the fraction found)
    std::vector<std::string> none{};  // none appears
    std::uint32_t min_words = 1;
    std::uint32_t max_words = 0;       // 0 = no limit
    std::uint32_t ngram = 3;           // for the repetition check
    double max_repeated_ngrams = 0.3;  // fraction of word n-grams that repeat an earlier one
    bool check_leakage = true;         // no chat-template marker in the output

    void validate() const {
        using lumi::config::FieldError;
        if (max_words > 0 && max_words < min_words)
            throw FieldError("max_words", "must be >= min_words (or 0)");
        if (ngram < 1) throw FieldError("ngram", "must be at least 1");
        if (!(max_repeated_ngrams >= 0 && max_repeated_ngrams <= 1))
            throw FieldError("max_repeated_ngrams", "must be in [0, 1]");
        for (const auto* list : {&any, &all, &none})
            for (const auto& keyword : *list)
                if (keyword.empty()) throw FieldError("", "a keyword is empty");
    }
};

struct SmokePrompt {
    std::string id;
    std::string category;
    std::string prompt;
    SmokeRule rule;
};

struct SmokeSet {
    std::vector<SmokePrompt> prompts;

    void validate() const {
        using lumi::config::FieldError;
        std::set<std::string> ids;
        for (std::size_t i = 0; i < prompts.size(); ++i) {
            const std::string at = "prompts[" + std::to_string(i) + "]";
            if (prompts[i].id.empty()) throw FieldError(at + ".id", "is required");
            if (!ids.insert(prompts[i].id).second)
                throw FieldError(at + ".id", "'" + prompts[i].id + "' is repeated");
            if (prompts[i].category.empty()) throw FieldError(at + ".category", "is required");
            if (prompts[i].prompt.empty()) throw FieldError(at + ".prompt", "is required");
        }
    }
};

// The categories of lumi's own set, presets/eval/smoke_prompts.json, in report order.
inline constexpr std::string_view smoke_categories[] = {
    "basic_knowledge", "instruction_following",  "wikipedia_style", "conversation",
    "multilingual",    "language_understanding", "creativity",      "reasoning"};

// Read strictly: an unknown key or a wrong type names the file and the path.
inline SmokeSet load_smoke_prompts(const std::filesystem::path& file) {
    auto set = lumi::config::load<SmokeSet>(file);
    if (set.prompts.empty()) throw lumi::Error(file.string() + ": prompts: no prompts");
    return set;
}

using data::template_markers;  // in an answer: the model went on to write the next turn itself

namespace detail {

inline bool word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c >= 0x80;
}

inline char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = lower(c);
    return out;
}

inline std::vector<std::string> words(std::string_view text) {
    std::vector<std::string> out;
    std::size_t i = 0;
    auto space = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    while (i < text.size()) {
        while (i < text.size() && space(text[i])) ++i;
        const std::size_t begin = i;
        while (i < text.size() && !space(text[i])) ++i;
        if (i > begin) out.emplace_back(text.substr(begin, i - begin));
    }
    return out;
}

inline std::string quoted(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "'" : ", '") + item + "'";
    return out;
}

}  // namespace detail

// Whether `phrase` appears in `text` as whole words, ignoring ASCII case: "Paris" matches "paris," but not
// "Parisian"; "5" matches "is 5." but not "15".
inline bool contains_phrase(std::string_view text, std::string_view phrase) {
    const std::string haystack = detail::lowercase(text), needle = detail::lowercase(phrase);
    if (needle.empty()) return false;
    for (std::size_t i = 0; (i = haystack.find(needle, i)) != std::string::npos; ++i) {
        const std::size_t end = i + needle.size();
        const bool left = i == 0 || !detail::word_byte(haystack[i - 1]) || !detail::word_byte(needle.front());
        const bool right =
            end == haystack.size() || !detail::word_byte(haystack[end]) || !detail::word_byte(needle.back());
        if (left && right) return true;
    }
    return false;
}

// The fraction of the text's word n-grams (lower-cased, split on whitespace) that repeat an earlier one:
// 0 for varied text, near 1 for a loop ("the cat the cat the cat ..."); 0 with fewer than n words.
inline double repeated_ngram_ratio(std::string_view text, std::size_t n) {
    const auto tokens = detail::words(detail::lowercase(text));
    if (n == 0 || tokens.size() < n) return 0;
    std::set<std::vector<std::string>> seen;
    const std::size_t total = tokens.size() - n + 1;
    std::size_t repeated = 0;
    for (std::size_t i = 0; i < total; ++i)
        if (!seen.emplace(tokens.begin() + static_cast<std::ptrdiff_t>(i),
                          tokens.begin() + static_cast<std::ptrdiff_t>(i + n))
                 .second)
            ++repeated;
    return static_cast<double>(repeated) / static_cast<double>(total);
}

struct SmokeScore {
    double score = 0;                  // 0..1
    std::vector<std::string> reasons;  // one per check: "pass: ..." or "fail: ..."
    bool passed() const { return score >= 1; }
};

// score = content x form: content is the mean of the keyword checks (any: 0/1, all: fraction found,
// none: 0/1; 1 when the rule has none), form the mean of length, leakage and repetition (each 0/1). An
// empty output scores 0. So a fluent wrong answer scores 0, a right answer that loops or leaks a template
// loses a third per failed form check.
inline SmokeScore score_smoke(const SmokePrompt& prompt, std::string_view output) {
    const SmokeRule& rule = prompt.rule;
    SmokeScore result;
    const auto words = detail::words(output);
    if (words.empty()) {
        result.reasons.push_back("fail: empty output");
        return result;
    }
    auto note = [&](bool pass, std::string text) {
        result.reasons.push_back((pass ? "pass: " : "fail: ") + text);
    };

    std::vector<double> content;
    if (!rule.any.empty()) {
        std::vector<std::string> found;
        for (const auto& k : rule.any)
            if (contains_phrase(output, k)) found.push_back(k);
        content.push_back(found.empty() ? 0.0 : 1.0);
        note(!found.empty(), found.empty() ? "none of " + detail::quoted(rule.any) + " appears"
                                           : "found " + detail::quoted(found));
    }
    if (!rule.all.empty()) {
        std::vector<std::string> missing;
        for (const auto& k : rule.all)
            if (!contains_phrase(output, k)) missing.push_back(k);
        content.push_back(1.0 - static_cast<double>(missing.size()) / static_cast<double>(rule.all.size()));
        note(missing.empty(), missing.empty() ? "found all of " + detail::quoted(rule.all)
                                              : "missing " + detail::quoted(missing) + " of " +
                                                    std::to_string(rule.all.size()));
    }
    if (!rule.none.empty()) {
        std::vector<std::string> found;
        for (const auto& k : rule.none)
            if (contains_phrase(output, k)) found.push_back(k);
        content.push_back(found.empty() ? 1.0 : 0.0);
        note(found.empty(), found.empty() ? "avoids " + detail::quoted(rule.none)
                                          : "contains forbidden " + detail::quoted(found));
    }

    std::vector<double> form;
    const std::size_t count = words.size();
    const bool length_ok = count >= rule.min_words && (rule.max_words == 0 || count <= rule.max_words);
    form.push_back(length_ok);
    note(length_ok, std::to_string(count) + " words (min " + std::to_string(rule.min_words) +
                        (rule.max_words > 0 ? ", max " + std::to_string(rule.max_words) : std::string()) +
                        ")");
    if (rule.check_leakage) {
        const std::string text = "\n" + std::string(output);
        std::vector<std::string> leaked;
        for (const auto marker : template_markers)
            if (text.find(marker) != std::string::npos)
                leaked.emplace_back(marker.substr(marker.front() == '\n'));
        form.push_back(leaked.empty());
        note(leaked.empty(),
             leaked.empty() ? "no template marker" : "template leaked: " + detail::quoted(leaked));
    }
    const double ratio = repeated_ngram_ratio(output, rule.ngram);
    form.push_back(ratio <= rule.max_repeated_ngrams);
    note(ratio <= rule.max_repeated_ngrams,
         std::to_string(static_cast<int>(std::lround(ratio * 100))) + "% of " + std::to_string(rule.ngram) +
             "-grams repeat (max " +
             std::to_string(static_cast<int>(std::lround(rule.max_repeated_ngrams * 100))) + "%)");

    auto mean = [](const std::vector<double>& v) {
        double sum = 0;
        for (double x : v) sum += x;
        return v.empty() ? 1.0 : sum / static_cast<double>(v.size());
    };
    result.score = mean(content) * mean(form);
    return result;
}

// Generates the completions of a batch of prompts, in order.
using Generate = std::function<std::vector<std::string>(const std::vector<std::string>& prompts)>;

struct SmokeOutcome {
    std::string id, category, prompt, output;
    SmokeScore score;
};

struct SmokeSummary {
    std::string category;  // empty for the overall line
    std::int64_t n = 0, passed = 0;
    double mean = 0;
};

struct SmokeResult {
    std::vector<SmokeOutcome> outcomes;    // in the set's order
    std::vector<SmokeSummary> categories;  // in order of first appearance
    SmokeSummary overall;                  // the mean over prompts
    double seconds = 0;
};

// Scores outputs[i] for set.prompts[i] and aggregates per category and overall.
inline SmokeResult score_smoke_outputs(const SmokeSet& set, const std::vector<std::string>& outputs) {
    if (outputs.size() != set.prompts.size())
        throw lumi::Error("smoke: " + std::to_string(outputs.size()) + " outputs for " +
                          std::to_string(set.prompts.size()) + " prompts");
    SmokeResult result;
    std::map<std::string, std::size_t> index;
    auto add = [](SmokeSummary& s, const SmokeScore& score) {
        ++s.n;
        s.passed += score.passed();
        s.mean += score.score;  // a sum until the end
    };
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const SmokePrompt& p = set.prompts[i];
        SmokeOutcome outcome{p.id, p.category, p.prompt, outputs[i], score_smoke(p, outputs[i])};
        const auto [it, inserted] = index.try_emplace(p.category, result.categories.size());
        if (inserted) result.categories.push_back({p.category});
        add(result.categories[it->second], outcome.score);
        add(result.overall, outcome.score);
        result.outcomes.push_back(std::move(outcome));
    }
    result.overall.mean /= static_cast<double>(std::max<std::int64_t>(1, result.overall.n));
    for (auto& s : result.categories) s.mean /= static_cast<double>(s.n);
    return result;
}

// Generates every prompt (one call, so the generator can batch) and scores the outputs.
inline SmokeResult run_smoke(const SmokeSet& set, const Generate& generate) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> prompts;
    for (const auto& p : set.prompts) prompts.push_back(p.prompt);
    auto result = score_smoke_outputs(set, generate(prompts));
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

// `smoke.score` (overall), `smoke.pass_rate` and `smoke.<category>.score`.
inline std::vector<Metric> metrics(const SmokeResult& r, std::string_view task = "smoke") {
    const std::string t(task);
    const std::string rule =
        "score per prompt = content x form (docs/evaluation.md): keyword checks times length, "
        "template-leakage "
        "and repetition checks";
    std::vector<Metric> out{
        {t + ".score", r.overall.mean, "mean over prompts of the score in [0, 1]; " + rule, r.overall.n,
         "prompts", r.seconds, true},
        {t + ".pass_rate",
         r.overall.n ? static_cast<double>(r.overall.passed) / static_cast<double>(r.overall.n) : 0,
         "fraction of prompts scoring 1 (every check passed)", r.overall.n, "prompts", r.seconds, true}};
    for (const auto& c : r.categories)
        out.push_back({t + "." + c.category + ".score", c.mean,
                       "mean score of the " + c.category + " prompts", c.n, "prompts", r.seconds, true});
    return out;
}

// Every prompt with its output, score and reasons, for results.json's details.
inline boost::json::array details(const SmokeResult& r) {
    boost::json::array out;
    for (const auto& o : r.outcomes) {
        boost::json::array reasons;
        for (const auto& reason : o.score.reasons) reasons.emplace_back(reason);
        out.push_back(boost::json::object{{"id", o.id},
                                          {"category", o.category},
                                          {"prompt", o.prompt},
                                          {"output", o.output},
                                          {"score", o.score.score},
                                          {"reasons", reasons}});
    }
    return out;
}

}  // namespace lumi::eval
