#pragma once

// Packed token shards and their memory-mapped reader.
//
// A shard `<split>_NNNNN.bin` is a 128-byte little-endian header, then its arrays, each [count, T]:
//
//   offset  size  field
//        0     8  magic "LUMIPACK"
//        8     4  version (1)
//       12     4  token width in bytes: 2 (vocabulary <= 65536) or 4
//       16     4  arrays present: 1 tokens (always), 2 loss mask (uint8), 4 segments (uint16)
//       20     4  vocabulary size
//       24     8  sequence length T
//       32     8  sequence count
//       40     8  XXH64 (seed 0) of the payload: every byte after the header
//       48    64  SHA-256 of the tokenizer's model file, lower-case hexadecimal
//      112    16  zero
//
// then tokens, segments (when present), loss mask (when present). A segment id numbers the examples
// packed into one sequence (1, 2, ...; 0 for padding) so attention can be kept inside an example.

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"

namespace lumi::data {

static_assert(std::endian::native == std::endian::little, "packed shards are read in place as little-endian");

// XXH64 (Collet), streaming: fast enough to check every shard at open, and reproducible with `xxh64sum`.
class Xxh64 {
  public:
    explicit Xxh64(std::uint64_t seed = 0) : seed_(seed) {
        v_ = {seed + p1 + p2, seed + p2, seed, seed - p1};
    }

    Xxh64& update(const void* data, std::size_t size) {
        const auto* bytes = static_cast<const unsigned char*>(data);
        length_ += size;
        if (buffered_ + size < 32) {
            std::memcpy(buffer_.data() + buffered_, bytes, size);
            buffered_ += size;
            return *this;
        }
        if (buffered_ > 0) {
            const std::size_t take = 32 - buffered_;
            std::memcpy(buffer_.data() + buffered_, bytes, take);
            stripe(buffer_.data());
            bytes += take;
            size -= take;
            buffered_ = 0;
        }
        for (; size >= 32; bytes += 32, size -= 32) stripe(bytes);
        std::memcpy(buffer_.data(), bytes, size);
        buffered_ = size;
        return *this;
    }
    Xxh64& update(std::string_view text) { return update(text.data(), text.size()); }

    std::uint64_t digest() const {
        std::uint64_t h;
        if (length_ >= 32) {
            h = std::rotl(v_[0], 1) + std::rotl(v_[1], 7) + std::rotl(v_[2], 12) + std::rotl(v_[3], 18);
            for (std::uint64_t v : v_) h = (h ^ round(0, v)) * p1 + p4;
        } else {
            h = seed_ + p5;
        }
        h += length_;
        const unsigned char* p = buffer_.data();
        std::size_t left = buffered_;
        for (; left >= 8; p += 8, left -= 8) h = std::rotl(h ^ round(0, read64(p)), 27) * p1 + p4;
        if (left >= 4) {
            h = std::rotl(h ^ (std::uint64_t{read32(p)} * p1), 23) * p2 + p3;
            p += 4;
            left -= 4;
        }
        for (; left > 0; ++p, --left) h = std::rotl(h ^ (*p * p5), 11) * p1;
        h ^= h >> 33;
        h *= p2;
        h ^= h >> 29;
        h *= p3;
        h ^= h >> 32;
        return h;
    }

  private:
    static constexpr std::uint64_t p1 = 0x9E3779B185EBCA87, p2 = 0xC2B2AE3D27D4EB4F, p3 = 0x165667B19E3779F9,
                                   p4 = 0x85EBCA77C2B2AE63, p5 = 0x27D4EB2F165667C5;
    static std::uint64_t read64(const unsigned char* p) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        return v;
    }
    static std::uint32_t read32(const unsigned char* p) {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        return v;
    }
    static std::uint64_t round(std::uint64_t acc, std::uint64_t input) {
        return std::rotl(acc + input * p2, 31) * p1;
    }
    void stripe(const unsigned char* p) {
        for (int i = 0; i < 4; ++i) v_[i] = round(v_[i], read64(p + 8 * i));
    }

    std::uint64_t seed_;
    std::array<std::uint64_t, 4> v_{};
    std::array<unsigned char, 32> buffer_{};
    std::size_t buffered_ = 0;
    std::uint64_t length_ = 0;
};

inline std::uint64_t xxh64(std::string_view bytes, std::uint64_t seed = 0) {
    return Xxh64(seed).update(bytes).digest();
}

inline std::string hex64(std::uint64_t value) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string text(16, '0');
    for (int i = 15; i >= 0; --i, value >>= 4) text[static_cast<std::size_t>(i)] = digits[value & 0xf];
    return text;
}

inline constexpr std::array<char, 8> shard_magic{'L', 'U', 'M', 'I', 'P', 'A', 'C', 'K'};
inline constexpr std::uint32_t shard_version = 1;
inline constexpr std::size_t shard_header_bytes = 128;

// Bits of the header's `arrays` field.
inline constexpr std::uint32_t tokens_array = 1, loss_mask_array = 2, segments_array = 4;

struct ShardHeader {
    std::array<char, 8> magic = shard_magic;
    std::uint32_t version = shard_version;
    std::uint32_t token_bytes = 2;
    std::uint32_t arrays = tokens_array;
    std::uint32_t vocab_size = 0;
    std::uint64_t sequence_length = 0;
    std::uint64_t count = 0;
    std::uint64_t checksum = 0;
    std::array<char, 64> tokenizer_sha256{};
    std::array<char, 16> reserved{};

    bool has_loss_mask() const { return arrays & loss_mask_array; }
    bool has_segments() const { return arrays & segments_array; }
    std::uint64_t bytes_per_token() const {
        return token_bytes + (has_segments() ? 2 : 0) + (has_loss_mask() ? 1 : 0);
    }
    // The header plus count * T * bytes_per_token(), or nothing when that does not fit in 63 bits.
    std::optional<std::uint64_t> checked_file_bytes() const {
        std::uint64_t tokens = 0, bytes = 0;
        if (__builtin_mul_overflow(count, sequence_length, &tokens) ||
            __builtin_mul_overflow(tokens, bytes_per_token(), &bytes) ||
            __builtin_add_overflow(bytes, shard_header_bytes, &bytes) ||
            bytes > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
            return std::nullopt;
        return bytes;
    }
    // For a header that passed checked_file_bytes() (what the writer makes, what the reader accepts).
    std::uint64_t file_bytes() const {
        return shard_header_bytes + count * sequence_length * bytes_per_token();
    }
    std::string tokenizer() const { return {tokenizer_sha256.data(), tokenizer_sha256.size()}; }
};
static_assert(sizeof(ShardHeader) == shard_header_bytes && std::is_trivially_copyable_v<ShardHeader>);

// What every shard of one packed dataset shares.
struct ShardLayout {
    std::uint64_t sequence_length = 0;
    std::uint32_t vocab_size = 0;
    std::string tokenizer_sha256;  // 64 hexadecimal characters
    bool loss_mask = false;
    bool segments = false;

    std::uint32_t token_bytes() const { return vocab_size <= 65536 ? 2 : 4; }
};

// One written shard, as listed in manifest.json.
struct ShardRecord {
    std::string file;
    std::uint64_t bytes = 0;
    std::uint64_t sequences = 0;
    std::string xxh64;  // of the payload, as in the header
};

// Writes `<split>_NNNNN.bin` files into a directory, starting a new one every `sequences_per_shard`.
class ShardWriter {
  public:
    ShardWriter(std::filesystem::path directory, std::string split, ShardLayout layout,
                std::uint64_t sequences_per_shard)
        : directory_(std::move(directory)),
          split_(std::move(split)),
          layout_(std::move(layout)),
          per_shard_(sequences_per_shard) {
        if (layout_.tokenizer_sha256.size() != 64 ||
            layout_.tokenizer_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
            throw lumi::Error("tokenizer SHA-256 '" + layout_.tokenizer_sha256 +
                              "': expected 64 lower-case hexadecimal characters");
        if (layout_.sequence_length == 0 || layout_.vocab_size == 0 || per_shard_ == 0)
            throw lumi::Error(
                "shard layout: sequence length, vocabulary size and shard size must be positive");
        if (layout_.segments && layout_.sequence_length > 65535)
            throw lumi::Error("shard layout: segment ids are 16-bit, so sequences hold at most 65535 tokens");
    }

    // One sequence of exactly T tokens, with its loss mask and segment ids when the layout has them.
    void add(std::span<const int> tokens, std::span<const std::uint8_t> loss_mask = {},
             std::span<const std::uint16_t> segments = {}) {
        const std::size_t length = layout_.sequence_length;
        if (tokens.size() != length || (layout_.loss_mask && loss_mask.size() != length) ||
            (layout_.segments && segments.size() != length))
            throw lumi::Error("ShardWriter::add: a sequence must have exactly " + std::to_string(length) +
                              " tokens (and as many mask and segment entries as its layout has)");
        for (int token : tokens) {
            if (token < 0 || static_cast<std::uint64_t>(token) >= layout_.vocab_size)
                throw lumi::Error("token id " + std::to_string(token) + " is outside the vocabulary (size " +
                                  std::to_string(layout_.vocab_size) + ")");
            if (layout_.token_bytes() == 2)
                append(tokens_, static_cast<std::uint16_t>(token));
            else
                append(tokens_, static_cast<std::uint32_t>(token));
        }
        if (layout_.loss_mask)
            for (std::uint8_t m : loss_mask) mask_.push_back(static_cast<char>(m != 0));
        if (layout_.segments)
            for (std::uint16_t s : segments) append(segments_, s);
        ++count_;
        ++total_;
        if (count_ == per_shard_) flush();
    }

    // Writes the last shard (an empty one when the split has no sequences, so it can still be opened).
    std::vector<ShardRecord> finish() {
        if (count_ > 0 || records_.empty()) flush();
        return records_;
    }

    std::uint64_t sequences() const { return total_; }

  private:
    template <class T>
    static void append(std::string& out, T value) {
        char bytes[sizeof(T)];
        std::memcpy(bytes, &value, sizeof(T));
        out.append(bytes, sizeof(T));
    }

    void flush() {
        ShardHeader header;
        header.token_bytes = layout_.token_bytes();
        header.arrays = tokens_array | (layout_.loss_mask ? loss_mask_array : 0u) |
                        (layout_.segments ? segments_array : 0u);
        header.vocab_size = layout_.vocab_size;
        header.sequence_length = layout_.sequence_length;
        header.count = count_;
        header.checksum = Xxh64().update(tokens_).update(segments_).update(mask_).digest();
        std::copy(layout_.tokenizer_sha256.begin(), layout_.tokenizer_sha256.end(),
                  header.tokenizer_sha256.begin());

        char name[32];
        std::snprintf(name, sizeof(name), "_%05zu.bin", records_.size());
        const std::string file = split_ + name;
        std::ofstream out(directory_ / file, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(&header), sizeof(header));
        for (const std::string* part : {&tokens_, &segments_, &mask_})
            out.write(part->data(), static_cast<std::streamsize>(part->size()));
        out.close();
        if (!out)
            throw lumi::Error((directory_ / file).string() +
                              ": cannot write the shard: " + std::strerror(errno));
        records_.push_back({file, header.file_bytes(), count_, hex64(header.checksum)});
        tokens_.clear();
        segments_.clear();
        mask_.clear();
        count_ = 0;
    }

    std::filesystem::path directory_;
    std::string split_;
    ShardLayout layout_;
    std::uint64_t per_shard_;
    std::string tokens_, segments_, mask_;
    std::uint64_t count_ = 0, total_ = 0;
    std::vector<ShardRecord> records_;
};

// A read-only memory map of a whole file.
class MappedFile {
  public:
    explicit MappedFile(const std::filesystem::path& file) {
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw lumi::Error(file.string() + ": cannot open the file: " + std::strerror(errno));
        struct stat info {};
        if (::fstat(fd, &info) != 0) {
            const std::string reason = std::strerror(errno);
            ::close(fd);
            throw lumi::Error(file.string() + ": cannot stat the file: " + reason);
        }
        if (!S_ISREG(info.st_mode)) {
            ::close(fd);
            throw lumi::Error(file.string() +
                              (S_ISDIR(info.st_mode) ? ": is a directory" : ": is not a regular file") +
                              ", expected a file");
        }
        size_ = static_cast<std::size_t>(info.st_size);
        if (size_ > 0) {
            void* data = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
            if (data == MAP_FAILED) {
                const std::string reason = std::strerror(errno);
                ::close(fd);
                throw lumi::Error(file.string() + ": cannot map the file: " + reason);
            }
            data_ = static_cast<const unsigned char*>(data);
        }
        ::close(fd);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile() {
        if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
    }

    const unsigned char* data() const { return data_; }
    std::size_t size() const { return size_; }

  private:
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
};

// A deterministic permutation of [0, n) for (seed, epoch): Fisher-Yates over splitmix64, so the order is
// the same on every platform and standard library.
inline std::vector<std::int64_t> shuffled_order(std::int64_t n, std::uint64_t seed, std::uint64_t epoch) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
    std::uint64_t state = seed ^ (0x9e3779b97f4a7c15ull * (epoch + 1));
    auto next = [&state] {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    for (std::int64_t i = n - 1; i > 0; --i) {
        // Multiply-shift maps 64 random bits onto [0, i]; its bias (< 2^-40 here) does not matter for a
        // shuffle.
        const auto bound = static_cast<unsigned __int128>(i + 1);
        const auto j = static_cast<std::int64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
        std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    return order;
}

// Rank `rank`'s share of an order: every world-th element, after dropping the last (size % world) so all
// ranks get the same count (a different few are dropped each epoch).
inline std::vector<std::int64_t> rank_slice(std::span<const std::int64_t> order, std::int64_t rank,
                                            std::int64_t world) {
    if (world < 1 || rank < 0 || rank >= world)
        throw lumi::Error("data-parallel rank " + std::to_string(rank) + " of world size " +
                          std::to_string(world) + ": expected 0 <= rank < world");
    const std::size_t per_rank = order.size() / static_cast<std::size_t>(world);
    std::vector<std::int64_t> slice(per_rank);
    for (std::size_t i = 0; i < per_rank; ++i)
        slice[i] = order[i * static_cast<std::size_t>(world) + static_cast<std::size_t>(rank)];
    return slice;
}

// One sequence ([T]) or a batch ([B, T]): tokens int64; loss_mask bool and segments int32 when stored
// (undefined tensors otherwise).
struct Sample {
    torch::Tensor tokens;
    torch::Tensor loss_mask;
    torch::Tensor segments;
};

struct PackedOptions {
    std::string split = "train";                  // reads `<split>_NNNNN.bin`
    std::optional<std::string> tokenizer_sha256;  // when set, every shard must have been packed with it
    bool verify = false;                          // checksum every shard at open (reads all the data)
    std::uint64_t seed = 0;                       // for order()
};

// The largest token id in n ids of type T: one pass the compiler vectorises (the ids are aligned: the
// header is 128 bytes and a map starts on a page).
template <class T>
std::uint64_t max_token_id(const unsigned char* data, std::uint64_t n) {
    const T* ids = reinterpret_cast<const T*>(data);
    T largest = 0;
    for (std::uint64_t i = 0; i < n; ++i) largest = ids[i] > largest ? ids[i] : largest;
    return largest;
}

// A packed split, memory-mapped: random access to sequences without reading the files.
class PackedDataset {
  public:
    explicit PackedDataset(const std::filesystem::path& directory, PackedOptions options = {})
        : options_(std::move(options)) {
        namespace fs = std::filesystem;
        if (!fs::is_directory(directory))
            throw lumi::Error(directory.string() + ": not a packed dataset directory (" +
                              (fs::exists(directory) ? "it is a file" : "it does not exist") + ")");
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(directory)) {
            const std::string name = entry.path().filename().string();
            if (name.starts_with(options_.split + "_") && name.ends_with(".bin") &&
                name.size() == options_.split.size() + 10)
                files.push_back(entry.path());
        }
        std::sort(files.begin(), files.end());
        if (files.empty())
            throw lumi::Error(directory.string() + ": no " + options_.split + "_NNNNN.bin shards");
        auto shards = std::make_shared<std::vector<Shard>>();
        for (const fs::path& file : files) {
            Shard shard{file, std::make_shared<MappedFile>(file), {}, size_};
            shard.header = check_header(shard);
            if (shards->empty())
                first_ = shard.header;
            else
                check_same_layout(file.string(), shard.header, files.front().string(), first_);
            if (options_.verify) verify_shard(shard);
            check_token_ids(shard);
            size_ += static_cast<std::int64_t>(shard.header.count);
            shards->push_back(std::move(shard));
        }
        shards_ = std::move(shards);
    }

    std::int64_t size() const { return size_; }
    std::int64_t sequence_length() const { return static_cast<std::int64_t>(first_.sequence_length); }
    std::uint32_t vocab_size() const { return first_.vocab_size; }
    std::uint32_t token_bytes() const { return first_.token_bytes; }
    std::string tokenizer_sha256() const { return first_.tokenizer(); }
    bool has_loss_mask() const { return first_.has_loss_mask(); }
    bool has_segments() const { return first_.has_segments(); }
    std::size_t shard_count() const { return shards_->size(); }

    // Sequence i as int64 [T].
    torch::Tensor sequence(std::int64_t i) const {
        auto out = torch::empty({sequence_length()}, torch::kLong);
        copy_tokens(i, out.data_ptr<std::int64_t>());
        return out;
    }

    Sample sample(std::int64_t i) const {
        Sample s = samples(std::span<const std::int64_t>(&i, 1));
        return {s.tokens[0], s.loss_mask.defined() ? s.loss_mask[0] : s.loss_mask,
                s.segments.defined() ? s.segments[0] : s.segments};
    }

    // Tokens of the given sequences as int64 [B, T].
    torch::Tensor batch(std::span<const std::int64_t> indices) const {
        const std::int64_t length = sequence_length();
        auto out = torch::empty({static_cast<std::int64_t>(indices.size()), length}, torch::kLong);
        auto* data = out.data_ptr<std::int64_t>();
        for (std::size_t b = 0; b < indices.size(); ++b) copy_tokens(indices[b], data + b * length);
        return out;
    }

    Sample samples(std::span<const std::int64_t> indices) const {
        Sample out{batch(indices), {}, {}};
        const std::int64_t length = sequence_length();
        const auto rows = static_cast<std::int64_t>(indices.size());
        if (has_loss_mask()) {
            out.loss_mask = torch::empty({rows, length}, torch::kBool);
            auto* mask = out.loss_mask.data_ptr<bool>();
            for (std::int64_t b = 0; b < rows; ++b) {
                const auto [shard, row] = locate(indices[static_cast<std::size_t>(b)]);
                const unsigned char* src = shard.mask_begin() + row * length;
                for (std::int64_t t = 0; t < length; ++t) mask[b * length + t] = src[t] != 0;
            }
        }
        if (has_segments()) {
            out.segments = torch::empty({rows, length}, torch::kInt);
            auto* segments = out.segments.data_ptr<std::int32_t>();
            for (std::int64_t b = 0; b < rows; ++b) {
                const auto [shard, row] = locate(indices[static_cast<std::size_t>(b)]);
                const unsigned char* src = shard.segments_begin() + row * length * 2;
                for (std::int64_t t = 0; t < length; ++t) {
                    std::uint16_t s;
                    std::memcpy(&s, src + 2 * t, 2);
                    segments[b * length + t] = s;
                }
            }
        }
        return out;
    }

    // All sequences in a shuffled order, the same for the same (seed, epoch).
    std::vector<std::int64_t> order(std::uint64_t epoch) const {
        return shuffled_order(size_, options_.seed, epoch);
    }

    // This rank's share of order(epoch): disjoint across ranks, the same count on each.
    std::vector<std::int64_t> order(std::uint64_t epoch, std::int64_t rank, std::int64_t world) const {
        const auto all = order(epoch);
        return rank_slice(all, rank, world);
    }

    // Checks every shard's checksum and token ids; an error names the file and what is wrong.
    void verify() const {
        for (const Shard& shard : *shards_) verify_shard(shard);
    }

    // Identifies the data without reading it: XXH64 of every shard header (each holds its payload's checksum,
    // count, T and tokenizer), in order; the directory's path is not part of it.
    std::string identity() const {
        Xxh64 hash;
        for (const Shard& shard : *shards_) hash.update(shard.map->data(), shard_header_bytes);
        return hex64(hash.digest());
    }

    // Another split of the same dataset (val beside train) must agree on T, width, vocabulary and tokenizer.
    void check_matches(const PackedDataset& other) const {
        check_same_layout(other.shards_->front().file.string(), other.first_, shards_->front().file.string(),
                          first_);
    }

    // Whether `directory` holds shards of `split` at all (a dataset may have no validation split).
    static bool has_split(const std::filesystem::path& directory, const std::string& split) {
        std::error_code error;
        for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
            const std::string name = entry.path().filename().string();
            if (name.starts_with(split + "_") && name.ends_with(".bin") && name.size() == split.size() + 10)
                return true;
        }
        return false;
    }

  private:
    struct Shard {
        std::filesystem::path file;
        std::shared_ptr<MappedFile> map;
        ShardHeader header;
        std::int64_t first = 0;  // index of its first sequence in the dataset

        const unsigned char* tokens_begin() const { return map->data() + shard_header_bytes; }
        const unsigned char* segments_begin() const {
            return tokens_begin() + header.count * header.sequence_length * header.token_bytes;
        }
        const unsigned char* mask_begin() const {
            return segments_begin() + (header.has_segments() ? header.count * header.sequence_length * 2 : 0);
        }
    };

    ShardHeader check_header(const Shard& shard) const {
        const std::string file = shard.file.string();
        const std::size_t bytes = shard.map->size();
        if (bytes < shard_header_bytes)
            throw lumi::Error(file + ": truncated: " + std::to_string(bytes) + " bytes, shorter than the " +
                              std::to_string(shard_header_bytes) + "-byte header");
        ShardHeader header;
        std::memcpy(&header, shard.map->data(), sizeof(header));
        if (header.magic != shard_magic)
            throw lumi::Error(file + ": not a lumi packed shard (bad magic; expected \"LUMIPACK\")");
        if (header.version != shard_version)
            throw lumi::Error(file + ": unsupported shard version " + std::to_string(header.version) +
                              " (this lumi reads version " + std::to_string(shard_version) + ")");
        auto corrupted = [&](const char* field, std::uint64_t value, const std::string& expected) {
            return lumi::Error(file + ": corrupted header: " + field + " is " + std::to_string(value) +
                               ", expected " + expected);
        };
        if (header.token_bytes != 2 && header.token_bytes != 4)
            throw corrupted("token_bytes", header.token_bytes, "2 or 4");
        if (!(header.arrays & tokens_array) || (header.arrays & ~7u))
            throw corrupted("arrays", header.arrays, "1 (tokens) plus 2 (loss mask) and 4 (segments)");
        if (header.vocab_size == 0) throw corrupted("vocab_size", 0, "at least 1");
        if (header.token_bytes == 2 && header.vocab_size > 65536)
            throw corrupted("vocab_size", header.vocab_size, "at most 65536 with 2-byte tokens");
        constexpr std::uint64_t int64_max = std::numeric_limits<std::int64_t>::max();
        if (header.sequence_length == 0 || header.sequence_length > int64_max)
            throw corrupted("sequence_length", header.sequence_length, "1 to 2^63 - 1");
        if (header.count > int64_max) throw corrupted("count", header.count, "0 to 2^63 - 1");
        const auto expected = header.checked_file_bytes();
        if (!expected)
            throw lumi::Error(file + ": corrupted header: count " + std::to_string(header.count) +
                              " x sequence_length " + std::to_string(header.sequence_length) + " x " +
                              std::to_string(header.bytes_per_token()) +
                              " bytes per token does not fit in 2^63 bytes");
        if (*expected != bytes)
            throw lumi::Error(file + ": size mismatch: the header says " + std::to_string(header.count) +
                              " sequences of " + std::to_string(header.sequence_length) + " tokens (" +
                              std::to_string(*expected) + " bytes), the file has " + std::to_string(bytes) +
                              " bytes (truncated or corrupted)");
        if (options_.tokenizer_sha256 && header.tokenizer() != *options_.tokenizer_sha256)
            throw lumi::Error(file + ": packed with tokenizer " + header.tokenizer() + ", but tokenizer " +
                              *options_.tokenizer_sha256 +
                              " was given; re-pack the data with this tokenizer");
        return header;
    }

    // The fields every shard of a dataset shares; an error names the field and both files.
    static void check_same_layout(const std::string& file, const ShardHeader& header,
                                  const std::string& reference, const ShardHeader& expected) {
        auto differs = [&](const char* field, const std::string& found, const std::string& wanted) {
            return lumi::Error(file + ": " + field + " is " + found + " but " + wanted + " in " + reference +
                               ": every shard of a dataset must have been packed alike");
        };
        if (header.vocab_size != expected.vocab_size)
            throw differs("vocab_size", std::to_string(header.vocab_size),
                          std::to_string(expected.vocab_size));
        if (header.token_bytes != expected.token_bytes)
            throw differs("token_bytes", std::to_string(header.token_bytes),
                          std::to_string(expected.token_bytes));
        if (header.sequence_length != expected.sequence_length)
            throw differs("sequence_length", std::to_string(header.sequence_length),
                          std::to_string(expected.sequence_length));
        if (header.arrays != expected.arrays)
            throw differs("arrays", std::to_string(header.arrays), std::to_string(expected.arrays));
        if (header.tokenizer_sha256 != expected.tokenizer_sha256)
            throw differs("tokenizer_sha256", header.tokenizer(), expected.tokenizer());
    }

    // Every token id below the vocabulary size, in one vectorised pass over the ids (an id out of range would
    // index past the embedding table).
    static void check_token_ids(const Shard& shard) {
        const ShardHeader& h = shard.header;
        if (h.token_bytes == 2 && h.vocab_size >= 65536) return;  // no 16-bit id can be out of range
        const std::uint64_t tokens = h.count * h.sequence_length;
        const std::uint64_t largest = h.token_bytes == 2
                                          ? max_token_id<std::uint16_t>(shard.tokens_begin(), tokens)
                                          : max_token_id<std::uint32_t>(shard.tokens_begin(), tokens);
        if (largest < h.vocab_size) return;
        for (std::uint64_t t = 0; t < tokens; ++t) {
            const std::uint64_t id = read_token(shard, t);
            if (id >= h.vocab_size)
                throw lumi::Error(shard.file.string() + ": token " + std::to_string(t) + " (sequence " +
                                  std::to_string(t / h.sequence_length) + ") has id " + std::to_string(id) +
                                  ", outside the vocabulary of " + std::to_string(h.vocab_size) +
                                  " (corrupted file)");
        }
    }

    static void verify_shard(const Shard& shard) {
        const std::size_t payload = shard.map->size() - shard_header_bytes;
        const std::uint64_t checksum = Xxh64().update(shard.tokens_begin(), payload).digest();
        if (checksum != shard.header.checksum)
            throw lumi::Error(shard.file.string() + ": checksum mismatch: the payload hashes to " +
                              hex64(checksum) + ", the header records " + hex64(shard.header.checksum) +
                              " (corrupted file)");
        check_token_ids(shard);
    }

    static std::uint64_t read_token(const Shard& shard, std::uint64_t t) {
        if (shard.header.token_bytes == 2) {
            std::uint16_t v;
            std::memcpy(&v, shard.tokens_begin() + 2 * t, 2);
            return v;
        }
        std::uint32_t v;
        std::memcpy(&v, shard.tokens_begin() + 4 * t, 4);
        return v;
    }

    std::pair<const Shard&, std::int64_t> locate(std::int64_t i) const {
        if (i < 0 || i >= size_)
            throw lumi::Error("packed " + options_.split + " split: sequence " + std::to_string(i) +
                              " is out of range (size " + std::to_string(size_) + ")");
        auto it = std::upper_bound(shards_->begin(), shards_->end(), i,
                                   [](std::int64_t index, const Shard& s) { return index < s.first; });
        const Shard& shard = *std::prev(it);
        return {shard, i - shard.first};
    }

    void copy_tokens(std::int64_t i, std::int64_t* out) const {
        const auto [shard, row] = locate(i);
        const std::int64_t length = sequence_length();
        const unsigned char* src = shard.tokens_begin() + row * length * shard.header.token_bytes;
        if (shard.header.token_bytes == 2) {
            for (std::int64_t t = 0; t < length; ++t) {
                std::uint16_t v;
                std::memcpy(&v, src + 2 * t, 2);
                out[t] = v;
            }
        } else {
            for (std::int64_t t = 0; t < length; ++t) {
                std::uint32_t v;
                std::memcpy(&v, src + 4 * t, 4);
                out[t] = v;
            }
        }
    }

    PackedOptions options_;
    std::shared_ptr<const std::vector<Shard>> shards_;
    ShardHeader first_;
    std::int64_t size_ = 0;
};

}  // namespace lumi::data
