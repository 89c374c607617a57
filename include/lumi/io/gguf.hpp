#pragma once

// GGUF (version 3), the file format of llama.cpp and the tools built on it (ollama, LM Studio, ...): a
// writer, a reader (for checks and inspection) and the Q8_0 block quantisation, all to ggml's own definitions
// (ggml/include/gguf.h, ggml-quants.c). The exporter of lumi checkpoints is gguf_export.hpp.
//
//   lumi::io::GgufWriter out;
//   out.add_string("general.architecture", "llama");
//   out.add_tensor("token_embd.weight", embedding, lumi::io::GgufTensorType::q8_0);
//   out.write("model.gguf");                      // atomically and durably
//   const auto file = lumi::io::read_gguf("model.gguf");

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <torch/torch.h>

#include "lumi/core/error.hpp"
#include "lumi/core/files.hpp"

namespace lumi::io {

inline constexpr std::string_view gguf_magic = "GGUF";
inline constexpr std::uint32_t gguf_version = 3;
// GGUF_DEFAULT_ALIGNMENT; lumi does not write general.alignment.
inline constexpr std::uint64_t gguf_alignment = 32;
inline constexpr std::int64_t q8_0_block = 32;  // QK8_0: values per block, one float16 scale each
inline constexpr std::int64_t q8_0_block_bytes = 2 + q8_0_block;  // sizeof(block_q8_0)

// gguf_type: the type of a metadata value.
enum class GgufValueType : std::uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12
};

// ggml_type: the tensor types lumi writes.
enum class GgufTensorType : std::uint32_t { f32 = 0, f16 = 1, q8_0 = 8, bf16 = 30 };

// Bytes of `elements` values of `type` (a multiple of q8_0_block for Q8_0).
inline std::uint64_t gguf_tensor_bytes(GgufTensorType type, std::uint64_t elements) {
    switch (type) {
        case GgufTensorType::f32:
            return 4 * elements;
        case GgufTensorType::f16:
        case GgufTensorType::bf16:
            return 2 * elements;
        case GgufTensorType::q8_0:
            return elements / q8_0_block * q8_0_block_bytes;
    }
    return 0;
}

// A metadata value: a scalar (unsigned, signed, floating point, boolean or string, as `type` says) or an
// array of scalars of one type.
struct GgufValue {
    GgufValueType type = GgufValueType::u32;
    std::variant<std::uint64_t, std::int64_t, double, bool, std::string> scalar{};
    GgufValueType element = GgufValueType::u8;  // of an array
    std::vector<GgufValue> items{};             // of an array

    std::uint64_t as_unsigned() const { return std::get<std::uint64_t>(scalar); }
    std::int64_t as_signed() const { return std::get<std::int64_t>(scalar); }
    double as_float() const { return std::get<double>(scalar); }
    bool as_bool() const { return std::get<bool>(scalar); }
    const std::string& as_string() const { return std::get<std::string>(scalar); }
};

struct GgufTensorInfo {
    std::string name;
    std::vector<std::uint64_t> dims;  // ggml's order: dims[0] is the contiguous one (a row's length)
    GgufTensorType type = GgufTensorType::f32;
    std::uint64_t offset = 0;  // from the start of the data section

    std::uint64_t elements() const {
        std::uint64_t n = 1;
        for (const auto d : dims) n *= d;
        return n;
    }
};

namespace detail {

inline void put_bytes(std::string& out, const void* data, std::size_t n) {
    out.append(static_cast<const char*>(data), n);
}
template <class T>
void put(std::string& out, T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    put_bytes(out, &value, sizeof value);  // GGUF is little-endian, as every platform LibTorch supports
}
inline void put_string(std::string& out, std::string_view s) {
    put<std::uint64_t>(out, s.size());
    out.append(s);
}

inline std::uint64_t padding_to(std::uint64_t size, std::uint64_t alignment) {
    return (alignment - size % alignment) % alignment;
}

inline std::uint16_t half_bits(float x) {
    return c10::Half(x).x;
}
inline float half_value(std::uint16_t bits) {
    return float(c10::Half(bits, c10::Half::from_bits()));
}

}  // namespace detail

// ggml's quantize_row_q8_0_ref on `values` (float32, contiguous, a multiple of 32 long): per block of 32 the
// scale d = max |x| / 127 as float16, then round(x / d) (half away from zero) as int8.
inline std::string quantize_q8_0(const float* values, std::int64_t count) {
    if (count % q8_0_block != 0)
        throw Error("Q8_0: " + std::to_string(count) + " values are not whole blocks of " +
                    std::to_string(q8_0_block));
    std::string out;
    out.reserve(std::size_t(count / q8_0_block * q8_0_block_bytes));
    for (std::int64_t b = 0; b < count; b += q8_0_block) {
        float amax = 0.0f;
        for (std::int64_t j = 0; j < q8_0_block; ++j) amax = std::max(amax, std::fabs(values[b + j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        detail::put<std::uint16_t>(out, detail::half_bits(d));
        for (std::int64_t j = 0; j < q8_0_block; ++j)
            detail::put<std::int8_t>(out, static_cast<std::int8_t>(std::round(values[b + j] * id)));
    }
    return out;
}

inline std::vector<float> dequantize_q8_0(std::string_view bytes) {
    const auto block_bytes = std::size_t(q8_0_block_bytes);
    if (bytes.size() % block_bytes != 0)
        throw Error("Q8_0: " + std::to_string(bytes.size()) + " bytes are not whole blocks of " +
                    std::to_string(block_bytes));
    std::vector<float> out;
    out.reserve(bytes.size() / block_bytes * q8_0_block);
    for (std::size_t at = 0; at < bytes.size(); at += block_bytes) {
        std::uint16_t bits;
        std::memcpy(&bits, bytes.data() + at, 2);
        const float d = detail::half_value(bits);
        for (std::int64_t j = 0; j < q8_0_block; ++j)
            out.push_back(float(static_cast<std::int8_t>(bytes[at + 2 + std::size_t(j)])) * d);
    }
    return out;
}

// Collects metadata and tensors, then writes one GGUF file. Keys and tensor names are unique; tensors are
// stored in the order added, each aligned to 32 bytes.
class GgufWriter {
  public:
    void add_u32(std::string key, std::uint32_t v) { scalar(std::move(key), GgufValueType::u32, v); }
    void add_i32(std::string key, std::int32_t v) { scalar(std::move(key), GgufValueType::i32, v); }
    void add_f32(std::string key, float v) { scalar(std::move(key), GgufValueType::f32, v); }
    void add_bool(std::string key, bool v) { scalar(std::move(key), GgufValueType::boolean, std::int8_t(v)); }
    void add_string(std::string key, std::string_view v) {
        std::string& out = begin(std::move(key), GgufValueType::string);
        detail::put_string(out, v);
    }
    void add_strings(std::string key, const std::vector<std::string>& values) {
        std::string& out = begin_array(std::move(key), GgufValueType::string, values.size());
        for (const auto& v : values) detail::put_string(out, v);
    }
    void add_f32s(std::string key, const std::vector<float>& values) {
        array(std::move(key), GgufValueType::f32, values);
    }
    void add_i32s(std::string key, const std::vector<std::int32_t>& values) {
        array(std::move(key), GgufValueType::i32, values);
    }
    void add_u8s(std::string key, std::string_view bytes) {
        std::string& out = begin_array(std::move(key), GgufValueType::u8, bytes.size());
        out.append(bytes);
    }

    // `tensor` (any dtype, device and layout; at most 4 dimensions) converted to `type`. Q8_0 blocks run
    // along the last dimension, which must be a multiple of 32.
    void add_tensor(std::string name, const torch::Tensor& tensor, GgufTensorType type) {
        if (!tensor_names_.insert(name).second) throw Error("GGUF: tensor '" + name + "' added twice");
        if (tensor.dim() < 1 || tensor.dim() > 4)
            throw Error("GGUF: tensor '" + name + "' has " + std::to_string(tensor.dim()) +
                        " dimensions; ggml takes 1 to 4");
        GgufTensorInfo info{name, {}, type, 0};
        for (std::int64_t d = tensor.dim() - 1; d >= 0; --d)
            info.dims.push_back(std::uint64_t(tensor.size(d)));
        if (type == GgufTensorType::q8_0 && info.dims[0] % q8_0_block != 0)
            throw Error("GGUF: tensor '" + name + "': Q8_0 needs rows of a multiple of " +
                        std::to_string(q8_0_block) + " values, found " + std::to_string(info.dims[0]));
        const torch::Tensor cpu = tensor.detach().to(torch::kCPU);
        std::string data;
        auto raw = [&](torch::ScalarType dtype) {
            const torch::Tensor t = cpu.to(dtype).contiguous();
            data.assign(static_cast<const char*>(t.data_ptr()), std::size_t(t.nbytes()));
        };
        switch (type) {
            case GgufTensorType::f32:
                raw(torch::kFloat32);
                break;
            case GgufTensorType::f16:
                raw(torch::kFloat16);
                break;
            case GgufTensorType::bf16:
                raw(torch::kBFloat16);
                break;
            case GgufTensorType::q8_0: {
                const torch::Tensor t = cpu.to(torch::kFloat32).contiguous();
                data = quantize_q8_0(t.data_ptr<float>(), t.numel());
                break;
            }
        }
        info.offset = data_bytes_;
        data_bytes_ += data.size() + detail::padding_to(data.size(), gguf_alignment);
        tensors_.emplace_back(std::move(info), std::move(data));
    }

    std::size_t tensor_count() const { return tensors_.size(); }

    // The whole file at `file`, atomically and durably (a crash leaves the old file or the new one).
    void write(const std::filesystem::path& file) const {
        std::string head(gguf_magic);
        detail::put<std::uint32_t>(head, gguf_version);
        detail::put<std::uint64_t>(head, tensors_.size());
        detail::put<std::uint64_t>(head, metadata_count_);
        head += metadata_;
        for (const auto& [info, data] : tensors_) {
            detail::put_string(head, info.name);
            detail::put<std::uint32_t>(head, std::uint32_t(info.dims.size()));
            for (const auto d : info.dims) detail::put<std::uint64_t>(head, d);
            detail::put<std::uint32_t>(head, static_cast<std::uint32_t>(info.type));
            detail::put<std::uint64_t>(head, info.offset);
        }
        head.append(detail::padding_to(head.size(), gguf_alignment), '\0');
        AtomicFile out(file);
        out.write(head);
        const std::string zeros(gguf_alignment, '\0');
        for (const auto& [info, data] : tensors_) {
            out.write(data);
            out.write(std::string_view(zeros).substr(0, detail::padding_to(data.size(), gguf_alignment)));
        }
        out.commit();
    }

  private:
    std::string& begin(std::string key, GgufValueType type) {
        if (!keys_.insert(key).second) throw Error("GGUF: metadata key '" + key + "' added twice");
        detail::put_string(metadata_, key);
        detail::put<std::uint32_t>(metadata_, static_cast<std::uint32_t>(type));
        ++metadata_count_;
        return metadata_;
    }
    std::string& begin_array(std::string key, GgufValueType element, std::size_t count) {
        std::string& out = begin(std::move(key), GgufValueType::array);
        detail::put<std::uint32_t>(out, static_cast<std::uint32_t>(element));
        detail::put<std::uint64_t>(out, count);
        return out;
    }
    template <class T>
    void scalar(std::string key, GgufValueType type, T value) {
        detail::put(begin(std::move(key), type), value);
    }
    template <class T>
    void array(std::string key, GgufValueType element, const std::vector<T>& values) {
        std::string& out = begin_array(std::move(key), element, values.size());
        for (const T v : values) detail::put(out, v);
    }

    std::string metadata_;
    std::uint64_t metadata_count_ = 0;
    std::set<std::string> keys_, tensor_names_;
    std::vector<std::pair<GgufTensorInfo, std::string>> tensors_;
    std::uint64_t data_bytes_ = 0;
};

// A GGUF file read whole: metadata, tensor infos and data. Every length and offset is checked against the
// file, so a truncated or corrupt file is an error naming it, never a read out of bounds.
class GgufFile {
  public:
    std::uint32_t version = 0;
    std::vector<std::pair<std::string, GgufValue>> metadata;
    std::vector<GgufTensorInfo> tensors;

    const GgufValue* find(std::string_view key) const {
        for (const auto& [k, v] : metadata)
            if (k == key) return &v;
        return nullptr;
    }
    const GgufValue& at(std::string_view key) const {
        if (const auto* v = find(key)) return *v;
        throw Error(origin_ + ": no metadata key '" + std::string(key) + "'");
    }
    const GgufTensorInfo* find_tensor(std::string_view name) const {
        for (const auto& t : tensors)
            if (t.name == name) return &t;
        return nullptr;
    }
    // The stored bytes of a tensor.
    std::string_view data(const GgufTensorInfo& info) const {
        return std::string_view(bytes_).substr(data_start_ + info.offset,
                                               gguf_tensor_bytes(info.type, info.elements()));
    }
    // A tensor as float32, in LibTorch's dimension order (the reverse of ggml's), dequantised.
    torch::Tensor tensor(std::string_view name) const {
        const GgufTensorInfo* info = find_tensor(name);
        if (!info) throw Error(origin_ + ": no tensor '" + std::string(name) + "'");
        std::vector<std::int64_t> shape(info->dims.rbegin(), info->dims.rend());
        const std::string_view raw = data(*info);
        auto from = [&](torch::ScalarType dtype) {
            return torch::from_blob(const_cast<char*>(raw.data()), shape, torch::TensorOptions(dtype))
                .to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
        };
        switch (info->type) {
            case GgufTensorType::f32:
                return from(torch::kFloat32);
            case GgufTensorType::f16:
                return from(torch::kFloat16);
            case GgufTensorType::bf16:
                return from(torch::kBFloat16);
            case GgufTensorType::q8_0: {
                auto values = dequantize_q8_0(raw);
                return torch::from_blob(values.data(), shape, torch::kFloat32).clone();
            }
        }
        throw Error(origin_ + ": tensor '" + std::string(name) + "' has an unknown type");
    }

    static GgufFile read(const std::filesystem::path& file) {
        return parse(read_file(file, std::uint64_t{64} << 30), file.string());
    }

    // `bytes` as a GGUF file; `origin` names it in errors.
    static GgufFile parse(std::string bytes, std::string origin) {
        GgufFile g;
        g.origin_ = std::move(origin);
        g.bytes_ = std::move(bytes);
        Cursor c{g.bytes_, g.origin_};
        if (c.take(4) != gguf_magic) c.fail("not a GGUF file (no GGUF magic)");
        g.version = c.get<std::uint32_t>();
        if (g.version != gguf_version) c.fail("GGUF version " + std::to_string(g.version) + ", lumi reads 3");
        const auto n_tensors = c.get<std::uint64_t>();
        const auto n_metadata = c.get<std::uint64_t>();
        for (std::uint64_t i = 0; i < n_metadata; ++i) {
            std::string key = c.string();
            const auto type = static_cast<GgufValueType>(c.get<std::uint32_t>());
            g.metadata.emplace_back(std::move(key), c.value(type));
        }
        std::set<std::string> names;
        for (std::uint64_t i = 0; i < n_tensors; ++i) {
            GgufTensorInfo info;
            info.name = c.string();
            if (!names.insert(info.name).second) c.fail("tensor '" + info.name + "' is listed twice");
            const auto n_dims = c.get<std::uint32_t>();
            if (n_dims < 1 || n_dims > 4)
                c.fail("tensor '" + info.name + "' has " + std::to_string(n_dims) + " dimensions");
            std::uint64_t elements = 1;
            for (std::uint32_t d = 0; d < n_dims; ++d) {
                info.dims.push_back(c.get<std::uint64_t>());
                // Bounded by the file's size below; here only so the product cannot wrap.
                if (info.dims.back() > (std::uint64_t{1} << 40) ||
                    (info.dims.back() && elements > (std::uint64_t{1} << 40) / info.dims.back()))
                    c.fail("tensor '" + info.name + "' is too large");
                elements *= info.dims.back();
            }
            const auto type = c.get<std::uint32_t>();
            if (type != 0 && type != 1 && type != 8 && type != 30)
                c.fail("tensor '" + info.name + "' has ggml type " + std::to_string(type) +
                       ", which lumi does not read (F32, F16, BF16, Q8_0)");
            info.type = static_cast<GgufTensorType>(type);
            if (info.type == GgufTensorType::q8_0 && info.dims[0] % q8_0_block != 0)
                c.fail("tensor '" + info.name + "': Q8_0 rows of " + std::to_string(info.dims[0]) +
                       " values are not whole blocks of 32");
            info.offset = c.get<std::uint64_t>();
            g.tensors.push_back(std::move(info));
        }
        std::uint64_t alignment = gguf_alignment;
        if (const auto* a = g.find("general.alignment"); a && a->type == GgufValueType::u32) {
            alignment = a->as_unsigned();
            if (alignment == 0 || alignment % 8 != 0)
                c.fail("general.alignment " + std::to_string(alignment) + " is not a multiple of 8");
        }
        g.data_start_ = c.at + detail::padding_to(c.at, alignment);
        for (const auto& t : g.tensors) {
            const std::uint64_t size = gguf_tensor_bytes(t.type, t.elements());
            const std::uint64_t available =
                g.bytes_.size() - std::min<std::uint64_t>(g.data_start_, g.bytes_.size());
            if (t.offset % alignment != 0 || t.offset > available || size > available - t.offset)
                c.fail("tensor '" + t.name + "' lies outside the file or is not aligned");
        }
        return g;
    }

  private:
    struct Cursor {
        const std::string& bytes;
        const std::string& origin;
        std::uint64_t at = 0;

        [[noreturn]] void fail(const std::string& what) const {
            throw Error(origin + ": " + what + " (byte " + std::to_string(at) + ")");
        }
        std::string_view take(std::uint64_t n) {
            if (n > bytes.size() - at) fail("truncated: " + std::to_string(n) + " more bytes expected");
            const std::string_view out = std::string_view(bytes).substr(at, n);
            at += n;
            return out;
        }
        template <class T>
        T get() {
            T v;
            std::memcpy(&v, take(sizeof v).data(), sizeof v);
            return v;
        }
        std::string string() { return std::string(take(get<std::uint64_t>())); }
        GgufValue value(GgufValueType type) {
            GgufValue v;
            v.type = type;
            switch (type) {
                case GgufValueType::u8:
                    v.scalar = std::uint64_t(get<std::uint8_t>());
                    break;
                case GgufValueType::u16:
                    v.scalar = std::uint64_t(get<std::uint16_t>());
                    break;
                case GgufValueType::u32:
                    v.scalar = std::uint64_t(get<std::uint32_t>());
                    break;
                case GgufValueType::u64:
                    v.scalar = get<std::uint64_t>();
                    break;
                case GgufValueType::i8:
                    v.scalar = std::int64_t(get<std::int8_t>());
                    break;
                case GgufValueType::i16:
                    v.scalar = std::int64_t(get<std::int16_t>());
                    break;
                case GgufValueType::i32:
                    v.scalar = std::int64_t(get<std::int32_t>());
                    break;
                case GgufValueType::i64:
                    v.scalar = get<std::int64_t>();
                    break;
                case GgufValueType::f32:
                    v.scalar = double(get<float>());
                    break;
                case GgufValueType::f64:
                    v.scalar = get<double>();
                    break;
                case GgufValueType::boolean:
                    v.scalar = get<std::uint8_t>() != 0;
                    break;
                case GgufValueType::string:
                    v.scalar = string();
                    break;
                case GgufValueType::array: {
                    v.element = static_cast<GgufValueType>(get<std::uint32_t>());
                    if (v.element == GgufValueType::array) fail("an array of arrays");
                    const auto n = get<std::uint64_t>();
                    if (n > bytes.size() - at)
                        fail("an array of " + std::to_string(n) + " values runs past the end");
                    v.items.reserve(n);
                    for (std::uint64_t i = 0; i < n; ++i) v.items.push_back(value(v.element));
                    break;
                }
                default:
                    fail("metadata value type " + std::to_string(std::uint32_t(type)) + " is unknown");
            }
            return v;
        }
    };

    std::string origin_;
    std::string bytes_;
    std::uint64_t data_start_ = 0;
};

inline GgufFile read_gguf(const std::filesystem::path& file) {
    return GgufFile::read(file);
}

}  // namespace lumi::io
