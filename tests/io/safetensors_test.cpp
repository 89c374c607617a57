#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <lumi/io/safetensors.hpp>

namespace {

namespace fs = std::filesystem;
using lumi::io::load_safetensors;
using lumi::io::save_safetensors;

// The message of `f`, which must throw lumi::Error.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const lumi::Error& error) {
        return error.what();
    }
    ADD_FAILURE() << "expected a lumi::Error";
    return {};
}

std::string le64(std::uint64_t n) {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return bytes;
}

// A file laid out by hand: length, header padded with spaces to 8 bytes, data.
std::string safetensors_bytes(std::string header, const std::string& data) {
    header.append((8 - header.size() % 8) % 8, ' ');
    return le64(header.size()) + header + data;
}

class Safetensors : public ::testing::Test {
  protected:
    void SetUp() override {
        dir = fs::temp_directory_path() /
              ("lumi_safetensors_test_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }

    fs::path write(const std::string& name, const std::string& bytes) {
        std::ofstream(dir / name, std::ios::binary) << bytes;
        return dir / name;
    }

    std::string read(const fs::path& file) {
        std::ifstream in(file, std::ios::binary);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

    // The error loading a file of these bytes; it must name the file.
    std::string rejection(const std::string& bytes) {
        const fs::path file = write("bad.safetensors", bytes);
        const std::string message = error_of([&] { load_safetensors(file); });
        EXPECT_NE(message.find(file.string()), std::string::npos) << message;
        return message;
    }

    fs::path dir;
};

TEST_F(Safetensors, RoundTripKeepsEveryDtypeShapeAndValue) {
    auto gen = lumi::make_generator(7);
    const lumi::io::NamedTensors tensors{
        {"f32", torch::randn({3, 5}, gen)},
        {"f64", torch::randn({4}, gen, torch::kFloat64)},
        {"f16", torch::randn({2, 3}, gen).to(torch::kFloat16)},
        {"bf16", torch::randn({7}, gen).to(torch::kBFloat16)},
        {"i64", torch::randint(-1'000'000'000'000, 1'000'000'000'000, {6}, gen, torch::kInt64)},
        {"i32", torch::randint(-100000, 100000, {2, 2}, gen, torch::kInt32)},
        {"i16", torch::randint(-30000, 30000, {5}, gen, torch::kInt16)},
        {"i8", torch::randint(-128, 128, {9}, gen, torch::kInt8)},
        {"u8", torch::randint(0, 256, {3, 1}, gen, torch::kUInt8)},
        {"bool", torch::randint(0, 2, {11}, gen).to(torch::kBool)},
        {"scalar", torch::tensor(3.25)},
        {"empty", torch::empty({0, 3})},
        {"transposed", torch::arange(12, torch::kFloat32).view({3, 4}).t()},
    };
    const fs::path file = dir / "all.safetensors";
    save_safetensors(file, tensors);
    const auto loaded = load_safetensors(file);
    ASSERT_EQ(loaded.tensors.size(), tensors.size());
    for (const auto& [name, expected] : tensors) {
        const torch::Tensor* found = loaded.find(name);
        ASSERT_NE(found, nullptr) << name;
        EXPECT_EQ(found->scalar_type(), expected.scalar_type()) << name;
        EXPECT_EQ(found->sizes(), expected.sizes()) << name;
        EXPECT_TRUE(torch::equal(*found, expected)) << name;
    }
}

TEST_F(Safetensors, MetadataIsPreserved) {
    const fs::path file = dir / "meta.safetensors";
    save_safetensors(file, {{"x", torch::ones({2})}},
                     {{"format", "pt"}, {"step", "1200"}, {"note", "é \"q\""}});
    const auto loaded = load_safetensors(file);
    EXPECT_EQ(loaded.metadata,
              (std::map<std::string, std::string>{{"format", "pt"}, {"step", "1200"}, {"note", "é \"q\""}}));
}

TEST_F(Safetensors, ReadsAFileWrittenByHandFromTheSpecification) {
    // a = [1.0, -2.5] F32, b = [[3, -1]] I16, c = 1.5 BF16 scalar.
    const std::string data{
        "\x00\x00\x80\x3f\x00\x00\x20\xc0"
        "\x03\x00\xff\xff"
        "\xc0\x3f",
        14};
    const std::string header =
        R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("b":{"dtype":"I16","shape":[1,2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[],)"
        R"("data_offsets":[12,14]}})";
    const auto loaded = load_safetensors(write("hand.safetensors", safetensors_bytes(header, data)));
    EXPECT_EQ(loaded.metadata.at("format"), "pt");
    ASSERT_EQ(loaded.tensors.size(), 3u);
    EXPECT_EQ(loaded.tensors[0].first, "a");
    EXPECT_TRUE(torch::equal(*loaded.find("a"), torch::tensor({1.0f, -2.5f})));
    EXPECT_TRUE(torch::equal(*loaded.find("b"), torch::tensor({3, -1}, torch::kInt16).view({1, 2})));
    EXPECT_EQ(loaded.find("c")->dim(), 0);
    EXPECT_EQ(loaded.find("c")->scalar_type(), torch::kBFloat16);
    EXPECT_EQ(loaded.find("c")->item<float>(), 1.5f);
}

TEST_F(Safetensors, WritesTheReferenceImplementationsBytes) {
    // What Python's `safetensors.torch.save({"b": int16, "a": float32}, {"format": "pt"})` writes: compact
    // JSON, __metadata__ first, data ordered by dtype (largest first) then name, header padded to 8 bytes.
    const fs::path file = dir / "ours.safetensors";
    save_safetensors(file,
                     {{"b", torch::tensor({3, -1}, torch::kInt16)}, {"a", torch::tensor({1.0f, -2.5f})}},
                     {{"format", "pt"}});
    const std::string header =
        R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("b":{"dtype":"I16","shape":[2],"data_offsets":[8,12]}})";
    EXPECT_EQ(read(file),
              safetensors_bytes(header, std::string("\x00\x00\x80\x3f\x00\x00\x20\xc0\x03\x00\xff\xff", 12)));
}

TEST_F(Safetensors, EveryTensorIsAlignedToItsElementSize) {
    const fs::path file = dir / "aligned.safetensors";
    save_safetensors(file, {{"flag", torch::ones({3}, torch::kBool)},
                            {"half", torch::ones({5}, torch::kFloat16)},
                            {"long", torch::ones({1}, torch::kInt64)},
                            {"float", torch::ones({3})}});
    const auto header = lumi::io::read_safetensors_header(file);
    EXPECT_EQ(header.data_start % 8, 0u);
    for (const auto& t : header.tensors) EXPECT_EQ(t.begin % c10::elementSize(t.dtype), 0u) << t.name;
}

TEST_F(Safetensors, SavingReplacesTheFileAndLeavesNoTemporaryFile) {
    const fs::path file = dir / "x.safetensors";
    save_safetensors(file, {{"x", torch::zeros({4})}});
    save_safetensors(file, {{"y", torch::ones({2})}});
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
    const auto loaded = load_safetensors(file);
    ASSERT_EQ(loaded.tensors.size(), 1u);
    EXPECT_EQ(loaded.tensors[0].first, "y");
}

TEST_F(Safetensors, RefusesDuplicateNamesAndUnstorableDtypes) {
    EXPECT_NE(error_of([&] {
                  save_safetensors(dir / "d.safetensors", {{"x", torch::ones({1})}, {"x", torch::ones({1})}});
              }).find("'x' given twice"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  save_safetensors(dir / "c.safetensors", {{"x", torch::ones({1}, torch::kComplexFloat)}});
              }).find("cannot be stored"),
              std::string::npos);
}

TEST_F(Safetensors, RejectsAFileShorterThanTheHeaderLength) {
    EXPECT_NE(rejection("\x01\x02\x03").find("fewer than the 8"), std::string::npos);
}

TEST_F(Safetensors, RejectsAHeaderLengthBeyondTheFile) {
    EXPECT_NE(rejection(le64(1000) + "{}      ").find("header length 1000 exceeds"), std::string::npos);
}

TEST_F(Safetensors, RejectsInvalidJson) {
    EXPECT_NE(rejection(safetensors_bytes(R"({"a": {"dtype": "F32",)", "")).find("invalid JSON"),
              std::string::npos);
}

TEST_F(Safetensors, RejectsAnUnknownDtype) {
    const auto message =
        rejection(safetensors_bytes(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", "abcd"));
    EXPECT_NE(message.find("tensor 'a': unsupported dtype 'F99'"), std::string::npos) << message;
}

TEST_F(Safetensors, RejectsATruncatedPayload) {
    const auto message =
        rejection(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcdef"));
    EXPECT_NE(message.find("truncated: the tensors need 8 bytes of data, the file holds 6"),
              std::string::npos)
        << message;
}

TEST_F(Safetensors, RejectsOverlappingOffsets) {
    const auto message = rejection(safetensors_bytes(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        std::string(12, 'x')));
    EXPECT_NE(message.find("tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' ([0, 8])"),
              std::string::npos)
        << message;
}

TEST_F(Safetensors, RejectsGapsAndTrailingBytes) {
    const auto gap = rejection(safetensors_bytes(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        std::string(12, 'x')));
    EXPECT_NE(gap.find("bytes 4..8 of the data buffer belong to no tensor"), std::string::npos) << gap;
    const auto trailing = rejection(
        safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(6, 'x')));
    EXPECT_NE(trailing.find("2 bytes after the last tensor"), std::string::npos) << trailing;
}

TEST_F(Safetensors, RejectsAShapeThatDisagreesWithTheOffsets) {
    const auto message = rejection(
        safetensors_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')));
    EXPECT_NE(message.find("shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] span 8"),
              std::string::npos)
        << message;
    const auto huge = rejection(
        safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                          std::string(8, 'x')));
    EXPECT_NE(huge.find("more than 2^64 bytes"), std::string::npos) << huge;
}

TEST_F(Safetensors, RejectsDuplicateNames) {
    const auto message = rejection(safetensors_bytes(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
        std::string(8, 'x')));
    EXPECT_NE(message.find("tensor name 'a' appears twice"), std::string::npos) << message;
}

TEST_F(Safetensors, NamesAMissingFile) {
    const auto message = error_of([&] { load_safetensors(dir / "absent.safetensors"); });
    EXPECT_NE(message.find("absent.safetensors"), std::string::npos) << message;
}

}  // namespace
