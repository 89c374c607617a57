// Tokenizer directories that must not load: a model path leading out of the directory, a config of the wrong
// shape, a model file that is not one. Each error names the file and the field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "lumi/tokenizer/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

class BadInputTokenizer : public ::testing::Test {
  protected:
    fs::path dir;
    void SetUp() override {
        dir = fs::temp_directory_path() /
              ("lumi_tokenizer_bad_input_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name()) /
              "tokenizer";
        fs::remove_all(dir.parent_path());
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir.parent_path()); }

    std::string load_error(const std::string& config) {
        std::ofstream(dir / "tokenizer_config.json") << config;
        try {
            lumi::Tokenizer::load(dir);
        } catch (const lumi::Error& e) {
            return e.what();
        }
        return "";
    }
    static std::string config_with(const std::string& model, const std::string& sha = std::string(64, '0')) {
        return R"({"lumi": {"spm_model": ")" + model + R"(", "spm_model_sha256": ")" + sha + "\"}}";
    }
};

TEST_F(BadInputTokenizer, AModelPathCannotLeaveTheDirectory) {
    std::ofstream(dir.parent_path() / "spm.model") << "outside";
    for (const std::string path : {"../spm.model", "/etc/passwd", "sub/../../spm.model", ".."})
        EXPECT_CONTAINS(
            load_error(config_with(path)),
            "tokenizer_config.json: lumi.spm_model: expected the name of a file in " + dir.string());
    EXPECT_CONTAINS(load_error(config_with("")), "lumi.spm_model: expected the name of a file");
}

TEST_F(BadInputTokenizer, AMissingDirectoryOrConfigIsNamed) {
    EXPECT_CONTAINS(load_error("{}"), "lumi.spm_model and lumi.spm_model_sha256 are missing");
    fs::remove(dir / "tokenizer_config.json");
    try {
        lumi::Tokenizer::load(dir);
        FAIL();
    } catch (const lumi::Error& e) {
        EXPECT_CONTAINS(e.what(), "tokenizer_config.json: not found");
    }
}

TEST_F(BadInputTokenizer, AConfigOfTheWrongShapeIsNamed) {
    EXPECT_CONTAINS(load_error("[1, 2]"), "lumi.spm_model and lumi.spm_model_sha256 are missing");
    EXPECT_CONTAINS(load_error(R"({"lumi": {"spm_model": 7, "spm_model_sha256": "x"}})"), "are missing");
    EXPECT_CONTAINS(load_error("{\"lumi\": "), "tokenizer_config.json:1:");
}

TEST_F(BadInputTokenizer, AModelThatIsADirectoryOrMissingIsNamed) {
    fs::create_directories(dir / "spm.model");
    EXPECT_CONTAINS(load_error(config_with("spm.model")), "spm.model: is a directory, expected a file");
    fs::remove_all(dir / "spm.model");
    EXPECT_CONTAINS(load_error(config_with("spm.model")), "spm.model: cannot open the file");
}

TEST_F(BadInputTokenizer, AReplacedModelFileIsNamedByItsHash) {
    std::ofstream(dir / "spm.model") << "not a model";
    EXPECT_CONTAINS(load_error(config_with("spm.model")), "spm.model: SHA-256 ");
    EXPECT_CONTAINS(load_error(config_with("spm.model")), "the model file was modified or replaced");
}

TEST_F(BadInputTokenizer, GarbageWithTheRightHashIsNotASentencePieceModel) {
    std::ofstream(dir / "spm.model") << "not a model";
    EXPECT_CONTAINS(load_error(config_with("spm.model", lumi::sha256_hex("not a model"))),
                    "spm.model: not a SentencePiece model");
}

}  // namespace
