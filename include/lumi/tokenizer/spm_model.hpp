#pragma once

// What a SentencePiece model file holds, read from its protobuf bytes: every piece with its score and type,
// the model type and the normaliser (its precompiled character map included). SentencePiece's processor
// answers per-id questions but hides the user-defined type and the normaliser, which an exporter to another
// runtime (GGUF for llama.cpp) must carry over exactly. The wire format is protobuf's; the field numbers are
// those of SentencePiece's sentencepiece_model.proto.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "lumi/core/error.hpp"

namespace lumi::tokenizer {

// ModelProto.SentencePiece.Type; llama.cpp's token types use the same numbers.
enum class PieceType : std::int32_t {
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6
};

struct SpmPiece {
    std::string piece;
    float score = 0.0f;
    PieceType type = PieceType::normal;
};

struct SpmModel {
    std::vector<SpmPiece> pieces;
    bool unigram = true;  // TrainerSpec.model_type: UNIGRAM (else BPE, WORD or CHAR)
    bool byte_fallback = false;
    bool treat_whitespace_as_suffix = false;
    // NormalizerSpec
    std::string normalizer_name;
    std::string precompiled_charsmap;
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
    bool escape_whitespaces = true;
};

namespace detail {

// A cursor over protobuf bytes; every read checks the bounds and names `origin` when they are broken.
class ProtoReader {
  public:
    ProtoReader(std::string_view bytes, const std::string& origin) : bytes_(bytes), origin_(origin) {}

    bool done() const { return at_ == bytes_.size(); }

    std::uint64_t varint() {
        std::uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (at_ >= bytes_.size()) fail("a varint runs past the end");
            const auto byte = static_cast<unsigned char>(bytes_[at_++]);
            value |= std::uint64_t(byte & 0x7f) << shift;
            if (!(byte & 0x80)) return value;
        }
        fail("a varint is longer than 10 bytes");
    }
    std::string_view bytes() {
        const std::uint64_t n = varint();
        if (n > bytes_.size() - at_) fail("a length-delimited field runs past the end");
        const std::string_view out = bytes_.substr(at_, n);
        at_ += n;
        return out;
    }
    float fixed32_float() {
        if (bytes_.size() - at_ < 4) fail("a 32-bit field runs past the end");
        std::uint32_t bits = 0;
        for (int i = 3; i >= 0; --i) bits = (bits << 8) | static_cast<unsigned char>(bytes_[at_ + i]);
        at_ += 4;
        float value;
        std::memcpy(&value, &bits, sizeof value);
        return value;
    }
    void skip(std::uint32_t wire_type) {
        switch (wire_type) {
            case 0:
                varint();
                return;
            case 1:
                if (bytes_.size() - at_ < 8) fail("a 64-bit field runs past the end");
                at_ += 8;
                return;
            case 2:
                bytes();
                return;
            case 5:
                fixed32_float();
                return;
            default:
                fail("unsupported wire type " + std::to_string(wire_type));
        }
    }
    [[noreturn]] void fail(const std::string& what) const {
        throw Error(origin_ + ": not a SentencePiece model: " + what + " (byte " + std::to_string(at_) + ")");
    }

  private:
    std::string_view bytes_;
    const std::string& origin_;
    std::size_t at_ = 0;
};

// Calls on_field(field number, wire type, reader) for each field of a message.
template <class F>
void for_each_field(std::string_view message, const std::string& origin, F&& on_field) {
    ProtoReader reader(message, origin);
    while (!reader.done()) {
        const std::uint64_t key = reader.varint();
        on_field(std::uint32_t(key >> 3), std::uint32_t(key & 7), reader);
    }
}

}  // namespace detail

// `bytes` is the model file's content (or SentencePieceProcessor::serialized_model_proto()); `origin` names
// it in errors.
inline SpmModel parse_spm_model(std::string_view bytes, const std::string& origin) {
    SpmModel model;
    auto expect = [&](detail::ProtoReader& r, std::uint32_t wire, std::uint32_t want, const char* field) {
        if (wire != want) r.fail(std::string(field) + " has wire type " + std::to_string(wire));
    };
    detail::for_each_field(
        bytes, origin, [&](std::uint32_t field, std::uint32_t wire, detail::ProtoReader& r) {
            if (field == 1) {  // pieces
                expect(r, wire, 2, "pieces");
                SpmPiece piece;
                detail::for_each_field(
                    r.bytes(), origin, [&](std::uint32_t f, std::uint32_t w, detail::ProtoReader& p) {
                        if (f == 1 && w == 2)
                            piece.piece = std::string(p.bytes());
                        else if (f == 2 && w == 5)
                            piece.score = p.fixed32_float();
                        else if (f == 3 && w == 0) {
                            const std::uint64_t type = p.varint();
                            if (type < 1 || type > 6)
                                p.fail("piece type " + std::to_string(type) + " is unknown");
                            piece.type = static_cast<PieceType>(type);
                        } else
                            p.skip(w);
                    });
                model.pieces.push_back(std::move(piece));
            } else if (field == 2) {  // trainer_spec
                expect(r, wire, 2, "trainer_spec");
                detail::for_each_field(r.bytes(), origin,
                                       [&](std::uint32_t f, std::uint32_t w, detail::ProtoReader& t) {
                                           if (f == 3 && w == 0)
                                               model.unigram = t.varint() == 1;
                                           else if (f == 35 && w == 0)
                                               model.byte_fallback = t.varint() != 0;
                                           else if (f == 24 && w == 0)
                                               model.treat_whitespace_as_suffix = t.varint() != 0;
                                           else
                                               t.skip(w);
                                       });
            } else if (field == 3) {  // normalizer_spec
                expect(r, wire, 2, "normalizer_spec");
                detail::for_each_field(r.bytes(), origin,
                                       [&](std::uint32_t f, std::uint32_t w, detail::ProtoReader& n) {
                                           if (f == 1 && w == 2)
                                               model.normalizer_name = std::string(n.bytes());
                                           else if (f == 2 && w == 2)
                                               model.precompiled_charsmap = std::string(n.bytes());
                                           else if (f == 3 && w == 0)
                                               model.add_dummy_prefix = n.varint() != 0;
                                           else if (f == 4 && w == 0)
                                               model.remove_extra_whitespaces = n.varint() != 0;
                                           else if (f == 5 && w == 0)
                                               model.escape_whitespaces = n.varint() != 0;
                                           else
                                               n.skip(w);
                                       });
            } else {
                r.skip(wire);
            }
        });
    if (model.pieces.empty()) throw Error(origin + ": not a SentencePiece model: it has no pieces");
    return model;
}

}  // namespace lumi::tokenizer
