#pragma once

// The safetensors format (https://github.com/huggingface/safetensors), read and written without Python:
//
//   | u64 little-endian N | N bytes of JSON header, space-padded to 8 bytes | data buffer |
//   header: {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
//
// Offsets are relative to the data buffer; the tensors cover it exactly (no gap, no overlap, nothing after).

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include <lumi/core/error.hpp>
#include <lumi/core/files.hpp>
#include <lumi/core/torch.hpp>

namespace lumi::io {

static_assert(std::endian::native == std::endian::little,
              "lumi::io: safetensors stores little-endian data; big-endian hosts are not supported");

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct SafetensorsDtype {
    std::string_view name;
    torch::ScalarType type;
};

// The dtypes lumi reads and writes, by their safetensors names, in the order the reference implementation
// lays out the data buffer (its Dtype enum, descending), so our files equal its files byte for byte.
inline constexpr std::array<SafetensorsDtype, 10> safetensors_dtypes{{{"I64", torch::kInt64},
                                                                      {"F64", torch::kFloat64},
                                                                      {"F32", torch::kFloat32},
                                                                      {"I32", torch::kInt32},
                                                                      {"BF16", torch::kBFloat16},
                                                                      {"F16", torch::kFloat16},
                                                                      {"I16", torch::kInt16},
                                                                      {"I8", torch::kInt8},
                                                                      {"U8", torch::kUInt8},
                                                                      {"BOOL", torch::kBool}}};

inline std::optional<torch::ScalarType> dtype_from_safetensors(std::string_view name) {
    for (const auto& d : safetensors_dtypes)
        if (d.name == name) return d.type;
    return std::nullopt;
}

inline std::string_view safetensors_dtype_name(torch::ScalarType type) {
    for (const auto& d : safetensors_dtypes)
        if (d.type == type) return d.name;
    throw Error(std::string("safetensors: tensors of dtype ") + c10::toString(type) + " cannot be stored");
}

struct TensorEntry {
    std::string name{};
    torch::ScalarType dtype = torch::kFloat32;
    std::vector<std::int64_t> shape{};
    std::uint64_t begin = 0;  // byte offsets in the data buffer
    std::uint64_t end = 0;
};

struct SafetensorsHeader {
    std::vector<TensorEntry> tensors{};  // in the header's order
    std::map<std::string, std::string> metadata{};
    std::uint64_t data_start = 0;  // file offset of the data buffer: 8 + header length

    const TensorEntry* find(std::string_view name) const {
        for (const auto& t : tensors)
            if (t.name == name) return &t;
        return nullptr;
    }
};

namespace detail {

// The same limit as the reference implementation: a corrupt length must not allocate gigabytes.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

inline std::string shape_text(const std::vector<std::int64_t>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) text += ", ";
        text += std::to_string(shape[i]);
    }
    return text + "]";
}

inline std::string offsets_text(const TensorEntry& t) {
    std::string text = "[";
    text += std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
    return text;
}

// Boost.JSON keeps one of two equal keys silently; the format forbids them, so look at the text itself.
inline std::optional<std::string> first_duplicate_key(std::string_view text) {
    std::set<std::string> seen;
    int depth = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '"') {
            const std::size_t start = i;
            for (++i; i < text.size() && text[i] != '"'; ++i)
                if (text[i] == '\\') ++i;
            const std::size_t next = text.find_first_not_of(" \t\r\n", i + 1);
            if (depth == 1 && next != std::string_view::npos && text[next] == ':') {
                std::string key(boost::json::parse(text.substr(start, i + 1 - start)).as_string());
                if (!seen.insert(key).second) return key;
            }
        } else if (c == '{' || c == '[') {
            ++depth;
        } else if (c == '}' || c == ']') {
            --depth;
        }
    }
    return std::nullopt;
}

inline std::uint64_t read_offset(const boost::json::value& v, bool& ok) {
    if (const auto* u = v.if_uint64()) return *u;
    if (const auto* i = v.if_int64(); i && *i >= 0) return static_cast<std::uint64_t>(*i);
    ok = false;
    return 0;
}

// Parses and checks the header against a data buffer of `buffer_size` bytes.
inline SafetensorsHeader parse_header(std::string_view text, std::uint64_t buffer_size,
                                      const std::string& file) {
    namespace json = boost::json;
    auto fail = [&](const std::string& what) -> Error { return Error(file + ": " + what); };
    json::error_code error;
    const json::value root = json::parse(text, error);
    if (error) throw fail("invalid safetensors header: invalid JSON: " + error.message());
    const json::object* object = root.if_object();
    if (!object) throw fail("invalid safetensors header: expected a JSON object");
    if (auto duplicate = first_duplicate_key(text))
        throw fail("invalid safetensors header: tensor name '" + *duplicate + "' appears twice");

    SafetensorsHeader header;
    for (const auto& [key, value] : *object) {
        const std::string name(key);
        if (name == "__metadata__") {
            const json::object* metadata = value.if_object();
            if (!metadata)
                throw fail("invalid safetensors header: __metadata__ must be an object of strings");
            for (const auto& [k, v] : *metadata) {
                if (!v.is_string())
                    throw fail("invalid safetensors header: __metadata__." + std::string(k) +
                               " must be a string");
                header.metadata.emplace(std::string(k), std::string(v.get_string()));
            }
            continue;
        }
        auto bad = [&](const std::string& what) { return fail("tensor '" + name + "': " + what); };
        const json::object* info = value.if_object();
        if (!info) throw bad("expected an object with dtype, shape and data_offsets");
        const json::value* dtype = info->if_contains("dtype");
        const json::value* shape = info->if_contains("shape");
        const json::value* offsets = info->if_contains("data_offsets");
        if (!dtype || !dtype->is_string()) throw bad("missing dtype (a string such as \"F32\")");
        if (!shape || !shape->is_array()) throw bad("missing shape (an array of sizes)");
        if (!offsets || !offsets->is_array() || offsets->get_array().size() != 2)
            throw bad("missing data_offsets (an array [begin, end])");

        TensorEntry entry{name};
        const auto type = dtype_from_safetensors(dtype->get_string());
        if (!type) {
            std::string known;
            for (const auto& d : safetensors_dtypes)
                known += (known.empty() ? "" : ", ") + std::string(d.name);
            throw bad("unsupported dtype '" + std::string(dtype->get_string()) + "' (lumi reads " + known +
                      ")");
        }
        entry.dtype = *type;
        for (const auto& size : shape->get_array()) {
            const std::int64_t* n = size.if_int64();
            const std::uint64_t* u = size.if_uint64();
            if ((!n && !u) || (n && *n < 0)) throw bad("shape must hold non-negative integers");
            if (u && *u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                throw bad("shape holds a size too large");
            entry.shape.push_back(n ? *n : static_cast<std::int64_t>(*u));
        }
        std::uint64_t bytes = c10::elementSize(entry.dtype);
        bool overflow = false;
        for (const std::int64_t dim : entry.shape)
            overflow |= __builtin_mul_overflow(bytes, static_cast<std::uint64_t>(dim), &bytes);
        if (std::find(entry.shape.begin(), entry.shape.end(), 0) != entry.shape.end()) overflow = false;
        bool ok = true;
        entry.begin = read_offset(offsets->get_array()[0], ok);
        entry.end = read_offset(offsets->get_array()[1], ok);
        if (!ok || entry.end < entry.begin)
            throw bad("data_offsets must be two non-negative integers [begin, end] with begin <= end");
        if (overflow || bytes != entry.end - entry.begin)
            throw bad("shape " + shape_text(entry.shape) + " of " + std::string(dtype->get_string()) +
                      " needs " + (overflow ? "more than 2^64" : std::to_string(bytes)) + " bytes" +
                      ", but data_offsets " + offsets_text(entry) + " span " +
                      std::to_string(entry.end - entry.begin));
        header.tensors.push_back(std::move(entry));
    }

    // The tensors, in buffer order, must tile the buffer exactly.
    std::vector<const TensorEntry*> order;
    for (const auto& t : header.tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
        return std::pair(a->begin, a->end) < std::pair(b->begin, b->end);
    });
    std::uint64_t covered = 0;
    const TensorEntry* previous = nullptr;
    for (const TensorEntry* t : order) {
        if (t->begin < covered)
            throw fail("tensor '" + t->name + "' (data_offsets " + offsets_text(*t) + ") overlaps tensor '" +
                       previous->name + "' (" + offsets_text(*previous) + ")");
        if (t->begin > covered)
            throw fail("bytes " + std::to_string(covered) + ".." + std::to_string(t->begin) +
                       " of the data buffer belong to no tensor (before tensor '" + t->name + "')");
        covered = t->end;
        previous = t;
    }
    if (covered > buffer_size)
        throw fail("truncated: the tensors need " + std::to_string(covered) +
                   " bytes of data, the file holds " + std::to_string(buffer_size));
    if (covered < buffer_size)
        throw fail("the file holds " + std::to_string(buffer_size - covered) +
                   " bytes after the last tensor's data, which the header does not describe");
    return header;
}

}  // namespace detail

// Reads a safetensors file one tensor at a time: the header is parsed and checked on opening, so
// loading a model holds at most one tensor beyond the model itself.
class SafetensorsReader {
  public:
    explicit SafetensorsReader(std::filesystem::path file) : file_(std::move(file)) {
        const std::string name = file_.string();
        std::error_code error;
        const std::uint64_t size = std::filesystem::file_size(file_, error);
        if (error) throw Error(name + ": cannot read the file: " + error.message());
        in_.open(file_, std::ios::binary);
        if (!in_) throw Error(name + ": cannot open the file: " + std::strerror(errno));
        if (size < 8)
            throw Error(name + ": not a safetensors file: it holds " + std::to_string(size) +
                        " bytes, fewer than the 8 of the header length");
        unsigned char prefix[8];
        read_exactly(reinterpret_cast<char*>(prefix), 8);
        std::uint64_t length = 0;
        for (int i = 7; i >= 0; --i) length = (length << 8) | prefix[i];
        if (length > size - 8)
            throw Error(name + ": not a safetensors file: header length " + std::to_string(length) +
                        " exceeds the " + std::to_string(size - 8) + " bytes after it");
        if (length > detail::max_header_bytes)
            throw Error(name + ": safetensors header length " + std::to_string(length) +
                        " exceeds the limit of " + std::to_string(detail::max_header_bytes) + " bytes");
        std::string text(length, '\0');
        read_exactly(text.data(), length);
        header_ = detail::parse_header(text, size - 8 - length, name);
        header_.data_start = 8 + length;
    }

    const std::filesystem::path& path() const { return file_; }
    const SafetensorsHeader& header() const { return header_; }

    // An owning, contiguous CPU tensor.
    torch::Tensor read(const TensorEntry& entry) {
        auto tensor = torch::empty(entry.shape, torch::TensorOptions().dtype(entry.dtype));
        const std::uint64_t bytes = entry.end - entry.begin;
        if (bytes == 0) return tensor;
        in_.seekg(static_cast<std::streamoff>(header_.data_start + entry.begin));
        read_exactly(static_cast<char*>(tensor.data_ptr()), bytes);
        return tensor;
    }

    torch::Tensor read(std::string_view name) {
        const TensorEntry* entry = header_.find(name);
        if (!entry) throw Error(file_.string() + ": no tensor named '" + std::string(name) + "'");
        return read(*entry);
    }

  private:
    void read_exactly(char* into, std::uint64_t bytes) {
        in_.read(into, static_cast<std::streamsize>(bytes));
        if (static_cast<std::uint64_t>(in_.gcount()) != bytes)
            throw Error(file_.string() + ": read error (the file changed while being read?)");
    }

    std::filesystem::path file_;
    std::ifstream in_;
    SafetensorsHeader header_;
};

struct SafetensorsFile {
    NamedTensors tensors{};  // in the header's order
    std::map<std::string, std::string> metadata{};

    const torch::Tensor* find(std::string_view name) const {
        for (const auto& [n, t] : tensors)
            if (n == name) return &t;
        return nullptr;
    }
};

inline SafetensorsHeader read_safetensors_header(const std::filesystem::path& file) {
    return SafetensorsReader(file).header();
}

inline SafetensorsFile load_safetensors(const std::filesystem::path& file) {
    SafetensorsReader reader(file);
    SafetensorsFile result{{}, reader.header().metadata};
    for (const auto& entry : reader.header().tensors)
        result.tensors.emplace_back(entry.name, reader.read(entry));
    return result;
}

// Writes the tensors (from any device, any layout) as `file`, atomically: a temporary sibling is renamed
// into place. The data buffer is ordered by dtype (largest elements first), then name, as the reference
// implementation does, so every tensor is aligned to its element size.
inline void save_safetensors(const std::filesystem::path& file, const NamedTensors& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
    namespace json = boost::json;
    const std::string name = file.string();

    std::set<std::string_view> names;
    for (const auto& [n, t] : tensors) {
        if (n.empty() || n == "__metadata__") throw Error(name + ": invalid tensor name '" + n + "'");
        if (!names.insert(n).second) throw Error(name + ": tensor name '" + n + "' given twice");
        if (!t.defined()) throw Error(name + ": tensor '" + n + "' is undefined");
        safetensors_dtype_name(t.scalar_type());
    }
    std::vector<std::size_t> order(tensors.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    auto rank = [&](std::size_t i) {
        const auto type = tensors[i].second.scalar_type();
        return std::find_if(safetensors_dtypes.begin(), safetensors_dtypes.end(),
                            [&](const auto& d) { return d.type == type; }) -
               safetensors_dtypes.begin();
    };
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return std::pair(rank(a), std::string_view(tensors[a].first)) <
               std::pair(rank(b), std::string_view(tensors[b].first));
    });

    json::object header;
    if (!metadata.empty()) {
        json::object meta;
        for (const auto& [k, v] : metadata) meta[k] = v;
        header["__metadata__"] = std::move(meta);
    }
    std::uint64_t offset = 0;
    for (std::size_t i : order) {
        const auto& t = tensors[i].second;
        json::array shape;
        for (auto s : t.sizes()) shape.push_back(s);
        const std::uint64_t bytes = static_cast<std::uint64_t>(t.numel()) * t.element_size();
        header[tensors[i].first] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                                    {"shape", std::move(shape)},
                                    {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = json::serialize(header);
    text.append((8 - text.size() % 8) % 8, ' ');

    lumi::AtomicFile out(file);  // synced and renamed into place: never half a file
    char prefix[8];
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((std::uint64_t(text.size()) >> (8 * i)) & 0xff);
    out.write({prefix, 8});
    out.write(text);
    for (std::size_t i : order) {
        // One tensor at a time is moved to the CPU, so a GPU model is never copied whole.
        const auto t = tensors[i].second.detach().to(torch::kCPU).contiguous();
        if (t.numel() > 0)
            out.write({static_cast<const char*>(t.data_ptr()), std::size_t(t.numel()) * t.element_size()});
    }
    out.commit();
}

}  // namespace lumi::io
