#pragma once

// Deduplication: exact (a 64-bit hash of the normalised text, confirmed by comparing the texts) and near
// (MinHash signatures of word or character shingles, candidates found by LSH banding and confirmed by the
// signatures' estimated Jaccard similarity). Everything is a pure function of the text and the seed, so
// signatures can be computed on any number of threads and the index fed in document order.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <utf8proc.h>

#include "lumi/config/config.hpp"
#include "lumi/data/text.hpp"

namespace lumi::data {

enum class Shingle { words, characters };

struct DedupSettings {
    bool exact = true;       // drop a document whose normalised text was seen before
    bool near = true;        // drop a document too similar to one kept before (MinHash + LSH)
    double threshold = 0.8;  // Jaccard similarity of shingle sets from which a document is a near-duplicate
    Shingle shingle =
        Shingle::words;              // words: lower-cased runs of letters and digits; characters: code points
    std::uint32_t shingle_size = 5;  // words or characters per shingle
    std::uint32_t permutations = 128;  // MinHash signature length
    std::uint32_t bands = 0;           // LSH bands; 0: those that best separate `threshold` (as datasketch)
    std::uint64_t seed = 1;            // of the MinHash permutations
    // Memory of the near-duplicate index (bytes_per_document() each: about 1.2 KB at 128 permutations); once
    // full, later documents are still compared with the indexed ones but not added (a warning says from
    // which). 0: no limit.
    std::uint64_t max_index_bytes = 1ULL << 30;

    void validate() const {
        if (!(threshold > 0.0 && threshold <= 1.0))
            throw config::FieldError("threshold", "must be in (0, 1]");
        if (shingle_size < 1) throw config::FieldError("shingle_size", "must be at least 1");
        if (permutations < 8 || permutations > 1024)
            throw config::FieldError("permutations", "must be between 8 and 1024");
        if (bands > permutations) throw config::FieldError("bands", "must not exceed permutations");
    }
};

// splitmix64's finaliser: a bijection that spreads every input bit over the output.
inline std::uint64_t mix64(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

inline std::uint64_t hash_bytes(std::string_view bytes, std::uint64_t seed = 0) {
    std::uint64_t h = mix64(seed ^ (bytes.size() * 0x9E3779B97F4A7C15ULL));
    std::size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
        std::uint64_t word;
        std::memcpy(&word, bytes.data() + i, 8);
        h = mix64(h ^ word) + 0x9E3779B97F4A7C15ULL;
    }
    std::uint64_t tail = 0;
    for (std::size_t shift = 0; i < bytes.size(); ++i, shift += 8)
        tail |= std::uint64_t(static_cast<unsigned char>(bytes[i])) << shift;
    return mix64(h ^ tail);
}

// The hashes of a text's shingles (duplicates kept: MinHash ignores them). A text shorter than one
// shingle gives a single shingle of all it has; one with no words gives none.
inline std::vector<std::uint64_t> shingle_hashes(std::string_view utf8, Shingle kind, std::uint32_t size) {
    std::vector<std::uint64_t> units;  // word or character hashes, in order
    std::string word;
    auto end_word = [&] {
        if (!word.empty()) units.push_back(hash_bytes(word));
        word.clear();
    };
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(utf8.data());
    for (std::size_t i = 0; i < utf8.size();) {
        utf8proc_int32_t c = static_cast<unsigned char>(utf8[i]);
        std::size_t length = 1;
        if (c >= 0x80) {
            const utf8proc_ssize_t n =
                utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(utf8.size() - i), &c);
            length = n > 0 ? static_cast<std::size_t>(n) : 1;
            if (n <= 0) c = 0xFFFD;
        }
        i += length;
        const utf8proc_int32_t lower = c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : utf8proc_tolower(c);
        if (kind == Shingle::characters) {
            units.push_back(mix64(static_cast<std::uint64_t>(lower) + 0x51ED27B5ULL));
            continue;
        }
        bool alphanumeric;
        if (c < 0x80) {
            alphanumeric = (lower >= 'a' && lower <= 'z') || (c >= '0' && c <= '9');
        } else {
            const utf8proc_category_t category = utf8proc_category(c);
            alphanumeric = (category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_NO);
        }
        if (!alphanumeric) {
            end_word();
            continue;
        }
        utf8proc_uint8_t encoded[4];
        word.append(reinterpret_cast<const char*>(encoded), utf8proc_encode_char(lower, encoded));
    }
    end_word();
    if (units.empty()) return {};
    const std::size_t width = std::min<std::size_t>(size, units.size());
    std::vector<std::uint64_t> shingles;
    shingles.reserve(units.size() - width + 1);
    for (std::size_t begin = 0; begin + width <= units.size(); ++begin) {
        std::uint64_t h = width;
        for (std::size_t j = begin; j < begin + width; ++j) h = mix64(h ^ units[j]) + j - begin;
        shingles.push_back(h);
    }
    return shingles;
}

// MinHash with the permutations h(x) = (a x + b) mod (2^61 - 1), a and b drawn from mt19937_64(seed)
// (as datasketch does, with 64-bit shingle hashes). A signature keeps the low 32 bits of each minimum.
class MinHash {
  public:
    static constexpr std::uint64_t prime = (std::uint64_t{1} << 61) - 1;

    MinHash(std::uint32_t permutations, std::uint64_t seed) : a_(permutations), b_(permutations) {
        std::mt19937_64 random(seed);
        for (std::uint32_t i = 0; i < permutations; ++i) {
            do a_[i] = random() >> 3;
            while (a_[i] == 0 || a_[i] >= prime);
            do b_[i] = random() >> 3;
            while (b_[i] >= prime);
        }
    }

    std::uint32_t permutations() const { return static_cast<std::uint32_t>(a_.size()); }

    // `out` has permutations() entries; an empty set gives all ones.
    void signature(std::span<const std::uint64_t> shingles, std::span<std::uint32_t> out) const {
        std::vector<std::uint64_t> minimum(a_.size(), std::numeric_limits<std::uint64_t>::max());
        for (const std::uint64_t shingle : shingles) {
            const std::uint64_t x = reduce(shingle);
            for (std::size_t i = 0; i < a_.size(); ++i) {
                const std::uint64_t h = add(multiply(a_[i], x), b_[i]);
                if (h < minimum[i]) minimum[i] = h;
            }
        }
        for (std::size_t i = 0; i < a_.size(); ++i) out[i] = static_cast<std::uint32_t>(minimum[i]);
    }

    std::vector<std::uint32_t> signature(std::string_view utf8, Shingle kind, std::uint32_t size) const {
        std::vector<std::uint32_t> out(a_.size());
        signature(shingle_hashes(utf8, kind, size), out);
        return out;
    }

  private:
    static std::uint64_t reduce(std::uint64_t x) {
        x = (x & prime) + (x >> 61);
        return x >= prime ? x - prime : x;
    }
    static std::uint64_t multiply(std::uint64_t a, std::uint64_t x) {
        const unsigned __int128 product = static_cast<unsigned __int128>(a) * x;
        const std::uint64_t folded =
            (static_cast<std::uint64_t>(product) & prime) + static_cast<std::uint64_t>(product >> 61);
        return folded >= prime ? folded - prime : folded;
    }
    static std::uint64_t add(std::uint64_t a, std::uint64_t b) {
        const std::uint64_t sum = a + b;
        return sum >= prime ? sum - prime : sum;
    }

    std::vector<std::uint64_t> a_, b_;
};

inline double estimated_jaccard(std::span<const std::uint32_t> a, std::span<const std::uint32_t> b) {
    std::size_t equal = 0;
    for (std::size_t i = 0; i < a.size(); ++i) equal += a[i] == b[i];
    return a.empty() ? 0.0 : static_cast<double>(equal) / static_cast<double>(a.size());
}

// Jaccard similarity of two texts' shingle sets, computed exactly (for tests and reports).
inline double jaccard(std::string_view a, std::string_view b, Shingle kind, std::uint32_t size) {
    auto set = [&](std::string_view text) {
        std::vector<std::uint64_t> s = shingle_hashes(text, kind, size);
        std::sort(s.begin(), s.end());
        s.erase(std::unique(s.begin(), s.end()), s.end());
        return s;
    };
    const auto x = set(a), y = set(b);
    std::vector<std::uint64_t> common;
    std::set_intersection(x.begin(), x.end(), y.begin(), y.end(), std::back_inserter(common));
    const std::size_t all = x.size() + y.size() - common.size();
    return all == 0 ? 1.0 : static_cast<double>(common.size()) / static_cast<double>(all);
}

struct Banding {
    std::uint32_t bands = 1;
    std::uint32_t rows = 1;  // signature entries per band
};

// The bands and rows (bands x rows <= permutations) that minimise the false-positive area below the
// threshold plus the false-negative area above it of P(candidate | s) = 1 - (1 - s^rows)^bands, equally
// weighted (datasketch's choice).
inline Banding optimal_banding(double threshold, std::uint32_t permutations) {
    auto area = [](double from, double to, std::uint32_t b, std::uint32_t r, bool above) {
        constexpr int steps = 256;
        const double width = (to - from) / steps;
        double sum = 0;
        for (int i = 0; i < steps; ++i) {
            const double s = from + (i + 0.5) * width;
            const double p = 1.0 - std::pow(1.0 - std::pow(s, r), b);
            sum += above ? 1.0 - p : p;
        }
        return sum * width;
    };
    Banding best;
    double best_error = std::numeric_limits<double>::infinity();
    for (std::uint32_t b = 1; b <= permutations; ++b) {
        for (std::uint32_t r = 1; r <= permutations / b; ++r) {
            const double error =
                0.5 * area(0.0, threshold, b, r, false) + 0.5 * area(threshold, 1.0, b, r, true);
            if (error < best_error) best_error = error, best = {b, r};
        }
    }
    return best;
}

// The documents kept so far, by normalised text: insert() is false for a text seen before. The index holds
// hashes and ids only; on a hash match it compares the texts, asking `text_of(id)` for the kept one.
class ExactDuplicateIndex {
  public:
    template <class TextOf>
    bool insert(std::uint64_t hash, std::string_view text, std::uint64_t id, TextOf&& text_of) {
        const auto [begin, end] = seen_.equal_range(hash);
        for (auto it = begin; it != end; ++it)
            if (text_of(it->second) == text) return false;
        seen_.emplace(hash, id);
        return true;
    }

  private:
    std::unordered_multimap<std::uint64_t, std::uint64_t> seen_;
};

// The signatures of the documents kept so far, bucketed by band. find_or_insert() returns the id of a kept
// document whose estimated Jaccard similarity reaches the threshold, or keeps this one.
class NearDuplicateIndex {
  public:
    NearDuplicateIndex(std::uint32_t permutations, double threshold, std::uint32_t bands = 0)
        : permutations_(permutations), threshold_(threshold) {
        banding_ =
            bands == 0 ? optimal_banding(threshold, permutations) : Banding{bands, permutations / bands};
    }

    const Banding& banding() const { return banding_; }
    std::size_t size() const { return ids_.size(); }

    // What one more kept document costs: its signature, id, band links and their hash-map entries.
    std::uint64_t bytes_per_document() const {
        return 4ULL * permutations_ + 8 + banding_.bands * (4ULL + bytes_per_key);
    }
    // What the index holds now: its arrays as allocated and the hash map's nodes and buckets.
    std::uint64_t bytes() const {
        return signatures_.capacity() * 4 + ids_.capacity() * 8 + next_.capacity() * 4 +
               heads_.size() * bytes_per_key + heads_.bucket_count() * sizeof(void*);
    }

    // `insert` false: compare only (the index is full).
    std::optional<std::uint64_t> find_or_insert(std::uint64_t id, std::span<const std::uint32_t> signature,
                                                bool insert = true) {
        const std::uint32_t position = static_cast<std::uint32_t>(ids_.size());
        std::vector<std::uint64_t> keys(banding_.bands);
        for (std::uint32_t band = 0; band < banding_.bands; ++band) {
            std::uint64_t h = mix64(band + 1);
            for (std::uint32_t r = 0; r < banding_.rows; ++r)
                h = mix64(h ^ signature[band * banding_.rows + r]) + r;
            keys[band] = h;
            const auto head = heads_.find(h);
            for (std::uint32_t at = head == heads_.end() ? none : head->second; at != none;
                 at = next_[std::size_t{at} * banding_.bands + band]) {
                const std::span<const std::uint32_t> kept(
                    signatures_.data() + std::size_t{at} * permutations_, permutations_);
                if (estimated_jaccard(signature, kept) >= threshold_) return ids_[at];
            }
        }
        if (!insert) return std::nullopt;
        signatures_.insert(signatures_.end(), signature.begin(), signature.end());
        ids_.push_back(id);
        for (std::uint32_t band = 0; band < banding_.bands; ++band) {
            auto [slot, inserted] = heads_.try_emplace(keys[band], position);
            next_.push_back(inserted ? none : slot->second);
            slot->second = position;
        }
        return std::nullopt;
    }

  private:
    static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
    static constexpr std::uint64_t bytes_per_key =
        48;  // an unordered_map node with malloc's overhead, libstdc++

    std::uint32_t permutations_;
    double threshold_;
    Banding banding_;
    std::vector<std::uint32_t> signatures_;  // of the kept documents, permutations_ each
    std::vector<std::uint64_t> ids_;
    std::unordered_map<std::uint64_t, std::uint32_t> heads_;  // band key -> newest kept position
    std::vector<std::uint32_t> next_;                         // [position * bands + band] -> older position
};

}  // namespace lumi::data
