#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "lumi/config/config.hpp"
#include "lumi/data/packed.hpp"
#include "lumi/data/sft.hpp"
#include "lumi/tokenizer/tokenizer.hpp"
#include "lumi/tokenizer/trainer.hpp"
#include "packing_test_util.hpp"
#include "test_data.hpp"

namespace {

namespace fs = std::filesystem;
namespace data = lumi::data;
using lumi::test::byte_decode;
using lumi::test::byte_encode;
using lumi::test::error_of;

data::SftReadResult read(const fs::path& file, data::SftFormat format = data::SftFormat::detect,
                         std::uint32_t max_turns = 0, bool skip_malformed = false) {
    return data::read_sft_dataset({.path = file, .format = format, .max_turns = max_turns}, skip_malformed);
}

TEST(SftReaders, ReadAlpacaAsAJsonArrayOrJsonLines) {
    const fs::path dir = lumi::test::fresh_directory("alpaca");
    lumi::write_file_atomic(dir / "a.json", R"([
  {"instruction": "Add.", "input": "2 and 3", "output": "5"},
  {"instruction": "Greet.", "input": "", "output": "Hello!"},
  {"instruction": "Nothing.", "input": "", "output": ""}
])");
    const auto result = read(dir / "a.json");
    EXPECT_EQ(result.format, data::SftFormat::alpaca);
    EXPECT_EQ(result.records, 3u);
    EXPECT_EQ(result.empty, 1u);
    ASSERT_EQ(result.conversations.size(), 2u);
    EXPECT_EQ(result.conversations[0].context, "2 and 3");
    EXPECT_EQ(result.conversations[0].turns[0].prompt, "Add.");
    EXPECT_EQ(result.conversations[0].turns[0].response, "5");
    EXPECT_EQ(result.conversations[1].origin, (dir / "a.json").string() + "[1]");

    lumi::write_file_atomic(dir / "a.jsonl", "{\"instruction\": \"Greet.\", \"output\": \"Hi\"}\n");
    const auto lines = read(dir / "a.jsonl");
    ASSERT_EQ(lines.conversations.size(), 1u);
    EXPECT_EQ(lines.conversations[0].context, "");
    EXPECT_EQ(lines.conversations[0].origin, (dir / "a.jsonl").string() + ":1");
}

TEST(SftReaders, ReadDolly) {
    const fs::path dir = lumi::test::fresh_directory("dolly");
    lumi::write_file_atomic(
        dir / "d.jsonl",
        R"({"instruction": "Who?", "context": "Ada wrote notes.", "response": "Ada", "category": "qa"})"
        "\n");
    const auto result = read(dir / "d.jsonl");
    EXPECT_EQ(result.format, data::SftFormat::dolly);
    ASSERT_EQ(result.conversations.size(), 1u);
    EXPECT_EQ(result.conversations[0].context, "Ada wrote notes.");
    EXPECT_EQ(result.conversations[0].turns[0].response, "Ada");
}

TEST(SftReaders, ReadOpenAssistantBestRankedThreads) {
    const fs::path dir = lumi::test::fresh_directory("oasst");
    lumi::write_file_atomic(
        dir / "o.jsonl",
        R"({"message_id": "p1", "parent_id": null, "role": "prompter", "text": "Hi?", "lang": "en"}
{"message_id": "a1", "parent_id": "p1", "role": "assistant", "text": "Second best", "rank": 1, "lang": "en"}
{"message_id": "a2", "parent_id": "p1", "role": "assistant", "text": "Best", "rank": 0, "lang": "en"}
{"message_id": "a3", "parent_id": "p1", "role": "assistant", "text": "Deleted", "rank": -1, "deleted": true, "lang": "en"}
{"message_id": "p2", "parent_id": "a2", "role": "prompter", "text": "More?", "lang": "en"}
{"message_id": "a4", "parent_id": "p2", "role": "assistant", "text": "Yes", "rank": 0, "lang": "en"}
{"message_id": "p3", "parent_id": null, "role": "prompter", "text": "Unanswered", "lang": "en"}
{"message_id": "p4", "parent_id": null, "role": "prompter", "text": "Hola", "lang": "es"}
{"message_id": "a5", "parent_id": "p4", "role": "assistant", "text": "Hola!", "lang": "es"}
)");
    const auto all = read(dir / "o.jsonl");
    EXPECT_EQ(all.format, data::SftFormat::oasst);
    EXPECT_EQ(all.empty, 1u);  // the unanswered prompt
    ASSERT_EQ(all.conversations.size(), 2u);
    const auto& thread = all.conversations[0].turns;
    ASSERT_EQ(thread.size(), 2u);
    EXPECT_EQ(thread[0].prompt, "Hi?");
    EXPECT_EQ(thread[0].response, "Best");
    EXPECT_EQ(thread[1].prompt, "More?");
    EXPECT_EQ(thread[1].response, "Yes");
    EXPECT_EQ(all.conversations[0].origin, (dir / "o.jsonl").string() + ":1");

    const auto first_turn =
        data::read_sft_dataset({.path = dir / "o.jsonl", .max_turns = 1, .language = "en"});
    ASSERT_EQ(first_turn.conversations.size(), 1u);
    EXPECT_EQ(first_turn.conversations[0].turns.size(), 1u);
}

TEST(SftReaders, ReadShareGptConversations) {
    const fs::path dir = lumi::test::fresh_directory("sharegpt");
    lumi::write_file_atomic(dir / "s.json", R"([{"id": "x", "conversations": [
  {"from": "gpt", "value": "Stray greeting"},
  {"from": "system", "value": "Be brief."},
  {"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
  {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]}])");
    const auto result = read(dir / "s.json");
    EXPECT_EQ(result.format, data::SftFormat::sharegpt);
    ASSERT_EQ(result.conversations.size(), 1u);
    const auto& c = result.conversations[0];
    EXPECT_EQ(c.context, "Be brief.");
    ASSERT_EQ(c.turns.size(), 2u);
    EXPECT_EQ(c.turns[1].prompt, "Q2");
    EXPECT_EQ(c.turns[1].response, "A2");
    EXPECT_EQ(read(dir / "s.json", data::SftFormat::sharegpt, 1).conversations[0].turns.size(), 1u);

    lumi::write_file_atomic(dir / "bad.json", R"([{"conversations": [{"from": "robot", "value": "?"}]}])");
    EXPECT_CONTAINS(error_of([&] { read(dir / "bad.json"); }),
                    "bad.json[0]: conversations[0].from: unknown role 'robot'");
}

TEST(SftReaders, AConfiguredFormatOverridesDetectionAndAnUnknownOneIsNamed) {
    const fs::path dir = lumi::test::fresh_directory("formats");
    lumi::write_file_atomic(dir / "x.jsonl",
                            "{\"instruction\": \"I\", \"response\": \"R\", \"output\": \"O\"}\n");
    EXPECT_EQ(read(dir / "x.jsonl").conversations[0].turns[0].response, "R");  // detected as dolly
    EXPECT_EQ(read(dir / "x.jsonl", data::SftFormat::alpaca).conversations[0].turns[0].response, "O");
    lumi::write_file_atomic(dir / "y.jsonl", "{\"question\": \"Q\", \"answer\": \"A\"}\n");
    const std::string message = error_of([&] { read(dir / "y.jsonl"); });
    EXPECT_CONTAINS(message, "y.jsonl:1: cannot detect the dataset format");
    EXPECT_CONTAINS(message, "keys: question, answer");
    lumi::write_file_atomic(dir / "empty.json", "  \n");
    EXPECT_CONTAINS(error_of([&] { read(dir / "empty.json"); }), "empty.json: empty file");
    lumi::write_file_atomic(dir / "none.json", "[]");
    EXPECT_CONTAINS(error_of([&] { read(dir / "none.json"); }), "none.json: the dataset has no records");
    EXPECT_CONTAINS(error_of([&] { read(dir / "missing.json"); }),
                    "missing.json: cannot read the source: No such file or directory");
}

TEST(SftReaders, MalformedRecordsNameTheFileAndLineOrAreSkippedAndCounted) {
    const fs::path dir = lumi::test::fresh_directory("sft_malformed");
    lumi::write_file_atomic(
        dir / "m.jsonl",
        "{\"instruction\": \"A\", \"output\": \"B\"}\n{\"instruction\": \"C\", \"output\": }\n"
        "{\"instruction\": \"D\"}\n");
    const std::string message = error_of([&] { read(dir / "m.jsonl"); });
    EXPECT_CONTAINS(message, "m.jsonl:2:");
    EXPECT_CONTAINS(message, "invalid JSON");
    const auto skipped = read(dir / "m.jsonl", data::SftFormat::detect, 0, true);
    EXPECT_EQ(skipped.skipped, 2u);
    EXPECT_EQ(skipped.conversations.size(), 1u);

    lumi::write_file_atomic(dir / "n.jsonl",
                            "{\"instruction\": \"A\", \"output\": \"B\"}\n{\"instruction\": \"D\"}\n");
    EXPECT_CONTAINS(error_of([&] { read(dir / "n.jsonl"); }), "n.jsonl:2: missing field 'output'");
    lumi::write_file_atomic(dir / "t.json", "[{\"instruction\": \"A\", \"output\": 3}]");
    EXPECT_CONTAINS(error_of([&] { read(dir / "t.json"); }), "t.json[0]: field 'output': expected a string");
    lumi::write_file_atomic(dir / "u.json", "[{\"instruction\": \"A\",\n \"output\" 3}]");
    EXPECT_CONTAINS(error_of([&] { read(dir / "u.json"); }), "u.json:2:");
}

const data::Conversation two_turns{"", {{"Q1", "A1"}, {"Q2", "A2"}}, "test"};
const data::Conversation with_input{"ctx", {{"Do it.", "Done."}}, "test"};

std::string rendered(const data::Conversation& c, data::ChatTemplate kind) {
    std::string text;
    for (const auto& piece : data::render(c, kind)) text += piece.text;
    return text;
}

TEST(SftTemplates, MatchTheOriginalTemplates) {
    using data::ChatTemplate;
    const data::Conversation plain{"", {{"Name a colour.", "Blue."}}, "test"};
    EXPECT_EQ(rendered(plain, ChatTemplate::instruct),
              "### Instruction:\nName a colour.\n\n### Response:\nBlue.");
    EXPECT_EQ(rendered(with_input, ChatTemplate::instruct),
              "### Instruction:\nDo it.\n\n### Input:\nctx\n\n### Response:\nDone.");
    EXPECT_EQ(rendered(plain, ChatTemplate::chatml),
              "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\nBlue.<|im_end|>");
    EXPECT_EQ(rendered(plain, ChatTemplate::chat), "Human: Name a colour.\n\nAssistant: Blue.");
    EXPECT_EQ(rendered(two_turns, ChatTemplate::chat),
              "Human: Q1\n\nAssistant: A1\n\nHuman: Q2\n\nAssistant: A2");
    EXPECT_EQ(data::prompt_text(ChatTemplate::instruct, "Name a colour."),
              "### Instruction:\nName a colour.\n\n### Response:\n");
}

TEST(SftTemplates, LossMaskCoversExactlyTheResponsesAndEos) {
    for (const auto kind :
         {data::ChatTemplate::instruct, data::ChatTemplate::chatml, data::ChatTemplate::chat}) {
        for (const data::Conversation* c : {&two_turns, &with_input}) {
            const auto example = data::tokenize(*c, kind, byte_encode, lumi::test::eos_id);
            ASSERT_EQ(example.tokens.size(), example.loss_mask.size());
            std::vector<int> expected = byte_encode(rendered(*c, kind));
            expected.push_back(lumi::test::eos_id);
            EXPECT_EQ(example.tokens, expected);

            std::string trained, responses;
            for (std::size_t i = 0; i < example.tokens.size(); ++i)
                if (example.loss_mask[i]) trained += byte_decode(std::span(&example.tokens[i], 1));
            for (const auto& turn : c->turns) responses += data::response_text(kind, turn.response);
            EXPECT_EQ(trained, responses + "|") << lumi::config::enum_name(kind);
            EXPECT_EQ(example.loss_mask.back(), 1);
            EXPECT_EQ(example.loss_mask.front(), 0);
        }
    }
}

TEST(SftPacking, BestFitNeverSplitsAnExampleThatFits) {
    std::mt19937 random(3);
    std::vector<std::size_t> lengths(500);
    for (auto& length : lengths) length = std::uniform_int_distribution<std::size_t>(1, 64)(random);
    for (const auto algorithm :
         {data::PackingAlgorithm::best_fit_decreasing, data::PackingAlgorithm::best_fit}) {
        const auto bins = data::pack_examples(lengths, 64, algorithm);
        std::vector<int> placed(lengths.size());
        std::size_t total = 0;
        for (const auto& bin : bins) {
            std::size_t used = 0;
            for (std::size_t i : bin) used += lengths[i], ++placed[i];
            EXPECT_LE(used, 64u);
            total += used;
        }
        EXPECT_TRUE(std::all_of(placed.begin(), placed.end(), [](int n) { return n == 1; }));
        EXPECT_LT(bins.size(), total / 64 * 110 / 100 + 2);  // within 10% of the lower bound
    }
    EXPECT_CONTAINS(error_of([&] { data::pack_examples(std::vector<std::size_t>{65}, 64, {}); }),
                    "65 tokens");
}

TEST(SftPacking, EfficiencyOnHandMadeCases) {
    using data::PackingAlgorithm;
    const std::vector<std::size_t> fits{6, 5, 3, 2};  // 6+2 and 5+3 fill two sequences of 8
    auto bins = data::pack_examples(fits, 8, PackingAlgorithm::best_fit_decreasing);
    EXPECT_EQ(bins, (std::vector<std::vector<std::size_t>>{{0, 3}, {1, 2}}));
    EXPECT_DOUBLE_EQ(data::packing_efficiency(fits, bins, 8), 1.0);
    bins = data::pack_examples(fits, 8, PackingAlgorithm::none);
    EXPECT_DOUBLE_EQ(data::packing_efficiency(fits, bins, 8), 16.0 / 32.0);

    const std::vector<std::size_t> awkward{2, 7, 7};  // 7s cannot share; 2 fits beside neither
    bins = data::pack_examples(awkward, 8, PackingAlgorithm::best_fit);
    EXPECT_EQ(bins.size(), 3u);
    EXPECT_DOUBLE_EQ(data::packing_efficiency(awkward, bins, 8), 16.0 / 24.0);
    // Best fit picks the fullest sequence that still has room: 5 goes beside the 3 (room 5), not the 1.
    const std::vector<std::size_t> choice{7, 3, 5};
    bins = data::pack_examples(choice, 8, PackingAlgorithm::best_fit);
    EXPECT_EQ(bins, (std::vector<std::vector<std::size_t>>{{0}, {1, 2}}));
}

// An Alpaca file of `count` examples, every fifth one too long for 96 tokens.
std::vector<data::Conversation> write_alpaca(const fs::path& file, std::size_t count,
                                             const std::string& tag) {
    boost::json::array records;
    std::vector<data::Conversation> conversations;
    for (std::size_t i = 0; i < count; ++i) {
        std::string response = tag + " answer " + std::to_string(i);
        if (i % 5 == 4) response += std::string(120, 'x');
        const std::string instruction = tag + " question " + std::to_string(i) + std::string(i % 7, '?');
        records.push_back({{"instruction", instruction}, {"input", ""}, {"output", response}});
        conversations.push_back({"", {{instruction, response}}, ""});
    }
    lumi::write_file_atomic(file, boost::json::serialize(records));
    return conversations;
}

data::SftSettings sft_settings(const fs::path& dir) {
    data::SftSettings settings;
    settings.output = dir / "sft";
    settings.sequence_length = 96;
    settings.validation_fraction = 0.2;
    settings.sequences_per_shard = 5;
    settings.threads = 2;
    return settings;
}

TEST(PrepareSft, PackedShardsHoldEachExampleWholeWithItsMaskAndSegments) {
    const fs::path dir = lumi::test::fresh_directory("prepare_sft");
    const auto conversations = write_alpaca(dir / "alpaca.json", 60, "a");
    auto settings = sft_settings(dir);
    settings.datasets = {{.path = dir / "alpaca.json"}};
    const auto report = data::prepare_sft(settings, byte_encode, lumi::test::byte_tokenizer());
    EXPECT_EQ(report.truncated, 12u);
    EXPECT_EQ(report.dropped_no_loss, 0u);
    EXPECT_GT(report.val.split.documents, 0u);
    EXPECT_EQ(report.train.split.documents + report.val.split.documents, 60u);

    // Every example, truncated to the sequence length, as the packer should have stored it.
    std::multiset<std::vector<int>> expected;
    for (const auto& c : conversations) {
        auto example = data::tokenize(c, data::ChatTemplate::instruct, byte_encode, lumi::test::eos_id);
        if (example.tokens.size() > 96) example.tokens.resize(96);
        expected.insert(example.tokens);
    }
    std::multiset<std::vector<int>> found;
    std::uint64_t content = 0, stored = 0;
    for (const std::string split : {"train", "val"}) {
        const data::PackedDataset dataset(dir / "sft", {.split = split, .verify = true});
        ASSERT_TRUE(dataset.has_loss_mask() && dataset.has_segments());
        const auto all = dataset.order(0);
        const auto batch = dataset.samples(all);
        for (std::int64_t row = 0; row < dataset.size(); ++row) {
            const auto tokens = batch.tokens[row], mask = batch.loss_mask[row],
                       segments = batch.segments[row];
            std::int64_t previous = 1;
            std::map<std::int64_t, std::vector<int>> examples;
            for (std::int64_t t = 0; t < 96; ++t) {
                const std::int64_t segment = segments[t].item<std::int32_t>();
                const int token = static_cast<int>(tokens[t].item<std::int64_t>());
                ++stored;
                if (segment == 0) {
                    EXPECT_EQ(token, 0);  // pad id
                    EXPECT_FALSE(mask[t].item<bool>());
                } else {
                    EXPECT_TRUE(segment == previous || segment == previous + 1) << "segments are contiguous";
                    EXPECT_TRUE(previous != 0) << "no example after padding";
                    examples[segment].push_back(token);
                    ++content;
                }
                previous = segment;
            }
            for (auto& [segment, ids] : examples) found.insert(ids);
        }
    }
    EXPECT_EQ(found, expected);
    const auto manifest = lumi::config::read_json_file(dir / "sft" / "manifest.json").as_object();
    EXPECT_DOUBLE_EQ(manifest.at("packing").at("efficiency").as_double(), double(content) / double(stored));
    EXPECT_DOUBLE_EQ(report.efficiency(), double(content) / double(stored));
    EXPECT_EQ(manifest.at("packing").at("truncated_examples").to_number<std::uint64_t>(), 12u);
    EXPECT_EQ(manifest.at("template").as_string(), "instruct");
    EXPECT_TRUE(manifest.contains("segments"));
    EXPECT_EQ(manifest.at("datasets").at(0).at("format").as_string(), "alpaca");
}

TEST(PrepareSft, WeightsCopyExamplesAndBudgetsCapTokens) {
    const fs::path dir = lumi::test::fresh_directory("sft_weights");
    write_alpaca(dir / "a.json", 40, "a");
    write_alpaca(dir / "b.json", 40, "b");
    auto settings = sft_settings(dir);
    settings.datasets = {{.path = dir / "a.json", .weight = 2.0},
                         {.path = dir / "b.json", .max_tokens = 600}};
    const auto report = data::prepare_sft(settings, byte_encode, lumi::test::byte_tokenizer());
    const auto& a = report.datasets[0];
    const auto& b = report.datasets[1];
    EXPECT_EQ(a.train_examples, 2 * (40 - a.val_examples));
    EXPECT_LE(b.train_tokens, 600u);
    EXPECT_GT(b.train_tokens, 400u);
    EXPECT_GT(b.over_budget, 0u);
    EXPECT_EQ(report.train.split.documents, a.train_examples + b.train_examples);

    settings.datasets = {{.path = dir / "a.json", .weight = 0.5}};
    const auto half = data::prepare_sft(settings, byte_encode, lumi::test::byte_tokenizer());
    EXPECT_LT(half.datasets[0].train_examples, 40 - half.datasets[0].val_examples);
    EXPECT_GT(half.datasets[0].train_examples, 0u);
}

TEST(PrepareSft, SettingsAreValidated) {
    EXPECT_CONTAINS(error_of([] { lumi::config::load<data::SftSettings>(std::nullopt, {}); }),
                    "datasets: must list at least one dataset");
    EXPECT_CONTAINS(error_of([] {
                        lumi::config::load<data::SftSettings>(
                            std::nullopt, {R"(datasets=[{"path": "a.json"}])", "sequence_length=70000"});
                    }),
                    "sequence_length: must be in [2, 65535]");
    EXPECT_CONTAINS(error_of([] {
                        lumi::config::load<data::SftSettings>(
                            std::nullopt, {R"(datasets=[{"path": "a.json", "weight": -1}])"});
                    }),
                    "datasets[0].weight");
    const auto settings = lumi::config::load<data::SftSettings>(
        std::nullopt, {R"(datasets=[{"path": "a.json", "format": "oasst"}])", "chat_template=chatml"});
    EXPECT_EQ(settings.datasets[0].format, data::SftFormat::oasst);
    EXPECT_EQ(settings.chat_template, data::ChatTemplate::chatml);
}

// With a real SentencePiece tokenizer, trained here on a slice of WikiText-2.

// Non-empty lines of the WikiText-2 fixture (paragraphs and headings), the first `count`.
std::vector<std::string> wikitext_lines(std::size_t count) {
    const std::string text = lumi::read_file(lumi::test::fixture("wikitext-2-test.txt"));
    std::vector<std::string> lines;
    for (std::size_t begin = 0, end;
         lines.size() < count && (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
        if (end - begin > 1) lines.push_back(text.substr(begin, end - begin));
    return lines;
}

const lumi::tokenizer::Tokenizer& real_tokenizer() {
    static const lumi::tokenizer::Tokenizer tokenizer = [] {
        const fs::path dir = lumi::test::fresh_directory("real_tokenizer");
        std::string slice;
        for (const std::string& line : wikitext_lines(10'000)) slice += line + "\n";
        lumi::write_file_atomic(dir / "slice.txt", slice);
        lumi::tokenizer::TrainerSettings settings;
        settings.input = dir / "slice.txt";
        settings.output = dir / "tokenizer";
        settings.vocab_size = 600;
        lumi::tokenizer::train_tokenizer(settings);
        return lumi::tokenizer::Tokenizer::load(settings.output);
    }();
    return tokenizer;
}

TEST(RealTokenizer, PacksWikiTextAndChecksTheTokenizerOnOpen) {
    const auto& tokenizer = real_tokenizer();
    const auto encode = [&](std::string_view text) { return tokenizer.encode(text); };
    const fs::path dir = lumi::test::fresh_directory("real_pack");
    const auto docs = wikitext_lines(200);
    lumi::test::write_jsonl(dir / "corpus" / "shard_00000.jsonl", docs);
    data::PackSettings settings;
    settings.corpus = dir / "corpus";
    settings.output = dir / "packed";
    settings.sequence_length = 64;
    settings.validation_fraction = 0;
    const auto report = data::pack_dataset(settings, encode, data::tokenizer_info(tokenizer));

    std::vector<int> expected;
    for (const std::string& doc : docs) {
        for (int id : tokenizer.encode(doc)) expected.push_back(id);
        expected.push_back(tokenizer.eos_id());
    }
    const data::PackedDataset packed(dir / "packed",
                                     {.tokenizer_sha256 = tokenizer.sha256(), .verify = true});
    ASSERT_EQ(packed.size(), static_cast<std::int64_t>(expected.size() / 64));
    EXPECT_EQ(report.train.dropped_tail_tokens, expected.size() % 64);
    // Read in shuffled order, put back in place.
    const auto order = packed.order(0);
    const auto all = packed.batch(order);
    std::vector<int> stream(static_cast<std::size_t>(packed.size() * 64));
    for (std::int64_t row = 0; row < packed.size(); ++row) {
        const std::int64_t original = order[static_cast<std::size_t>(row)];
        for (std::int64_t t = 0; t < 64; ++t)
            stream[static_cast<std::size_t>(original * 64 + t)] =
                static_cast<int>(all[row][t].item<std::int64_t>());
    }
    expected.resize(stream.size());
    EXPECT_EQ(stream, expected);
    const std::vector<int> first(expected.begin(),
                                 std::find(expected.begin(), expected.end(), tokenizer.eos_id()));
    EXPECT_EQ(tokenizer.decode(first), tokenizer.decode(tokenizer.encode(docs[0])));

    const std::string other = lumi::sha256_hex("other");
    EXPECT_CONTAINS(error_of([&] { data::PackedDataset(dir / "packed", {.tokenizer_sha256 = other}); }),
                    tokenizer.sha256());
}

TEST(RealTokenizer, PreparesAlpacaWithLossOnTheResponsesOnly) {
    const auto& tokenizer = real_tokenizer();
    const auto encode = [&](std::string_view text) { return tokenizer.encode(text); };
    const fs::path dir = lumi::test::fresh_directory("real_sft");
    const auto alpaca = lumi::config::read_json_file(lumi::test::fixture("alpaca_400.json")).as_array();
    boost::json::array slice(alpaca.begin(), alpaca.begin() + 200);
    lumi::write_file_atomic(dir / "alpaca.json", boost::json::serialize(slice));
    std::set<std::string> responses;
    for (const auto& record : slice)
        responses.insert(tokenizer.decode(tokenizer.encode(std::string(record.at("output").as_string()))));

    for (const auto kind : {data::ChatTemplate::instruct, data::ChatTemplate::chat}) {
        data::SftSettings settings;
        settings.datasets = {{.path = dir / "alpaca.json"}};
        settings.output = dir / "sft";
        settings.chat_template = kind;
        settings.sequence_length = 512;
        const auto report = data::prepare_sft(settings, encode, data::tokenizer_info(tokenizer));
        EXPECT_GT(report.efficiency(), 0.8) << lumi::config::enum_name(kind);

        const data::PackedDataset train(dir / "sft",
                                        {.tokenizer_sha256 = tokenizer.sha256(), .verify = true});
        std::size_t checked = 0;
        for (std::int64_t row = 0; row < train.size(); ++row) {
            const auto sample = train.sample(row);
            std::map<std::int32_t, std::vector<int>> trained;
            std::map<std::int32_t, std::vector<int>> prompts;
            for (std::int64_t t = 0; t < train.sequence_length(); ++t) {
                const auto segment = sample.segments[t].item<std::int32_t>();
                const int token = static_cast<int>(sample.tokens[t].item<std::int64_t>());
                if (segment == 0) continue;
                (sample.loss_mask[t].item<bool>() ? trained[segment] : prompts[segment]).push_back(token);
            }
            for (auto& [segment, ids] : trained) {
                if (ids.back() != tokenizer.eos_id()) continue;  // truncated
                ids.pop_back();
                EXPECT_TRUE(responses.count(tokenizer.decode(ids))) << tokenizer.decode(ids);
                EXPECT_TRUE(
                    tokenizer.decode(prompts[segment])
                        .starts_with(kind == data::ChatTemplate::instruct ? "### Instruction:" : "Human:"));
                ++checked;
            }
        }
        EXPECT_GT(checked, 150u);
    }
}

}  // namespace
