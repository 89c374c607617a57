#pragma once

// Perplexity of a text file, WikiText-2 by default, as two sources define it (docs/evaluation.md):
// - token perplexity with a strided sliding window (Hugging Face's "perplexity of fixed-length models"):
//   every token predicted once, with at least window - stride + 1 tokens of context;
// - lm-evaluation-harness's `wikitext` figures, which do not depend on the tokenizer: word perplexity, byte
//   perplexity and bits per byte over the document-level pages, detokenised before scoring, with words and
//   bytes counted on the page as written.
//
//   auto result = lumi::eval::perplexity(model, tokenizer, {.file = "wikitext-2/test.txt"});

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include <lumi/config/config.hpp>
#include <lumi/core/error.hpp>
#include <lumi/core/files.hpp>
#include <lumi/core/parallel.hpp>
#include <lumi/eval/results.hpp>
#include <lumi/eval/scoring.hpp>

namespace lumi::eval {

// How the file splits into independently scored documents.
enum class Documents {
    wikitext_articles,  // one per ` = Title = ` heading: lm-eval's EleutherAI/wikitext_document_level pages
    whole_file          // the file is one document
};

// What the text goes through before tokenisation (never before counting words and bytes).
enum class Detokenizer {
    none,
    wikitext  // lm-eval's wikitext_detokenizer: ` @-@ ` -> `-`, ` , ` -> `, `, `( x )` -> `(x)`, ...
};

struct PerplexitySettings {
    // WikiText-2 test: the raw release (wiki.test.raw) is what lm-eval scores; the tokenised one
    // (wiki.test.tokens, with `<unk>`) reads the same way and is reported as such (`unk` > 0).
    std::filesystem::path file{};
    Documents documents = Documents::wikitext_articles;
    Detokenizer detokenize = Detokenizer::wikitext;
    Prefix prefix = Prefix::eos;  // what each document's first token is predicted from
    std::int64_t window = 0;      // tokens per forward pass; 0 = the model's context
    std::int64_t stride =
        0;  // new tokens scored per window; 0 = window / 2; window = lm-eval's disjoint windows
    std::int64_t batch = 8;  // windows per forward pass
    std::int64_t limit = 0;  // the first documents only; 0 = all

    void validate() const {
        using lumi::config::FieldError;
        if (window < 0) throw FieldError("window", "must be >= 0 (0: the model's context)");
        if (stride < 0) throw FieldError("stride", "must be >= 0 (0: half the window)");
        if (window > 0 && stride > window)
            throw FieldError("stride", "must be at most the window (" + std::to_string(window) +
                                           "), or tokens would be skipped");
        if (batch < 1) throw FieldError("batch", "must be at least 1");
        if (limit < 0) throw FieldError("limit", "must be >= 0 (0: every document)");
    }
};

struct PerplexityResult {
    std::string file;
    std::int64_t documents = 0;
    std::int64_t tokens = 0;  // tokens predicted
    std::int64_t words = 0;   // lm-eval's count: whitespace-separated pieces of each document as written
    std::int64_t bytes = 0;   // UTF-8 bytes of each document as written
    std::int64_t unk = 0;     // `<unk>` occurrences: > 0 for WikiText's tokenised release
    std::int64_t window = 0, stride = 0, windows = 0;
    std::int64_t inputs = 0;  // tokens run through the model, overlaps included
    double nll = 0;           // total negative log-likelihood, nats
    double token_perplexity = 0, word_perplexity = 0, byte_perplexity = 0, bits_per_byte = 0;
    double seconds = 0;
    Documents split = Documents::wikitext_articles;
    Detokenizer detokenize = Detokenizer::wikitext;

    // The four figures from nll and the counts.
    void finish() {
        token_perplexity = std::exp(nll / static_cast<double>(tokens));
        word_perplexity = std::exp(nll / static_cast<double>(words));
        byte_perplexity = std::exp(nll / static_cast<double>(bytes));
        bits_per_byte = nll / (static_cast<double>(bytes) * std::numbers::ln2);
    }
};

namespace detail {

// Byte length of the whitespace character at text[i], else 0: Python's str.isspace, which re's `\s` and
// str.strip follow (ASCII whitespace, U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
// U+2029, U+202F, U+205F, U+3000).
inline std::size_t space_at(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) {
        return k < text.size() ? static_cast<unsigned char>(text[k]) : 0u;
    };
    const unsigned c = byte(i), c1 = byte(i + 1), c2 = byte(i + 2);
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xc2 && (c1 == 0x85 || c1 == 0xa0)) return 2;
    if (c == 0xe1 && c1 == 0x9a && c2 == 0x80) return 3;
    if (c == 0xe2 && c1 == 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf))
        return 3;
    if (c == 0xe2 && c1 == 0x81 && c2 == 0x9f) return 3;
    if (c == 0xe3 && c1 == 0x80 && c2 == 0x80) return 3;
    return 0;
}

// Python's str.strip().
inline std::string_view strip(std::string_view text) {
    std::size_t begin = 0;
    while (begin < text.size())
        if (const std::size_t n = space_at(text, begin))
            begin += n;
        else
            break;
    std::size_t end = begin;
    for (std::size_t i = begin; i < text.size();)
        if (const std::size_t n = space_at(text, i))
            i += n;
        else
            end = ++i;  // continuation bytes of a non-space character are never spaces
    return text.substr(begin, end - begin);
}

// Python's str.replace: non-overlapping, left to right.
inline std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    for (std::size_t hit; (hit = text.find(from, i)) != std::string_view::npos; i = hit + from.size())
        out.append(text.substr(i, hit - i)).append(to);
    return out.append(text.substr(i));
}

// re.sub(r"O\s*([^C]*?)\s*C", r"O\1C", text): whitespace trimmed inside each pair, matched from the left.
inline std::string trim_pairs(std::string_view text, char open, char close) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t o = text.find(open, i);
        if (o == std::string_view::npos) break;
        const std::size_t c = text.find(close, o + 1);
        if (c == std::string_view::npos) break;  // no closing character after this one or any later one
        out.append(text.substr(i, o - i)).push_back(open);
        out.append(strip(text.substr(o + 1, c - o - 1))).push_back(close);
        i = c + 1;
    }
    return out.append(text.substr(i));
}

}  // namespace detail

// lm-eval's word count: len(re.split(r"\s+", text)), i.e. one more than the runs of whitespace (so leading
// and trailing whitespace count as an empty word each, as there).
inline std::int64_t count_words(std::string_view text) {
    std::int64_t words = 1;
    for (std::size_t i = 0; i < text.size();) {
        std::size_t n = detail::space_at(text, i);
        if (n == 0) {
            ++i;
            continue;
        }
        ++words;
        while (n > 0) {
            i += n;
            n = detail::space_at(text, i);
        }
    }
    return words;
}

// The pages of EleutherAI/wikitext_document_level (what lm-eval's wikitext task scores), from a WikiText
// file: lines split on `\n`; a line that is a level-1 heading (` = Title = `) starts a page; a page is its
// lines joined with `\n`, kept when it is not blank (the last one always).
inline std::vector<std::string> wikitext_documents(std::string_view text) {
    std::vector<std::string> pages;
    std::string page;
    bool started = false;  // ret is non-empty
    auto is_heading = [](std::string_view line) {
        const std::string collapsed =
            detail::replace_all(detail::replace_all(line, "= = =", "==="), "= =", "==");
        const std::string_view stripped = detail::strip(collapsed);
        return stripped.starts_with("= ") && stripped.ends_with(" =");
    };
    std::size_t begin = 0;
    while (true) {
        const std::size_t newline = text.find('\n', begin);
        const std::string_view line =
            text.substr(begin, newline == std::string_view::npos ? text.npos : newline - begin);
        if (is_heading(line)) {
            if (!detail::strip(page).empty()) pages.push_back(std::move(page));
            page.clear();
            started = false;
        }
        if (started) page += '\n';
        page.append(line);
        started = true;
        if (newline == std::string_view::npos) break;
        begin = newline + 1;
    }
    pages.push_back(std::move(page));
    return pages;
}

// lm-eval's wikitext_detokenizer, rule for rule.
inline std::string wikitext_detokenize(std::string_view text) {
    using detail::replace_all;
    std::string s = replace_all(text, "s '", "s'");
    // re.sub(r"/' [0-9]/", r"/'[0-9]/", s): a literal replacement, kept for fidelity.
    for (std::size_t i = 0; (i = s.find("/' ", i)) != std::string::npos;) {
        if (i + 4 < s.size() && s[i + 3] >= '0' && s[i + 3] <= '9' && s[i + 4] == '/') {
            s.replace(i, 5, "/'[0-9]/");
            i += 8;
        } else {
            ++i;
        }
    }
    for (const auto& [from, to] : {std::pair{" @-@ ", "-"},
                                   {" @,@ ", ","},
                                   {" @.@ ", "."},
                                   {" : ", ": "},
                                   {" ; ", "; "},
                                   {" . ", ". "},
                                   {" ! ", "! "},
                                   {" ? ", "? "},
                                   {" , ", ", "}})
        s = replace_all(s, from, to);
    for (const auto& [open, close] : {std::pair{'(', ')'}, {'[', ']'}, {'{', '}'}, {'"', '"'}, {'\'', '\''}})
        s = detail::trim_pairs(s, open, close);
    for (const auto& [from, to] : {std::pair{"= = = =", "===="},
                                   {"= = =", "==="},
                                   {"= =", "=="},
                                   {" \u00b0 ", "\u00b0"},
                                   {" \n", "\n"},
                                   {"\n ", "\n"},
                                   {" N ", " 1 "},
                                   {" 's", "'s"}})
        s = replace_all(s, from, to);
    return s;
}

// Universal newlines, as Python's text-mode open(): `\r\n` and `\r` read as `\n`.
inline std::string normalize_newlines(std::string_view text) {
    return detail::replace_all(detail::replace_all(text, "\r\n", "\n"), "\r", "\n");
}

// Perplexity of already-split documents: words, bytes and `<unk>` counted on `documents` as given, the
// model fed their `detokenize`d text.
template <class Model, class Tok>
PerplexityResult perplexity(Model& model, const Tok& tokenizer, const std::vector<std::string>& documents,
                            const PerplexitySettings& settings, const Progress& progress = {}) {
    const auto start = std::chrono::steady_clock::now();
    settings.validate();
    PerplexityResult result;
    result.file = settings.file.string();
    result.split = settings.documents;
    result.detokenize = settings.detokenize;
    result.documents = static_cast<std::int64_t>(documents.size());
    result.window = resolve_window<Model>(settings.window, "perplexity");
    result.stride = settings.stride > 0 ? settings.stride : std::max<std::int64_t>(1, result.window / 2);
    if (result.stride > result.window)
        throw lumi::Error("perplexity: stride " + std::to_string(result.stride) +
                          " is longer than the window " + std::to_string(result.window));
    const std::optional<int> prefix = prefix_id(tokenizer, settings.prefix);

    std::vector<std::vector<int>> ids(documents.size());
    lumi::parallel_for(documents.size(), lumi::default_threads(), [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i)
            ids[i] = tokenizer.encode(settings.detokenize == Detokenizer::wikitext
                                          ? wikitext_detokenize(documents[i])
                                          : documents[i]);
    });
    for (const auto& document : documents) {
        result.words += count_words(document);
        result.bytes += static_cast<std::int64_t>(document.size());
        for (std::size_t i = 0; (i = document.find("<unk>", i)) != std::string::npos; i += 5) ++result.unk;
    }

    const TokenScore score =
        score_documents(model, ids, prefix, result.window, result.stride, settings.batch, progress);
    if (score.tokens == 0) throw lumi::Error("perplexity: " + result.file + ": no tokens to score");
    result.tokens = score.tokens;
    result.windows = score.windows;
    result.inputs = score.inputs;
    result.nll = score.nll;
    result.finish();
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

// Perplexity of settings.file, split as settings.documents says.
template <class Model, class Tok>
PerplexityResult perplexity(Model& model, const Tok& tokenizer, const PerplexitySettings& settings,
                            const Progress& progress = {}) {
    if (settings.file.empty())
        throw lumi::Error("perplexity: file: is required (e.g. ../shared/data/wikitext-2/test.txt)");
    const std::string text = normalize_newlines(lumi::read_file(settings.file));
    std::vector<std::string> documents;
    if (settings.documents == Documents::wikitext_articles)
        documents = wikitext_documents(text);
    else
        documents.push_back(text);
    if (settings.limit > 0 && documents.size() > static_cast<std::size_t>(settings.limit))
        documents.resize(static_cast<std::size_t>(settings.limit));
    return perplexity(model, tokenizer, documents, settings, progress);
}

// The four figures for results.json, named `task.figure`.
inline std::vector<Metric> metrics(const PerplexityResult& r, std::string_view task = "wikitext") {
    const std::string t(task);
    const std::string documents = r.split == Documents::wikitext_articles
                                      ? "each WikiText article (level-1 heading) scored on its own"
                                      : "the file scored as one document";
    const std::string text =
        r.detokenize == Detokenizer::wikitext ? " after lm-eval's wikitext detokenizer" : "";
    const std::string nll =
        "NLL = total negative log-likelihood (nats) of every token of " + r.file + ", " + documents + text +
        ", each token predicted once with a sliding window of " + std::to_string(r.window) +
        " tokens advancing by " + std::to_string(r.stride) +
        (r.unk > 0 ? "; the text has " + std::to_string(r.unk) + " <unk> (tokenised release)" : "");
    return {
        {t + ".token_perplexity", r.token_perplexity, "exp(NLL / tokens predicted); " + nll, r.tokens,
         "tokens", r.seconds, false},
        {t + ".word_perplexity", r.word_perplexity,
         "exp(NLL / words), words = len(re.split(r'\\s+', document)) summed over the documents as written "
         "(lm-eval); " +
             nll,
         r.words, "words", r.seconds, false},
        {t + ".byte_perplexity", r.byte_perplexity,
         "exp(NLL / bytes), bytes = UTF-8 bytes of the documents as written (lm-eval); " + nll, r.bytes,
         "bytes", r.seconds, false},
        {t + ".bits_per_byte", r.bits_per_byte, "NLL / (bytes * ln 2) (lm-eval); " + nll, r.bytes, "bytes",
         r.seconds, false},
    };
}

}  // namespace lumi::eval
