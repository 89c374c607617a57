#include <lumi/config/config.hpp>
#include <lumi/config/reference.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace lumi::config;

enum class Schedule { constant, cosine, linear };
enum class Sparse { low = 1, high = 40 };

struct Optimizer {
    double lr = 3e-4;
    float beta1 = 0.9f;
    Schedule schedule = Schedule::cosine;

    void validate() const {
        if (!(lr > 0)) throw FieldError("lr", "must be positive, got " + std::to_string(lr));
    }
    bool operator==(const Optimizer&) const = default;
};

struct Train {
    Optimizer optimizer{.lr = 1e-3};
    std::uint32_t steps = 1000;
    std::uint8_t accumulation = 1;
    std::int16_t seed = -1;
    bool operator==(const Train&) const = default;
};

struct Settings {
    Train train;
    std::string name = "run";
    fs::path data = "data/pretrain";
    bool operator==(const Settings&) const = default;
};

struct Everything {
    bool flag = false;
    std::int8_t i8 = 0;
    std::uint16_t u16 = 0;
    int i = 0;
    long long i64 = 0;
    std::uint64_t u64 = 0;
    float f = 0;
    double d = 0;
    std::string text;
    fs::path file;
    Schedule schedule = Schedule::constant;
    Sparse sparse = Sparse::low;
    std::optional<int> maybe;
    std::optional<int> maybe_not = 7;
    std::optional<Optimizer> optional_optimizer;
    std::vector<int> numbers;
    std::vector<bool> bits;
    std::vector<Optimizer> optimizers;
    std::map<std::string, double> weights;
    std::array<float, 3> triple{};
    Train nested;
    bool operator==(const Everything&) const = default;
};

Everything all_set() {
    Everything e;
    e.flag = true;
    e.i8 = -128;
    e.u16 = 65535;
    e.i = -42;
    e.i64 = std::numeric_limits<long long>::min();
    e.u64 = std::numeric_limits<std::uint64_t>::max();
    e.f = 0.1f;
    e.d = 1.0 / 3.0;
    e.text = "quote \" and\nnewline";
    e.file = "/tmp/some dir/x.bin";
    e.schedule = Schedule::linear;
    e.sparse = Sparse::high;
    e.maybe = 5;
    e.maybe_not = std::nullopt;
    e.optional_optimizer = Optimizer{.lr = 2.0, .beta1 = 0.5f, .schedule = Schedule::constant};
    e.numbers = {1, 2, 3};
    e.bits = {true, false};
    e.optimizers = {Optimizer{}, Optimizer{.lr = 0.5}};
    e.weights = {{"a", 1.5}, {"b", -2}};
    e.triple = {1, 2.5f, -3};
    e.nested.steps = 7;
    e.nested.optimizer.schedule = Schedule::linear;
    return e;
}

// The error message of `f`, which must throw lumi::Error.
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

Settings settings_from(std::string_view text) {
    return from_json<Settings>(json::parse(text), "config.json");
}

class ConfigFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        dir = fs::temp_directory_path() /
              ("lumi_config_test_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
        fs::remove_all(dir);
        fs::create_directories(dir);
    }
    void TearDown() override { fs::remove_all(dir); }

    fs::path write(const std::string& name, const std::string& text) {
        std::ofstream(dir / name) << text;
        return dir / name;
    }

    fs::path dir;
};

TEST(FieldNames, AreTheDeclaredNamesInOrderAtCompileTime) {
    static_assert(field_names<Optimizer>() == std::array<std::string_view, 3>{"lr", "beta1", "schedule"});
    static_assert(field_names<Settings>()[2] == "data");
    static_assert(field_count<Everything>() == 21);
    EXPECT_EQ(field_names<Everything>()[20], "nested");
    EXPECT_EQ(field_names<Everything>()[14], "optional_optimizer");
}

TEST(EnumNames, MapValuesToNamesAndBack) {
    static_assert(enum_name(Schedule::cosine) == "cosine");
    static_assert(enum_entries<Sparse>().size() == 2);
    EXPECT_EQ(enum_name(Sparse::high), "high");
    EXPECT_EQ(enum_name(static_cast<Sparse>(2)), "");
    EXPECT_EQ(enum_from_name<Schedule>("linear"), Schedule::linear);
    EXPECT_EQ(enum_from_name<Schedule>("Linear"), std::nullopt);
}

TEST(Json, RoundTripsEverySupportedType) {
    const Everything original = all_set();
    const json::value written = to_json(original);
    EXPECT_EQ(written.at("schedule"), "linear");
    EXPECT_EQ(written.at("file"), "/tmp/some dir/x.bin");
    EXPECT_TRUE(written.at("maybe_not").is_null());
    EXPECT_EQ(from_json<Everything>(written, "test"), original);
}

TEST(Json, MissingKeysKeepTheDefaultMemberValues) {
    const Settings settings = settings_from(R"({"train": {"steps": 5}})");
    EXPECT_EQ(settings.train.steps, 5u);
    EXPECT_EQ(settings.train.optimizer.lr, 1e-3);  // the enclosing struct's default, not Optimizer's own
    EXPECT_EQ(settings.train.optimizer.beta1, 0.9f);
    EXPECT_EQ(settings.name, "run");
    EXPECT_EQ(settings_from("{}"), Settings{});
}

struct WithSection {
    std::string kind = "a";
    json::value section = json::object({{"x", 1}, {"y", 2}});
};

TEST(Json, ASectionMergesIntoItsDefaultAndTakesAnyKey) {
    const auto merged = load<WithSection>(std::nullopt, {"section.y=3", "section.z.w=true"});
    EXPECT_EQ(json::serialize(merged.section), R"({"x":1,"y":3,"z":{"w":true}})");
    EXPECT_TRUE(load<WithSection>(std::nullopt, {"section=null"}).section.is_null());
    EXPECT_EQ(to_json(merged).at("section"), merged.section);
    const auto fields = describe<WithSection>();
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[1].type, "JSON");
    EXPECT_EQ(fields[1].default_value, R"({"x": 1, "y": 2})");
}

TEST(Json, NullOrAbsentOptionalIsEmpty) {
    const auto e = from_json<Everything>(json::parse(R"({"maybe_not": null})"), "test");
    EXPECT_EQ(e.maybe, std::nullopt);
    EXPECT_EQ(e.maybe_not, std::nullopt);
    EXPECT_EQ(from_json<Everything>(json::parse("{}"), "test").maybe_not, 7);
}

TEST(Json, WholeNumbersWrittenAsDoublesReadAsIntegers) {
    EXPECT_EQ(settings_from(R"({"train": {"steps": 1e6}})").train.steps, 1000000u);
}

TEST(Json, UnknownKeySuggestsTheClosestValidKey) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"optimizer": {"lrr": 1}}})"); }),
              "config.json: train.optimizer.lrr: unknown key, did you mean 'lr'?");
    EXPECT_EQ(error_of([] { settings_from(R"({"trian": {}})"); }),
              "config.json: trian: unknown key, did you mean 'train'?");
}

TEST(Json, UnknownKeyFarFromAnyListsTheValidKeys) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"warmup": 1}})"); }),
              "config.json: train.warmup: unknown key; valid keys are 'optimizer', 'steps', 'accumulation', "
              "'seed'");
}

TEST(Json, WrongTypeNamesThePathTheExpectedTypeAndWhatWasFound) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"optimizer": {"lr": "abc"}}})"); }),
              R"(config.json: train.optimizer.lr: expected a number (double), found a string "abc")");
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"steps": true}})"); }),
              "config.json: train.steps: expected an integer (uint32), found a boolean true");
    EXPECT_EQ(error_of([] { settings_from(R"({"train": []})"); }),
              "config.json: train: expected an object, found an array");
    EXPECT_EQ(error_of([] { settings_from(R"({"name": null})"); }),
              "config.json: name: expected a string (string), found null");
    EXPECT_EQ(error_of([] { from_json<Everything>(json::parse(R"({"numbers": [1, "2"]})"), "e.json"); }),
              R"(e.json: numbers[1]: expected an integer (int32), found a string "2")");
    EXPECT_EQ(error_of([] { from_json<Everything>(json::parse(R"({"triple": [1, 2]})"), "e.json"); }),
              "e.json: triple: expected an array of 3 elements, found 2");
}

TEST(Json, IntegerOutOfRangeForTheFieldTypeIsAnError) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"accumulation": 256}})"); }),
              "config.json: train.accumulation: 256 is out of range for uint8 (0 to 255)");
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"seed": -40000}})"); }),
              "config.json: train.seed: -40000 is out of range for int16 (-32768 to 32767)");
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"steps": 1e10}})"); }),
              "config.json: train.steps: 1e10 is out of range for uint32 (0 to 4294967295)");
}

TEST(Json, NegativeIntoUnsignedIsAnError) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"steps": -1}})"); }),
              "config.json: train.steps: expected a non-negative integer (uint32), found -1");
}

TEST(Json, NonIntegralNumberIntoIntegerIsAnError) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"steps": 2.5}})"); }),
              "config.json: train.steps: expected an integer (uint32), found a number 2.5");
}

TEST(Json, UnknownEnumNameListsTheValidNames) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"optimizer": {"schedule": "cosin"}}})"); }),
              "config.json: train.optimizer.schedule: unknown value 'cosin', expected one of 'constant', "
              "'cosine', 'linear'");
    EXPECT_EQ(
        error_of([] { settings_from(R"({"train": {"optimizer": {"schedule": 1}}})"); }),
        "config.json: train.optimizer.schedule: expected one of 'constant', 'cosine', 'linear', found an "
        "integer 1");
}

TEST(Json, ValidateHookErrorIsPrefixedWithOriginAndPath) {
    EXPECT_EQ(error_of([] { settings_from(R"({"train": {"optimizer": {"lr": -1}}})"); }),
              "config.json: train.optimizer.lr: must be positive, got -1.000000");
}

struct BadDefault {
    double lr = 0;
    void validate() const {
        if (!(lr > 0)) throw FieldError("lr", "must be positive");
    }
};

struct Outer {
    BadDefault inner;
};

TEST(Json, ValidateHookRunsOnDefaultsOfAbsentNestedObjects) {
    EXPECT_EQ(error_of([] { from_json<Outer>(json::parse("{}"), "o.json"); }),
              "o.json: inner.lr: must be positive");
}

TEST(Override, SetsNestedKeysCreatingIntermediateObjects) {
    json::value root = json::parse(R"({"train": {"steps": 1}})");
    apply_override(root, "train.optimizer.lr=0.5");
    apply_override(root, "name=cosine run");
    apply_override(root, "list=[1, 2]");
    apply_override(root, "quoted=\"3\"");
    apply_override(root, "flag=true");
    EXPECT_EQ(root, json::parse(R"({"train": {"steps": 1, "optimizer": {"lr": 0.5}}, "name": "cosine run",
                                   "list": [1, 2], "quoted": "3", "flag": true})"));
    EXPECT_EQ(error_of([&] { apply_override(root, "train.steps.x=1"); }),
              "--set train.steps.x: cannot set a key inside 'train.steps', which is an integer 1");
    EXPECT_EQ(error_of([&] { apply_override(root, "novalue"); }),
              "--set novalue: expected key=value, e.g. optimizer.lr=3e-4");
    EXPECT_EQ(error_of([&] { apply_override(root, "a..b=1"); }), "--set a..b: empty key in the dotted path");
}

// Fuzz finding: a value with ill-formed UTF-8 loaded, then the settings written back were not JSON.
TEST(Override, RefusesIllFormedUtf8InTheKeyOrTheValue) {
    json::value root = json::object();
    EXPECT_EQ(error_of([&] { apply_override(root, "sft.preset=fu\x98\x9a"); }),
              "--set sft.preset: not valid UTF-8: an ill-formed byte sequence at byte 13 of the assignment");
    EXPECT_EQ(error_of([&] { apply_override(root, "a\xC0\xAF=1"); }),
              "--set: not valid UTF-8: an ill-formed byte sequence at byte 1 of the assignment");
    apply_override(root, "name=h\xC3\xA9llo");
    EXPECT_EQ(root, json::parse("{\"name\": \"h\xC3\xA9llo\"}"));
}

TEST_F(ConfigFiles, LoadAppliesTheFileThenEachSetInOrder) {
    const fs::path file = write("config.json", R"({"name": "file", "train": {"steps": 10, "seed": 3}})");
    const auto settings = load<Settings>(
        file, {"train.steps=20", "train.steps=30", "name=from-set", "train.optimizer.schedule=linear"});
    EXPECT_EQ(settings.train.steps, 30u);
    EXPECT_EQ(settings.train.seed, 3);
    EXPECT_EQ(settings.name, "from-set");
    EXPECT_EQ(settings.train.optimizer.schedule, Schedule::linear);
    EXPECT_EQ(load<Settings>(std::nullopt, {"train.seed=9"}).train.seed, 9);
}

TEST_F(ConfigFiles, SetWithAnUnknownPathSuggestsTheClosestKey) {
    EXPECT_EQ(error_of([] { load<Settings>(std::nullopt, {"train.optimizer.lrr=1"}); }),
              "--set train.optimizer.lrr: unknown key, did you mean 'lr'?");
    EXPECT_EQ(error_of([] { load<Settings>(std::nullopt, {"train.optimzer.lr=1"}); }),
              "--set train.optimzer.lr: train.optimzer: unknown key, did you mean 'optimizer'?");
    EXPECT_EQ(error_of([] { load<Settings>(std::nullopt, {"name.first=1"}); }),
              "--set name.first: 'name' is of type string and has no keys");
}

TEST_F(ConfigFiles, BadValueFromASetNamesTheSetAsOrigin) {
    const fs::path file = write("config.json", R"({"train": {"steps": 10}})");
    EXPECT_EQ(error_of([&] { load<Settings>(file, {"train.steps=-5"}); }),
              "--set train.steps: expected a non-negative integer (uint32), found -5");
    EXPECT_EQ(error_of([&] { load<Settings>(file, {"train.optimizer.lr=0"}); }),
              "--set train.optimizer.lr: must be positive, got 0.000000");
    EXPECT_EQ(error_of([&] { load<Settings>(file, {R"(train={"steps": "x"})"}); }),
              R"(--set train: train.steps: expected an integer (uint32), found a string "x")");
}

TEST_F(ConfigFiles, BadValueInTheFileNamesTheFileEvenWithSets) {
    const fs::path file = write("config.json", R"({"train": {"steps": "many"}})");
    EXPECT_EQ(error_of([&] { load<Settings>(file, {"name=x"}); }),
              file.string() + R"(: train.steps: expected an integer (uint32), found a string "many")");
}

TEST_F(ConfigFiles, JsonSyntaxErrorNamesTheFileLineAndColumn) {
    const fs::path file = write("broken.json", "{\n  \"name\": \"x\",\n  \"train\": {steps: 1}\n}\n");
    EXPECT_EQ(error_of([&] { load<Settings>(file, {}); }),
              file.string() + ":3:13: invalid JSON: syntax error");
    const fs::path truncated = write("truncated.json", "{\"name\": ");
    EXPECT_EQ(error_of([&] { load<Settings>(truncated, {}); }),
              truncated.string() + ":1:10: invalid JSON: incomplete JSON");
}

TEST_F(ConfigFiles, UnreadableFileIsNamed) {
    EXPECT_EQ(error_of([&] { load<Settings>(dir / "missing.json", {}); }),
              (dir / "missing.json").string() + ": cannot open the file: No such file or directory");
    EXPECT_EQ(error_of([&] { load<Settings>(dir, {}); }), dir.string() + ": is a directory, expected a file");
}

TEST_F(ConfigFiles, SaveThenLoadGivesAnEqualStruct) {
    const Everything original = all_set();
    save(original, dir / "run" / "everything.json");
    EXPECT_EQ(load<Everything>(dir / "run" / "everything.json", {}), original);
}

TEST_F(ConfigFiles, SaveWritesTwoSpaceIndentedKeysInDeclarationOrder) {
    save(Settings{}, dir / "settings.json");
    std::ifstream in(dir / "settings.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, R"({
  "train": {
    "optimizer": {
      "lr": 0.001,
      "beta1": 0.9,
      "schedule": "cosine"
    },
    "steps": 1000,
    "accumulation": 1,
    "seed": -1
  },
  "name": "run",
  "data": "data/pretrain"
}
)");
}

TEST_F(ConfigFiles, AtomicSaveLeavesNoTemporaryFile) {
    save(Settings{}, dir / "settings.json");
    Settings second;
    second.name = "second";
    save(second, dir / "settings.json");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path().filename());
    EXPECT_EQ(files, std::vector<fs::path>{"settings.json"});
    EXPECT_EQ(load<Settings>(dir / "settings.json", {}).name, "second");
}

TEST(Describe, ListsEveryLeafWithItsTypeAndDefault) {
    const std::vector<FieldDescription> fields = describe<Settings>();
    ASSERT_EQ(fields.size(), 8u);
    EXPECT_EQ(fields[0].path, "train.optimizer.lr");
    EXPECT_EQ(fields[0].type, "double");
    EXPECT_EQ(fields[0].default_value, "0.001");
    EXPECT_EQ(fields[2].type, "enum ('constant', 'cosine', 'linear')");
    EXPECT_EQ(fields[2].default_value, "\"cosine\"");
    EXPECT_EQ(fields[3].path, "train.steps");
    EXPECT_EQ(fields[3].type, "uint32");
    EXPECT_EQ(fields[7].type, "path");
    const auto everything = describe<Everything>();
    auto type_of = [&](std::string_view path) {
        for (const auto& field : everything)
            if (field.path == path) return field.type;
        return std::string("<missing>");
    };
    EXPECT_EQ(type_of("maybe"), "optional<int32>");
    EXPECT_EQ(type_of("optimizers"), "array<object>");
    EXPECT_EQ(type_of("weights"), "map<string, double>");
    EXPECT_EQ(type_of("triple"), "array<float, 3>");
    // A list's elements are described with an element's defaults.
    EXPECT_EQ(type_of("optimizers[].lr"), "double");
    EXPECT_EQ(type_of("optimizers[].schedule"), "enum ('constant', 'cosine', 'linear')");
    EXPECT_EQ(type_of("numbers[]"), "<missing>");
}

struct Piped {
    std::string separator = "a|b";
};

TEST(Describe, MarkdownReferenceHasOneRowPerFieldAndEscapesPipes) {
    const std::string table = markdown_reference<Settings>();
    EXPECT_EQ(table.rfind("| key | type | default |\n|---|---|---|\n", 0), 0u);
    EXPECT_NE(table.find("| `train.optimizer.lr` | double | `0.001` |\n"), std::string::npos) << table;
    EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 2 + 8);
    EXPECT_NE(markdown_reference<Piped>().find("`\"a\\|b\"`"), std::string::npos);
}

}  // namespace
