// The tokenizer stage: training through SentencePiece's iterator API on real text, the directory it writes,
// and a Tokenizer that encodes exactly as SentencePiece's own spm_encode does.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include <lumi/config/config.hpp>
#include <lumi/tokenizer/tokenizer.hpp>
#include <lumi/tokenizer/trainer.hpp>

#include "test_data.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using lumi::tokenizer::ModelType;
using lumi::tokenizer::Tokenizer;
using lumi::tokenizer::TrainerSettings;

const fs::path shakespeare = lumi::test::fixture("shakespeare.txt");
const fs::path wikitext = lumi::test::fixture("wikitext-2-test.txt");

// The whole lines within [begin, begin + size) of a file.
std::string slice(const fs::path& file, std::size_t begin, std::size_t size) {
    const std::string text = lumi::read_file(file);
    if (begin > 0) begin = text.find('\n', begin) + 1;
    const std::size_t end = text.rfind('\n', std::min(text.size(), begin + size));
    return text.substr(begin, end - begin + 1);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

void write(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::binary);
    out << text;
}

// A corpus as the corpus stage writes it: paragraphs of Shakespeare and WikiText as JSONL records in two
// shards.
void write_corpus(const fs::path& dir) {
    fs::create_directories(dir);
    const std::pair<fs::path, std::string> sources[] = {{"shard_00000.jsonl", slice(shakespeare, 0, 150'000)},
                                                        {"shard_00001.jsonl", slice(wikitext, 0, 100'000)}};
    for (const auto& [name, text] : sources) {
        std::ofstream out(dir / name, std::ios::binary);
        std::string document;
        for (const std::string& line : lines_of(text + "\n")) {
            const bool blank = line.find_first_not_of(' ') == std::string::npos;
            if (!blank) document += line + "\n";
            if (blank && !document.empty()) {
                out << json::serialize(json::object{{"text", document}}) << "\n";
                document.clear();
            }
        }
    }
    write(dir / "manifest.json", "{\"not\": \"text\"}\n");
}

class TokenizerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        root_ = fs::temp_directory_path() / ("lumi_tokenizer_" + std::to_string(::getpid()) + "_" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(root_);
        write_corpus(root_ / "corpus");
    }
    void TearDown() override {
        std::error_code ignored;
        if (!root_.empty()) fs::remove_all(root_, ignored);
    }

    // Small and single-threaded, so each test trains in about a second.
    TrainerSettings settings(const std::string& output = "tokenizer") const {
        TrainerSettings s;
        s.input = root_ / "corpus";
        s.output = root_ / output;
        s.vocab_size = 800;
        s.input_sentence_size = 0;
        s.user_defined_symbols = {"<|user|>", "<|assistant|>"};
        s.threads = 1;
        return s;
    }

    // Held-out text: the fixtures' lines after the slices trained on.
    static std::vector<std::string> held_out_lines() {
        auto lines = lines_of(slice(shakespeare, 155'000, 8'000));
        for (auto& line : lines_of(slice(wikitext, 105'000, 12'000))) lines.push_back(line);
        return lines;
    }

    fs::path root_;
};

TEST_F(TokenizerTest, TrainedDirectoryHasEveryFileAndRecordsTheModelsSha256) {
    const auto report = lumi::tokenizer::train_tokenizer(settings());
    const fs::path dir = root_ / "tokenizer";
    EXPECT_EQ(report.directory, dir);
    EXPECT_EQ(report.vocab_size, 800);
    for (const char* name : {"spm.model", "spm.vocab", "tokenizer.model", "tokenizer_config.json",
                             "special_tokens_map.json", "manifest.json"})
        EXPECT_TRUE(fs::is_regular_file(dir / name)) << name;
    EXPECT_EQ(std::distance(fs::directory_iterator(root_), fs::directory_iterator()), 2)
        << "only the corpus and the tokenizer: no staging directory or temporary corpus file is left";

    const std::string sha = lumi::sha256_file(dir / "spm.model");
    EXPECT_EQ(report.sha256, sha);
    EXPECT_EQ(lumi::read_file(dir / "tokenizer.model"), lumi::read_file(dir / "spm.model"));
    EXPECT_EQ(lines_of(lumi::read_file(dir / "spm.vocab")).size(), 800u);

    const json::value config = lumi::config::read_json_file(dir / "tokenizer_config.json");
    const json::value& lumi_fields = config.at("lumi");
    EXPECT_EQ(lumi_fields.at("spm_model_sha256").as_string(), sha);
    EXPECT_EQ(lumi_fields.at("vocab_size").to_number<int>(), 800);
    EXPECT_EQ(lumi_fields.at("model_type").as_string(), "unigram");
    EXPECT_EQ(lumi_fields.at("normalization").as_string(), "nmt_nfkc");
    EXPECT_EQ(lumi_fields.at("special").at("eos").at("piece").as_string(), "</s>");
    EXPECT_EQ(lumi_fields.at("special").at("pad").at("id").to_number<int>(), 3);
    const auto recorded = lumi::config::from_json<TrainerSettings>(lumi_fields.at("settings"), "recorded");
    EXPECT_EQ(recorded.vocab_size, 800);
    EXPECT_EQ(recorded.user_defined_symbols, settings().user_defined_symbols);

    // What transformers' LlamaTokenizer reads.
    EXPECT_EQ(config.at("tokenizer_class").as_string(), "LlamaTokenizer");
    EXPECT_EQ(config.at("bos_token").as_string(), "<s>");
    EXPECT_EQ(config.at("eos_token").as_string(), "</s>");
    EXPECT_EQ(config.at("unk_token").as_string(), "<unk>");
    EXPECT_EQ(config.at("pad_token").as_string(), "<pad>");
    EXPECT_TRUE(config.at("add_bos_token").as_bool());
    EXPECT_FALSE(config.at("add_eos_token").as_bool());
    EXPECT_TRUE(config.at("legacy").as_bool());
    EXPECT_EQ(config.at("model_max_length").to_number<int>(), 1024);
    const json::value special = lumi::config::read_json_file(dir / "special_tokens_map.json");
    EXPECT_EQ(
        special,
        (json::value{
            {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}, {"pad_token", "<pad>"}}));

    // The corpus was read through its shards only (manifest.json skipped), one JSONL record per paragraph.
    const json::value manifest = lumi::config::read_json_file(dir / "manifest.json");
    EXPECT_EQ(manifest.at("input_files").to_number<int>(), 2);
    EXPECT_GT(manifest.at("documents").to_number<int>(), 100);
    EXPECT_EQ(report.input.sentences, report.input.lines);
    EXPECT_EQ(manifest.at("sha256").at("spm.model").as_string(), sha);

    const Tokenizer tokenizer = Tokenizer::load(dir, sha);
    EXPECT_EQ(tokenizer.sha256(), sha);
    EXPECT_EQ(tokenizer.directory(), dir);
    EXPECT_EQ(tokenizer.vocab_size(), 800);
}

TEST_F(TokenizerTest, DecodeOfEncodeGivesHeldOutTextBack) {
    lumi::tokenizer::train_tokenizer(settings());
    const Tokenizer tokenizer = Tokenizer::load(root_ / "tokenizer");
    std::size_t pieces = 0, bytes = 0;
    for (const std::string& line : held_out_lines()) {
        const auto ids = tokenizer.encode(line);
        EXPECT_EQ(tokenizer.decode(ids), line);
        pieces += ids.size();
        bytes += line.size();
    }
    // A real vocabulary, not characters: even 800 pieces need well under one piece per byte.
    EXPECT_LT(double(pieces) / double(bytes), 0.6);
    // Byte fallback: a character never seen (a snowman) still round-trips, as its UTF-8 bytes.
    const auto snowman = tokenizer.encode("\xE2\x98\x83");
    EXPECT_EQ(tokenizer.decode(snowman), "\xE2\x98\x83");
    EXPECT_EQ(tokenizer.id_to_piece(snowman.back()), "<0x83>");
    EXPECT_TRUE(std::find(snowman.begin(), snowman.end(), tokenizer.unk_id()) == snowman.end());
}

TEST_F(TokenizerTest, TextIsNfkcNormalisedBeforeEncoding) {
    lumi::tokenizer::train_tokenizer(settings());
    const Tokenizer tokenizer = Tokenizer::load(root_ / "tokenizer");
    // The "fi" ligature U+FB01, full-width letters and digits, a non-breaking space.
    EXPECT_EQ(tokenizer.encode("\xEF\xAC\x81ne words"), tokenizer.encode("fine words"));
    EXPECT_EQ(tokenizer.encode("\xEF\xBC\xA8\xEF\xBC\xA1\xEF\xBC\xB4 \xEF\xBC\x91\xEF\xBC\x92"),
              tokenizer.encode("HAT 12"));
    EXPECT_EQ(tokenizer.encode("good\xC2\xA0morrow"), tokenizer.encode("good morrow"));
    EXPECT_EQ(tokenizer.decode(tokenizer.encode("\xEF\xAC\x81ne")), "fine");
    // The NMT rules of the default also make newlines and tabs spaces (the BPE test keeps them with "nfkc").
    EXPECT_EQ(tokenizer.decode(tokenizer.encode("to be\nor\tnot")), "to be or not");
}

TEST_F(TokenizerTest, SpecialIdsAreFixedAndEncodeAddsNoBosOrEos) {
    lumi::tokenizer::train_tokenizer(settings());
    const Tokenizer tokenizer = Tokenizer::load(root_ / "tokenizer");
    EXPECT_EQ(tokenizer.unk_id(), 0);
    EXPECT_EQ(tokenizer.bos_id(), 1);
    EXPECT_EQ(tokenizer.eos_id(), 2);
    EXPECT_EQ(tokenizer.pad_id(), 3);
    EXPECT_EQ(tokenizer.id_to_piece(0), "<unk>");
    EXPECT_EQ(tokenizer.id_to_piece(1), "<s>");
    EXPECT_EQ(tokenizer.id_to_piece(2), "</s>");
    EXPECT_EQ(tokenizer.id_to_piece(3), "<pad>");
    EXPECT_EQ(tokenizer.piece_to_id("</s>"), 2);
    EXPECT_EQ(tokenizer.piece_to_id("no such piece"), tokenizer.unk_id());
    const auto ids = tokenizer.encode("To be, or not to be: that is the question.");
    ASSERT_FALSE(ids.empty());
    for (const int id : ids) EXPECT_GT(id, 3);
    EXPECT_THROW(tokenizer.id_to_piece(800), lumi::Error);
    const std::vector<int> out_of_range = {5, -1};
    EXPECT_THROW(tokenizer.decode(out_of_range), lumi::Error);
}

TEST_F(TokenizerTest, UserDefinedSymbolsAreSinglePieces) {
    lumi::tokenizer::train_tokenizer(settings());
    const Tokenizer tokenizer = Tokenizer::load(root_ / "tokenizer");
    const int user = tokenizer.piece_to_id("<|user|>");
    const int assistant = tokenizer.piece_to_id("<|assistant|>");
    EXPECT_NE(user, tokenizer.unk_id());
    EXPECT_NE(assistant, tokenizer.unk_id());
    const auto ids = tokenizer.encode("<|user|>What is a lobster?<|assistant|>A crustacean.");
    EXPECT_EQ(std::count(ids.begin(), ids.end(), user), 1);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), assistant), 1);
    for (const int id : ids) {
        if (id == user || id == assistant) continue;
        EXPECT_EQ(tokenizer.id_to_piece(id).find('|'), std::string::npos) << tokenizer.id_to_piece(id);
    }
    EXPECT_EQ(tokenizer.decode(ids), "<|user|>What is a lobster?<|assistant|>A crustacean.");
}

TEST_F(TokenizerTest, BpeModelTrainsRoundTripsAndMayLeavePadOut) {
    TrainerSettings s = settings();
    s.model_type = ModelType::bpe;
    s.pad_id = -1;
    s.normalization = "nfkc";
    lumi::tokenizer::train_tokenizer(s);
    const Tokenizer tokenizer = Tokenizer::load(root_ / "tokenizer");
    EXPECT_EQ(tokenizer.vocab_size(), 800);
    EXPECT_EQ(tokenizer.pad_id(), -1);
    EXPECT_EQ(tokenizer.eos_id(), 2);
    for (const std::string& line : held_out_lines())
        EXPECT_EQ(tokenizer.decode(tokenizer.encode(line)), line);
    // Plain NFKC: the ligature still folds, but a newline and a tab stay (as byte pieces).
    EXPECT_EQ(tokenizer.decode(tokenizer.encode("\xEF\xAC\x81ne\nwords\there")), "fine\nwords\there");
    const auto newline = tokenizer.encode("a\nb");
    EXPECT_EQ(std::count(newline.begin(), newline.end(), tokenizer.piece_to_id("<0x0A>")), 1);
    const json::value config = lumi::config::read_json_file(root_ / "tokenizer/tokenizer_config.json");
    EXPECT_EQ(config.at("lumi").at("model_type").as_string(), "bpe");
    EXPECT_TRUE(config.at("pad_token").is_null());
    EXPECT_FALSE(lumi::config::read_json_file(root_ / "tokenizer/special_tokens_map.json")
                     .as_object()
                     .contains("pad_token"));
}

// SentencePiece 0.1.97 trains deterministically: same settings and thread count, byte-identical model.
// (Across thread counts the model records num_threads, and unigram's EM sums per thread, so its scores differ
// slightly.)
TEST_F(TokenizerTest, TrainingTwiceWithTheSameSettingsGivesIdenticalModels) {
    for (const std::uint32_t threads : {1u, 2u}) {
        for (const ModelType type : {ModelType::unigram, ModelType::bpe}) {
            TrainerSettings first = settings("first"), second = settings("second");
            first.threads = second.threads = threads;
            first.model_type = second.model_type = type;
            // Sampling too: the seed, not SentencePiece's fixed one, picks the lines.
            first.input_sentence_size = second.input_sentence_size = 2000;
            const auto a = lumi::tokenizer::train_tokenizer(first);
            const auto b = lumi::tokenizer::train_tokenizer(second);
            EXPECT_EQ(a.input.sentences, 2000u);
            EXPECT_EQ(a.sha256, b.sha256) << "threads " << threads;
            EXPECT_EQ(lumi::read_file(root_ / "first/spm.model"),
                      lumi::read_file(root_ / "second/spm.model"));
        }
    }
    TrainerSettings other_seed = settings("third");
    other_seed.input_sentence_size = 2000;
    other_seed.seed = 1;
    EXPECT_NE(lumi::tokenizer::train_tokenizer(other_seed).sha256,
              lumi::sha256_file(root_ / "first/spm.model"));
}

TEST_F(TokenizerTest, EncodeBatchEqualsEncodeOfEachText) {
    lumi::tokenizer::train_tokenizer(settings());
    const Tokenizer tokenizer = Tokenizer::load(root_ / "tokenizer");
    const Tokenizer copy = tokenizer;  // shares the processor
    const auto lines = held_out_lines();
    for (const std::size_t threads : {1u, 2u, 7u}) {
        const auto batch = copy.encode_batch(lines, threads);
        ASSERT_EQ(batch.size(), lines.size());
        for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(batch[i], tokenizer.encode(lines[i])) << i;
    }
    EXPECT_TRUE(tokenizer.encode_batch({}).empty());
}

TEST_F(TokenizerTest, TamperedModelFileIsALoadErrorNamingItAndBothHashes) {
    const auto report = lumi::tokenizer::train_tokenizer(settings());
    const fs::path model = root_ / "tokenizer/spm.model";
    const std::string wrong(64, '0');
    try {
        Tokenizer::load(root_ / "tokenizer", wrong);
        FAIL() << "an unexpected SHA-256 must not load";
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find(model.string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(wrong), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(report.sha256), std::string::npos) << e.what();
    }

    std::string bytes = lumi::read_file(model);
    bytes[bytes.size() / 2] ^= 1;
    lumi::write_file_atomic(model, bytes);
    const std::string tampered = lumi::sha256_file(model);
    try {
        Tokenizer::load(root_ / "tokenizer");
        FAIL() << "a modified model must not load";
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find(model.string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(report.sha256), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(tampered), std::string::npos) << e.what();
    }
}

TEST_F(TokenizerTest, MalformedJsonlLineIsAnErrorNamingFileAndLine) {
    const fs::path shard = root_ / "corpus/shard_00002.jsonl";
    write(shard, "{\"text\": \"a good line\"}\n\n{\"text\": \"cut short\n{\"text\": \"never read\"}\n");
    try {
        lumi::tokenizer::train_tokenizer(settings());
        FAIL() << "a malformed line must stop training";
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find(shard.string() + ":3: invalid JSON"), std::string::npos)
            << e.what();
    }
    write(shard, "{\"text\": \"fine\"}\n{\"body\": \"no text field\"}\n");
    for (const bool shuffle : {true, false}) {  // the sampled read and the streamed read
        TrainerSettings s = settings();
        s.shuffle = shuffle;
        s.input_sentence_size = 5000;
        try {
            lumi::tokenizer::train_tokenizer(s);
            FAIL() << "a record without text must stop training";
        } catch (const lumi::Error& e) {
            EXPECT_NE(
                std::string(e.what()).find(shard.string() + ":2: expected an object with a string \"text\""),
                std::string::npos)
                << e.what();
        }
    }
    EXPECT_FALSE(fs::exists(root_ / "tokenizer")) << "a failed run leaves no output directory";
}

// The key check: the same ids as SentencePiece's command-line encoder on the same model and text.
TEST_F(TokenizerTest, EncodingEqualsSpmEncodeCommandLineTool) {
    if (!fs::exists("/usr/bin/spm_encode"))
        GTEST_SKIP() << "no /usr/bin/spm_encode (Debian package sentencepiece)";
    for (const ModelType type : {ModelType::unigram, ModelType::bpe}) {
        TrainerSettings s = settings();
        s.model_type = type;
        lumi::tokenizer::train_tokenizer(s);
        const Tokenizer tokenizer = Tokenizer::load(root_ / "tokenizer");

        auto lines = held_out_lines();
        for (const char* extra :
             {"\xEF\xAC\x81ne \xEF\xBC\xA8\xEF\xBC\xA1\xEF\xBC\xB4 caf\xC3\xA9 na\xC3\xAFve",
              "numbers 1234567 and 3.14159", "  two  spaces  ", "<|user|>hi<|assistant|>hello",
              "snow \xE2\x98\x83 and \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"})
            lines.push_back(extra);
        std::string text;
        for (const auto& line : lines) text += line + "\n";
        const fs::path input = root_ / "held_out.txt";
        write(input, text);

        const std::string command =
            "/usr/bin/spm_encode --model=" + (root_ / "tokenizer/spm.model").string() +
            " --output_format=id < " + input.string() + " 2>&1";
        FILE* pipe = ::popen(command.c_str(), "r");
        ASSERT_NE(pipe, nullptr);
        std::string output;
        char buffer[1 << 16];
        for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
        ASSERT_EQ(::pclose(pipe), 0) << output;

        // spm.vocab as spm_train and spm_export_vocab write it.
        const fs::path vocabulary = root_ / "exported.vocab";
        const std::string export_command =
            "/usr/bin/spm_export_vocab --model=" + (root_ / "tokenizer/spm.model").string() + " > " +
            vocabulary.string();
        ASSERT_EQ(std::system(export_command.c_str()), 0);
        EXPECT_EQ(lumi::read_file(root_ / "tokenizer/spm.vocab"), lumi::read_file(vocabulary));

        const auto expected = lines_of(output);
        ASSERT_EQ(expected.size(), lines.size()) << output.substr(0, 500);
        for (std::size_t i = 0; i < lines.size(); ++i) {
            std::string ours;
            for (const int id : tokenizer.encode(lines[i])) {
                if (!ours.empty()) ours += ' ';
                ours += std::to_string(id);
            }
            EXPECT_EQ(ours, expected[i]) << "line " << i << ": " << lines[i];
        }
    }
}

TEST_F(TokenizerTest, PlainTextFilesAndFoldersOfThemAreInputToo) {
    fs::create_directories(root_ / "texts");
    write(root_ / "texts/a.txt", slice(shakespeare, 0, 120'000));
    write(root_ / "texts/b.txt", slice(wikitext, 0, 60'000));
    TrainerSettings s = settings();
    s.input = root_ / "texts";
    const auto folder = lumi::tokenizer::train_tokenizer(s);
    EXPECT_EQ(folder.input.files, 2u);
    EXPECT_EQ(folder.input.documents, 0u);
    s.input = root_ / "texts/a.txt";
    const auto file = lumi::tokenizer::train_tokenizer(s);
    EXPECT_EQ(file.input.files, 1u);
    EXPECT_LT(file.input.lines, folder.input.lines);
}

TEST_F(TokenizerTest, EmptyInputIsAClearError) {
    fs::create_directories(root_ / "empty");
    TrainerSettings s = settings();
    s.input = root_ / "empty";
    try {
        lumi::tokenizer::train_tokenizer(s);
        FAIL();
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find("no input files"), std::string::npos) << e.what();
    }
    write(root_ / "empty/blank.txt", "\n\n   \n");
    write(root_ / "empty/nothing.txt", "");
    try {
        lumi::tokenizer::train_tokenizer(s);
        FAIL();
    } catch (const lumi::Error& e) {
        EXPECT_NE(std::string(e.what()).find("no text to train the tokenizer on"), std::string::npos)
            << e.what();
    }
    s.input = root_ / "missing";
    EXPECT_THROW(lumi::tokenizer::train_tokenizer(s), lumi::Error);
}

TEST_F(TokenizerTest, VocabularyTooLargeForTheTextIsAnErrorWithAHint) {
    fs::create_directories(root_ / "tiny");
    write(root_ / "tiny/a.txt", slice(shakespeare, 0, 3'000));
    for (const ModelType type : {ModelType::unigram, ModelType::bpe}) {
        TrainerSettings s = settings();
        s.input = root_ / "tiny";
        s.model_type = type;
        s.vocab_size = 5000;
        try {
            lumi::tokenizer::train_tokenizer(s);
            FAIL() << "5000 pieces from 3 KB";
        } catch (const lumi::Error& e) {
            const std::string message = e.what();
            EXPECT_NE(message.find("Vocabulary size too high"), std::string::npos) << message;
            EXPECT_NE(message.find("lower vocab_size"), std::string::npos) << message;
        }
    }
    EXPECT_FALSE(fs::exists(root_ / "tokenizer"));
}

TEST(TrainerSettings, ValidationNamesTheField) {
    auto error_of = [](const std::string& set) -> std::string {
        try {
            lumi::config::load<TrainerSettings>(std::nullopt, {"input=corpus", set});
        } catch (const lumi::Error& e) {
            return e.what();
        }
        return "";
    };
    EXPECT_EQ(error_of("vocab_size=1000"), "");
    EXPECT_NE(error_of("pad_id=1").find("pad_id: equals bos_id (1)"), std::string::npos)
        << error_of("pad_id=1");
    EXPECT_NE(error_of("unk_id=-1").find("unk_id"), std::string::npos);
    EXPECT_NE(error_of("eos_id=40000").find("eos_id: must be below vocab_size"), std::string::npos);
    EXPECT_NE(error_of("character_coverage=0.5").find("character_coverage"), std::string::npos);
    EXPECT_NE(error_of("normalization=nfd").find("normalization: unknown rule 'nfd'"), std::string::npos);
    EXPECT_NE(error_of("vocab_size=200").find("vocab_size: must exceed the 260"), std::string::npos)
        << error_of("vocab_size=200");
    EXPECT_NE(error_of("model_type=wordpiece").find("model_type"), std::string::npos);
    EXPECT_NE(
        error_of("user_defined_symbols=[\"a,b\"]").find("user_defined_symbols[0]: must not contain a comma"),
        std::string::npos);
    EXPECT_NE(error_of("user_defined_symbols=[\"<s>\"]").find("already a special piece"), std::string::npos);
    EXPECT_NE(error_of("input_sentence_size=50").find("input_sentence_size"), std::string::npos);
    EXPECT_NE(lumi::config::format_json(lumi::config::to_json(TrainerSettings{}))
                  .find("\"model_type\": \"unigram\""),
              std::string::npos);
}

}  // namespace
