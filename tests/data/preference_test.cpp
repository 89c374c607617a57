#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "lumi/config/config.hpp"
#include "lumi/data/preference.hpp"
#include "packing_test_util.hpp"
#include "test_data.hpp"
#include "test_errors.hpp"

namespace {

namespace fs = std::filesystem;
namespace data = lumi::data;
using lumi::test::byte_encode;
using lumi::test::contains;

data::PreferenceRead read(const fs::path& file, bool skip_malformed = false) {
    return data::read_preference_dataset({.path = file}, skip_malformed);
}

TEST(PreferenceReaders, HhRlhfSplitsTheSharedPromptIntoTurns) {
    const fs::path dir = lumi::test::fresh_directory("hh");
    lumi::write_file_atomic(
        dir / "hh.jsonl",
        R"({"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Name a colour\n\nAssistant: Blue.", )"
        R"("rejected": "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Name a colour\n\nAssistant: No."})"
        "\n\n"
        R"({"chosen": "\n\nHuman: Why?\n\nAssistant: Because.", "rejected": "\n\nHuman: Why?\n\nAssistant:"})"
        "\n");
    const auto result = read(dir / "hh.jsonl");
    EXPECT_EQ(result.format, data::PreferenceFormat::hh_rlhf);
    EXPECT_EQ(result.records, 2u);
    EXPECT_EQ(result.empty, 1u);  // the second has an empty rejected answer
    ASSERT_EQ(result.pairs.size(), 1u);
    const auto& pair = result.pairs[0];
    ASSERT_EQ(pair.prompt.turns.size(), 2u);
    EXPECT_EQ(pair.prompt.turns[0].prompt, "Hi there");
    EXPECT_EQ(pair.prompt.turns[0].response, "Hello!");
    EXPECT_EQ(pair.prompt.turns[1].prompt, "Name a colour");
    EXPECT_EQ(pair.prompt.turns[1].response, "");
    EXPECT_EQ(pair.chosen, "Blue.");
    EXPECT_EQ(pair.rejected, "No.");
    EXPECT_EQ(pair.prompt.origin, (dir / "hh.jsonl").string() + ":1");

    // Rendered with the chat template, the prompt ends where the answer starts.
    const auto pieces = data::prompt_pieces(pair.prompt, data::ChatTemplate::chat);
    std::string prompt;
    for (const auto& piece : pieces) prompt += piece;
    EXPECT_EQ(prompt, "Human: Hi there\n\nAssistant: Hello!\n\nHuman: Name a colour\n\nAssistant: ");
}

TEST(PreferenceReaders, PairsAndMessagesFormatsGiveTheSamePair) {
    const fs::path dir = lumi::test::fresh_directory("pairs");
    lumi::write_file_atomic(dir / "orca.json", R"([
  {"system": "Be brief.", "question": "2 + 2?", "chosen": "4", "rejected": "5"}
])");
    lumi::write_file_atomic(dir / "explicit.jsonl",
                            R"({"prompt": [{"role": "system", "content": "Be brief."}, )"
                            R"({"role": "user", "content": "2 + 2?"}], )"
                            R"("chosen": [{"role": "assistant", "content": "4"}], )"
                            R"("rejected": [{"role": "assistant", "content": "5"}]})"
                            "\n");
    lumi::write_file_atomic(
        dir / "implicit.jsonl",
        R"({"chosen": [{"role": "system", "content": "Be brief."}, )"
        R"({"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}], )"
        R"("rejected": [{"role": "system", "content": "Be brief."}, )"
        R"({"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "5"}]})"
        "\n");
    const auto orca = read(dir / "orca.json");
    EXPECT_EQ(orca.format, data::PreferenceFormat::pairs);
    for (const char* name : {"orca.json", "explicit.jsonl", "implicit.jsonl"}) {
        const auto result = read(dir / name);
        ASSERT_EQ(result.pairs.size(), 1u) << name;
        const auto& pair = result.pairs[0];
        EXPECT_EQ(pair.prompt.context, "Be brief.") << name;
        ASSERT_EQ(pair.prompt.turns.size(), 1u) << name;
        EXPECT_EQ(pair.prompt.turns[0].prompt, "2 + 2?") << name;
        EXPECT_EQ(pair.chosen, "4") << name;
        EXPECT_EQ(pair.rejected, "5") << name;
    }
    EXPECT_EQ(read(dir / "implicit.jsonl").format, data::PreferenceFormat::messages);
}

TEST(PreferenceReaders, BadRecordsNameTheFileAndLineOrAreSkippedAndCounted) {
    const fs::path dir = lumi::test::fresh_directory("bad_pairs");
    lumi::write_file_atomic(
        dir / "hh.jsonl",
        R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"})"
        "\n"
        R"({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"})"
        "\n{not json\n"
        R"({"chosen": 3, "rejected": "x"})"
        "\n");
    const std::string file = (dir / "hh.jsonl").string();
    const auto error = lumi::test::error_of([&] { read(dir / "hh.jsonl"); });
    EXPECT_TRUE(contains(error, file + ":2: 'chosen' and 'rejected' do not share the prompt")) << error;
    const auto skipped = read(dir / "hh.jsonl", /*skip_malformed=*/true);
    EXPECT_EQ(skipped.skipped, 3u);
    EXPECT_EQ(skipped.pairs.size(), 1u);

    lumi::write_file_atomic(
        dir / "roles.jsonl",
        R"({"prompt": [{"role": "narrator", "content": "x"}], "chosen": [], "rejected": []})"
        "\n");
    const auto roles = lumi::test::error_of([&] { read(dir / "roles.jsonl"); });
    EXPECT_TRUE(contains(roles, "roles.jsonl:1: prompt[0].role: unknown role 'narrator'")) << roles;

    lumi::write_file_atomic(dir / "other.jsonl", R"({"instruction": "x", "output": "y"})"
                                                 "\n");
    const auto detect = lumi::test::error_of([&] { read(dir / "other.jsonl"); });
    EXPECT_TRUE(contains(detect, "other.jsonl:1: cannot detect the preference format")) << detect;
    EXPECT_TRUE(contains(detect, "keys: instruction, output")) << detect;
}

TEST(PreferenceReaders, ReadsTheGzipFixtureOfHhRlhf) {
    const auto result = read(lumi::test::fixture("hh_rlhf_600.jsonl.gz"));
    EXPECT_EQ(result.format, data::PreferenceFormat::hh_rlhf);
    EXPECT_EQ(result.records, 600u);
    EXPECT_EQ(result.skipped, 0u);
    EXPECT_GT(result.pairs.size(), 550u);
    for (const auto& pair : result.pairs) {
        ASSERT_FALSE(pair.prompt.turns.empty());
        EXPECT_TRUE(pair.prompt.turns.back().response.empty());
        EXPECT_FALSE(pair.chosen.empty());
    }
}

data::PreferenceSettings settings_for(const fs::path& dir) {
    data::PreferenceSettings settings;
    settings.output = dir / "dpo";
    settings.chat_template = data::ChatTemplate::chat;
    settings.sequence_length = 48;
    settings.max_prompt_tokens = 24;
    settings.validation_fraction = 0.25;
    settings.sequences_per_shard = 7;  // odd: pairs straddle shards
    settings.threads = 2;
    return settings;
}

TEST(PreparePreferences, RowsHoldPromptThenResponseWithTheMaskOnTheResponse) {
    const fs::path dir = lumi::test::fresh_directory("prepare_dpo");
    std::string lines;
    for (int i = 0; i < 40; ++i) {
        const std::string n = std::to_string(i);
        // Some prompts and answers too long for 48 tokens, so both truncation rules apply.
        const std::string question = i % 5 == 0 ? "a long question number " + n + " that goes on" : "q" + n;
        const std::string answer = i % 7 == 0 ? "a long answer that will not fit, number " + n : "yes " + n;
        lines += R"({"prompt": ")" + question + R"(", "chosen": ")" + answer + R"(", "rejected": "no )" + n +
                 "\"}\n";
    }
    lines += R"({"prompt": "q1", "chosen": "yes 1", "rejected": "no 1"})"
             "\n";  // a duplicate
    lines += R"({"prompt": "same", "chosen": "x", "rejected": "x"})"
             "\n";  // identical answers
    lumi::write_file_atomic(dir / "pairs.jsonl", lines);
    auto settings = settings_for(dir);
    settings.datasets = {{.path = dir / "pairs.jsonl"}};
    const auto report = data::prepare_preferences(settings, byte_encode, lumi::test::byte_tokenizer());
    const auto& manifest = report.manifest;
    EXPECT_EQ(manifest.dropped.duplicate, 1u);
    EXPECT_EQ(manifest.dropped.identical, 1u);
    EXPECT_EQ(manifest.dropped.truncated_prompts, 8u);  // "Human: a long question ... \n\nAssistant: " > 24
    EXPECT_GT(manifest.dropped.truncated_responses, 0u);
    EXPECT_EQ(manifest.train.pairs + manifest.val.pairs, 40u);
    EXPECT_GT(manifest.val.pairs, 0u);

    std::set<std::vector<int>> train_prompts;
    for (const std::string split : {"train", "val"}) {
        const data::PreferenceDataset dataset(dir / "dpo", {.split = split, .verify = true});
        EXPECT_EQ(std::uint64_t(dataset.size()),
                  split == "train" ? manifest.train.pairs : manifest.val.pairs);
        std::vector<std::int64_t> all(static_cast<std::size_t>(dataset.size()));
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = std::int64_t(i);
        const auto batch = dataset.samples(all);
        ASSERT_EQ(batch.tokens.size(0), 2 * dataset.size());
        EXPECT_FALSE(batch.segments.defined());
        for (std::int64_t p = 0; p < dataset.size(); ++p) {
            std::vector<int> prompt[2], response[2];
            for (int side = 0; side < 2; ++side) {
                const auto row = side * dataset.size() + p;  // the chosen rows, then the rejected
                bool in_response = false, padded = false;
                for (std::int64_t t = 0; t < 48; ++t) {
                    const int token = int(batch.tokens[row][t].item<std::int64_t>());
                    const bool masked = batch.loss_mask[row][t].item<bool>();
                    if (masked) {
                        ASSERT_FALSE(padded) << "the response is contiguous";
                        in_response = true;
                        response[side].push_back(token);
                    } else if (in_response || padded) {
                        padded = true;
                        EXPECT_EQ(token, 0) << "padding after the response";
                    } else {
                        prompt[side].push_back(token);
                    }
                }
            }
            EXPECT_EQ(prompt[0], prompt[1]) << "chosen and rejected share the prompt";
            EXPECT_LE(prompt[0].size(), 24u);
            EXPECT_NE(response[0], response[1]);
            // The prompt is cut from the left (the turn's end kept), the response from the right (its start).
            const std::string text = lumi::test::byte_decode(prompt[0]);
            EXPECT_TRUE(text.ends_with("\n\nAssistant: ")) << text;
            EXPECT_TRUE(lumi::test::byte_decode(response[1]).starts_with("no "))
                << lumi::test::byte_decode(response[1]);
            const bool whole = response[0].back() == lumi::test::eos_id;
            EXPECT_TRUE(whole || prompt[0].size() + response[0].size() == 48u);
            if (split == "train") train_prompts.insert(prompt[0]);
            if (split == "val") {
                EXPECT_FALSE(train_prompts.count(prompt[0])) << "a prompt is on one side only";
            }
        }
    }
    const auto json = lumi::config::read_json_file(dir / "dpo" / "manifest.json").as_object();
    EXPECT_EQ(json.at("kind").as_string(), "lumi.dpo");
    EXPECT_EQ(json.at("dropped").at("duplicate").to_number<int>(), 1);
    EXPECT_EQ(json.at("datasets").at(0).at("format").as_string(), "pairs");
    EXPECT_TRUE(fs::exists(dir / "dpo" / "config.json"));
}

TEST(PreparePreferences, SettingsAndDatasetsAreChecked) {
    const fs::path dir = lumi::test::fresh_directory("dpo_settings");
    auto settings = settings_for(dir);
    settings.datasets = {{.path = dir / "x.jsonl"}};
    settings.max_prompt_tokens = 48;
    const auto prompt = lumi::test::error_of([&] { settings.validate(); });
    EXPECT_TRUE(contains(prompt, "max_prompt_tokens")) << prompt;

    // An SFT dataset is not a preference dataset.
    fs::create_directories(dir / "sft");
    data::ShardWriter rows(dir / "sft", "train", {8, 259, lumi::test::byte_tokenizer_sha(), true, true}, 4);
    rows.finish();
    lumi::config::write_json_file(boost::json::object{{"kind", "lumi.sft"}}, dir / "sft" / "manifest.json");
    const auto kind = lumi::test::error_of([&] { data::PreferenceDataset(dir / "sft"); });
    EXPECT_TRUE(contains(kind, "not a preference dataset (manifest kind lumi.sft)")) << kind;
}

}  // namespace
