#pragma once

// Text cleaning for the corpus stage: UTF-8 repair, Unicode NFKC (utf8proc), whitespace normalisation,
// and the counts a data card reports (code points, sentences).

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <utf8proc.h>

#include "lumi/core/error.hpp"
#include "lumi/core/utf8.hpp"

namespace lumi::data {

// `collapse`: runs of spaces and tabs become one space, lines are trimmed, at most one blank line in a row;
// `single_line`: line breaks become spaces too; `keep`: unchanged.
enum class Whitespace { keep, collapse, single_line };

inline constexpr std::string_view replacement_character = "\xEF\xBF\xBD";  // U+FFFD

inline bool is_ascii(std::string_view text) {
    for (const char c : text)
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    return true;
}

// Characters as the length filters and budgets count them: code points of valid UTF-8.
inline std::size_t count_code_points(std::string_view utf8) {
    std::size_t count = 0;
    for (const char c : utf8) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return count;
}

// Ill-formed subsequences, each counted once (as repair_utf8 would replace them).
inline std::size_t count_invalid_utf8(std::string_view text) {
    const unsigned char* p = utf8::bytes(text);
    std::size_t invalid = 0;
    for (std::size_t i = 0, subpart = 0; i < text.size();) {
        const std::size_t length = utf8::sequence(p + i, text.size() - i, subpart);
        invalid += length == 0;
        i += length == 0 ? subpart : length;
    }
    return invalid;
}

// Each maximal ill-formed subpart replaced by U+FFFD (the Unicode and WHATWG practice); `replaced` counts
// them.
inline std::string repair_utf8(std::string_view text, std::size_t* replaced = nullptr) {
    const unsigned char* p = utf8::bytes(text);
    std::string out;
    out.reserve(text.size());
    std::size_t count = 0;
    for (std::size_t i = 0, subpart = 0; i < text.size();) {
        const std::size_t length = utf8::sequence(p + i, text.size() - i, subpart);
        if (length == 0) {
            out += replacement_character;
            ++count;
            i += subpart;
        } else {
            out.append(text.data() + i, length);
            i += length;
        }
    }
    if (replaced) *replaced = count;
    return out;
}

// Unicode NFKC of valid UTF-8: full-width forms, ligatures, superscripts and the like become their plain
// equivalents (`Ｆｕｌｌ` → `Full`, `ﬁ` → `fi`).
inline std::string nfkc(std::string_view utf8) {
    if (is_ascii(utf8)) return std::string(utf8);  // ASCII is its own NFKC: skip utf8proc's two passes
    utf8proc_uint8_t* mapped = nullptr;
    const auto options = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    const utf8proc_ssize_t length =
        utf8proc_map(utf8::bytes(utf8), static_cast<utf8proc_ssize_t>(utf8.size()), &mapped, options);
    if (length < 0) throw lumi::Error(std::string("NFKC normalisation failed: ") + utf8proc_errmsg(length));
    const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(mapped, &std::free);
    return std::string(reinterpret_cast<const char*>(mapped), static_cast<std::size_t>(length));
}

// Whitespace of valid UTF-8 (see Whitespace). Line breaks are \n, \r\n, \r, \v, \f, U+0085 and U+2028;
// U+2029 is a paragraph break. Control characters other than these, U+200B and U+FEFF are removed.
inline std::string normalize_whitespace(std::string_view utf8, Whitespace mode = Whitespace::collapse) {
    if (mode == Whitespace::keep) return std::string(utf8);
    const unsigned char* p = utf8::bytes(utf8);
    std::string out;
    out.reserve(utf8.size());
    bool pending_space = false;
    int pending_breaks = 0;
    for (std::size_t i = 0, subpart = 0; i < utf8.size();) {
        std::size_t length = utf8::sequence(p + i, utf8.size() - i, subpart);
        // Ill-formed bytes (not expected after repair) pass through unchanged, as ordinary text.
        const char32_t c = length == 0 ? 0xFFFD : utf8::decode(p + i, length);
        if (length == 0) length = subpart;
        const std::string_view bytes = utf8.substr(i, length);
        i += length;
        int breaks = 0;
        if (c == '\n' || c == '\v' || c == '\f' || c == 0x85 || c == 0x2028) {
            breaks = 1;
        } else if (c == '\r') {
            breaks = 1;
            if (i < utf8.size() && utf8[i] == '\n') ++i;
        } else if (c == 0x2029) {
            breaks = 2;
        }
        if (breaks > 0 && mode == Whitespace::single_line) {
            pending_space = !out.empty();
            continue;
        }
        if (breaks > 0) {
            pending_space = false;
            if (!out.empty()) pending_breaks += breaks;
            continue;
        }
        const bool space = c == ' ' || c == '\t' || c == 0xA0 || c == 0x1680 ||
                           (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F || c == 0x3000;
        if (space) {
            pending_space = !out.empty() && pending_breaks == 0;
            continue;
        }
        if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x200B || c == 0xFEFF) continue;
        if (pending_breaks > 0) {
            out.append(pending_breaks > 1 ? 2 : 1, '\n');
            pending_breaks = 0;
        } else if (pending_space) {
            out += ' ';
        }
        pending_space = false;
        out += bytes;
    }
    return out;
}

// Sentences, approximately: a run of `.`, `!`, `?` (or `。`) followed, after closing quotes or brackets, by
// whitespace or the end closes one; a trailing fragment with a letter or digit counts too. Abbreviations
// ("Dr. Who") count as boundaries; numbers ("1.5") do not.
inline std::size_t count_sentences(std::string_view utf8) {
    constexpr std::string_view ideographic_stop = "\xE3\x80\x82";
    auto terminator = [&](std::size_t i) -> std::size_t {
        if (utf8[i] == '.' || utf8[i] == '!' || utf8[i] == '?') return 1;
        return utf8.substr(i, 3) == ideographic_stop ? 3 : 0;
    };
    auto closer = [&](std::size_t i) -> std::size_t {
        const char c = utf8[i];
        if (c == '"' || c == '\'' || c == ')' || c == ']' || c == '}') return 1;
        const std::string_view next = utf8.substr(i, 3);
        return next == "\xE2\x80\x99" || next == "\xE2\x80\x9D" ? 3 : 0;  // U+2019, U+201D
    };
    std::size_t sentences = 0;
    bool content = false;
    for (std::size_t i = 0; i < utf8.size();) {
        if (content && terminator(i) > 0) {
            const bool ideographic = terminator(i) == 3;
            std::size_t j = i;
            for (std::size_t step; j < utf8.size() && (step = terminator(j) + closer(j)) > 0;) j += step;
            if (ideographic || j == utf8.size() || std::isspace(static_cast<unsigned char>(utf8[j]))) {
                ++sentences;
                content = false;
            }
            i = j;
            continue;
        }
        const auto byte = static_cast<unsigned char>(utf8[i]);
        if ((byte >= '0' && byte <= '9') || ((byte | 0x20) >= 'a' && (byte | 0x20) <= 'z') || byte >= 0xC0)
            content = true;
        ++i;
    }
    return sentences + (content ? 1 : 0);
}

}  // namespace lumi::data
