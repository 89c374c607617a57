// Bad settings files and overrides: each is an error naming the file (and line or field) and what was
// expected.
#include <lumi/config/config.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace lumi::config;

struct Optimizer {
    double lr = 3e-4;
    float beta = 0.9f;
};

struct Settings {
    Optimizer optimizer;
    std::uint32_t steps = 10;
    std::int64_t offset = 0;
    std::string name = "run";
    std::vector<Optimizer> groups;
};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const lumi::Error& e) {
        return e.what();
    }
    return "";
}

class BadInputConfig : public ::testing::Test {
  protected:
    fs::path dir;
    void SetUp() override {
        dir = fs::temp_directory_path() / ("lumi_config_bad_input_" + std::to_string(::getpid()) + "_" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }

    fs::path write(const std::string& name, const std::string& text) {
        std::ofstream(dir / name, std::ios::binary) << text;
        return dir / name;
    }
    std::string load_error(const std::string& text, const std::vector<std::string>& sets = {}) {
        const fs::path file = write("settings.json", text);
        return error_of([&] { load<Settings>(file, sets); });
    }
};

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

TEST_F(BadInputConfig, AnOverflowingNumberIsNotInfinity) {
    const std::string message = load_error(R"({"optimizer": {"lr": 1e999}})");
    EXPECT_CONTAINS(message, "settings.json: optimizer.lr: expected a finite number (double)");
    EXPECT_CONTAINS(error_of([] { load<Settings>(std::nullopt, {"optimizer.lr=1e999"}); }),
                    "--set optimizer.lr: expected a finite number");
    EXPECT_CONTAINS(error_of([] { load<Settings>(std::nullopt, {"optimizer.lr=-1e999"}); }), "-infinity");
}

TEST_F(BadInputConfig, NanAndInfinitySpelledOutAreNotNumbers) {
    EXPECT_CONTAINS(error_of([] { load<Settings>(std::nullopt, {"optimizer.lr=NaN"}); }),
                    "--set optimizer.lr: expected a number (double), found a string \"NaN\"");
    EXPECT_CONTAINS(error_of([] { load<Settings>(std::nullopt, {"optimizer.beta=inf"}); }),
                    "expected a number (float)");
    EXPECT_CONTAINS(load_error(R"({"optimizer": {"lr": NaN}})"), "settings.json:1:");
}

TEST_F(BadInputConfig, ADuplicateKeyNamesBothLines) {
    const std::string message = load_error("{\n  \"steps\": 3,\n  \"name\": \"a\",\n  \"steps\": 4\n}\n");
    EXPECT_CONTAINS(message, "settings.json:4: duplicate key \"steps\" (first at line 2)");
}

TEST_F(BadInputConfig, ADuplicateKeyInANestedObjectOrArrayElementIsFound) {
    EXPECT_CONTAINS(load_error("{\"optimizer\": {\"lr\": 1,\n \"lr\": 2}}"),
                    "settings.json:2: duplicate key \"lr\" (first at line 1)");
    EXPECT_CONTAINS(load_error("{\"groups\": [{\"lr\": 1}, {\"lr\": 2,\n\n \"lr\": 3}]}"),
                    "settings.json:3: duplicate key \"lr\" (first at line 1)");
    // The same key in sibling objects, or as a string value, is no duplicate.
    EXPECT_EQ(load_error("{\"groups\": [{\"lr\": 1}, {\"lr\": 2}], \"name\": \"lr\"}"), "");
}

TEST_F(BadInputConfig, ADuplicateKeyWithEscapesIsTheSameKey) {
    EXPECT_CONTAINS(load_error("{\"steps\": 1, \"st\\u0065ps\": 2}"), "duplicate key \"st\\u0065ps\"");
}

TEST_F(BadInputConfig, AnEmptyFileIsInvalidJsonNamingIt) {
    EXPECT_CONTAINS(load_error(""), "settings.json:1:1: invalid JSON");
}

TEST_F(BadInputConfig, ATruncatedFileNamesTheLineWhereItStops) {
    EXPECT_CONTAINS(load_error("{\n  \"optimizer\": {\n    \"lr\": 0.1"), "settings.json:3:");
}

TEST_F(BadInputConfig, ADirectoryIsNotASettingsFile) {
    EXPECT_CONTAINS(error_of([&] { load<Settings>(dir); }),
                    dir.string() + ": is a directory, expected a file");
}

TEST_F(BadInputConfig, AMissingFileIsNamed) {
    EXPECT_CONTAINS(error_of([&] { load<Settings>(dir / "missing.json"); }),
                    "missing.json: cannot open the file");
}

TEST_F(BadInputConfig, AHugeFileIsRefusedBeforeItIsRead) {
    const fs::path file = dir / "huge.json";
    std::ofstream(file).close();
    fs::resize_file(file, max_json_bytes + 1);  // sparse: no disk used
    EXPECT_CONTAINS(error_of([&] { read_json_file(file); }),
                    "huge.json: 1073741825 bytes or more, larger than the limit");
}

TEST_F(BadInputConfig, WrongTypesNameTheFieldAndWhatWasFound) {
    EXPECT_CONTAINS(load_error(R"({"steps": "10"})"),
                    "settings.json: steps: expected an integer (uint32), found a string");
    EXPECT_CONTAINS(load_error(R"({"steps": 1.5})"),
                    "steps: expected an integer (uint32), found a number 1.5");
    EXPECT_CONTAINS(load_error(R"({"steps": -1})"),
                    "steps: expected a non-negative integer (uint32), found -1");
    EXPECT_CONTAINS(load_error(R"({"offset": 9223372036854775808})"),
                    "offset: 9223372036854775808 is out of range");
    EXPECT_CONTAINS(load_error(R"({"optimizer": 3})"), "optimizer: expected an object, found an integer 3");
    EXPECT_CONTAINS(load_error(R"({"name": null})"), "name: expected a string (string), found null");
    EXPECT_CONTAINS(load_error(R"([1, 2])"), "settings.json: expected an object, found an array");
}

TEST_F(BadInputConfig, NonFiniteNumbersAreWrittenAsNullSoEveryFileIsJson) {
    const json::object metrics{{"loss", std::nan("")},
                               {"ppl", std::numeric_limits<double>::infinity()},
                               {"low", -std::numeric_limits<double>::infinity()},
                               {"ok", 0.5}};
    const fs::path file = dir / "metrics.json";
    write_json_file(metrics, file);
    const json::value back = read_json_file(file);  // valid JSON
    EXPECT_TRUE(back.at("loss").is_null());
    EXPECT_TRUE(back.at("ppl").is_null());
    EXPECT_TRUE(back.at("low").is_null());
    EXPECT_EQ(back.at("ok").as_double(), 0.5);
    EXPECT_EQ(format_json_line(metrics), R"({"loss": null, "ppl": null, "low": null, "ok": 0.5})");
    EXPECT_EQ(json::parse(format_json_line(metrics)).at("ppl"), nullptr);
}

TEST_F(BadInputConfig, APeekedKeyComesFromTheLastSetThenTheFileThenTheFallback) {
    const fs::path file = write("settings.json", R"({"recipe": "muon_wsd", "steps": 3})");
    const Peeked from_file = peek_string(file, {"steps=4"}, "recipe", "adamw");
    EXPECT_EQ(from_file.value, "muon_wsd");
    EXPECT_EQ(from_file.origin, file.string());
    const Peeked from_set = peek_string(file, {"recipe=a", "recipe=b"}, "recipe", "adamw");
    EXPECT_EQ(from_set.value, "b");
    EXPECT_EQ(from_set.origin, "--set recipe");
    const Peeked fallback = peek_string(std::nullopt, {"optimizer.recipe=x"}, "recipe", "adamw");
    EXPECT_EQ(fallback.value, "adamw");
    EXPECT_EQ(fallback.origin, "");
    EXPECT_EQ(error_of([&] { peek_string(write("n.json", R"({"recipe": 3})"), {}, "recipe", ""); }),
              (dir / "n.json").string() + ": recipe: expected a string, found an integer 3");
    EXPECT_EQ(error_of([&] { peek_string(std::nullopt, {"recipe=[1]"}, "recipe", ""); }),
              "--set recipe: expected a string, found an array");
}

TEST_F(BadInputConfig, SavedSettingsReadBackEqual) {
    Settings s;
    s.optimizer.lr = 1e-300;
    s.optimizer.beta = std::numeric_limits<float>::max();
    s.offset = std::numeric_limits<std::int64_t>::min();
    s.name = "quote \" and \\ and \n newline";
    s.groups = {{.lr = 0.1, .beta = 0.2f}};
    save(s, dir / "saved.json");
    const auto back = load<Settings>(dir / "saved.json");
    EXPECT_EQ(back.optimizer.lr, s.optimizer.lr);
    EXPECT_EQ(back.optimizer.beta, s.optimizer.beta);
    EXPECT_EQ(back.offset, s.offset);
    EXPECT_EQ(back.name, s.name);
    EXPECT_EQ(back.groups.size(), 1u);
}

}  // namespace
