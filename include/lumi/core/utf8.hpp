#pragma once

// UTF-8 well-formedness (Unicode Table 3-7), shared by the text cleaning of the corpus stage and the checks
// on what reaches a JSON document from outside one (command-line `--set` values).

#include <cstddef>
#include <optional>
#include <string_view>

namespace lumi::utf8 {

// Length of the well-formed UTF-8 sequence at `p`, or 0 with `subpart` set to the length of its maximal
// ill-formed subpart (at least 1), which becomes a single U+FFFD when repaired.
inline std::size_t sequence(const unsigned char* p, std::size_t n, std::size_t& subpart) {
    const unsigned char lead = p[0];
    subpart = 1;
    if (lead < 0x80) return 1;
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) low = 0xA0;   // no overlongs
        if (lead == 0xED) high = 0x9F;  // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) low = 0x90;
        if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
    } else {
        return 0;
    }
    for (std::size_t i = 1; i < length; ++i) {
        const unsigned char lo = i == 1 ? low : 0x80, hi = i == 1 ? high : 0xBF;
        if (i >= n || p[i] < lo || p[i] > hi) {
            subpart = i;
            return 0;
        }
    }
    return length;
}

// Decodes the well-formed sequence of `length` bytes at `p`.
inline char32_t decode(const unsigned char* p, std::size_t length) {
    switch (length) {
        case 1:
            return p[0];
        case 2:
            return (char32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        case 3:
            return (char32_t(p[0] & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        default:
            return (char32_t(p[0] & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
                   (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
}

inline const unsigned char* bytes(std::string_view text) {
    return reinterpret_cast<const unsigned char*>(text.data());
}

// Byte offset of the first ill-formed sequence, or none when `text` is valid UTF-8.
inline std::optional<std::size_t> first_invalid(std::string_view text) {
    const unsigned char* p = bytes(text);
    for (std::size_t i = 0, subpart = 0; i < text.size();) {
        const std::size_t length = sequence(p + i, text.size() - i, subpart);
        if (length == 0) return i;
        i += length;
    }
    return std::nullopt;
}

}  // namespace lumi::utf8
