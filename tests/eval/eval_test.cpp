#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <lumi/core/sha256.hpp>
#include <lumi/eval/boolq.hpp>
#include <lumi/eval/perplexity.hpp>
#include <lumi/eval/results.hpp>
#include <lumi/eval/smoke.hpp>
#include <lumi/model/transformer.hpp>

#include "test_data.hpp"
#include "test_specs.hpp"

namespace {

namespace fs = std::filesystem;
namespace eval = lumi::eval;

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

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// One token per byte (id = 3 + byte % (vocab - 3)), BOS 1, EOS 2: token counts are byte counts.
struct ByteTokenizer {
    int vocab = 259;
    std::vector<int> encode(std::string_view text) const {
        std::vector<int> ids;
        for (unsigned char c : text) ids.push_back(3 + c % (vocab - 3));
        return ids;
    }
    int bos_id() const { return 1; }
    int eos_id() const { return 2; }
    int id(char c) const { return encode(std::string_view(&c, 1)).front(); }
};

// Logits all zero: every token has probability 1 / vocab.
struct UniformImpl : torch::nn::Module {
    explicit UniformImpl(std::int64_t vocab) : vocab(vocab) {}
    torch::Tensor forward(const torch::Tensor& ids) {
        return torch::zeros({ids.size(0), ids.size(1), vocab});
    }
    std::int64_t vocab;
};
TORCH_MODULE(Uniform);

// Predicts, with near certainty, the token `period - 1` positions back in its own row (a sequence of that
// period is then predicted perfectly wherever that much context is present), uniform where it is not.
struct CopyImpl : torch::nn::Module {
    CopyImpl(std::int64_t vocab, std::int64_t period) : vocab(vocab), period(period) {}
    torch::Tensor forward(const torch::Tensor& ids) {
        auto logits = torch::zeros({ids.size(0), ids.size(1), vocab});
        const std::int64_t shift = period - 1, length = ids.size(1) - shift;
        if (length > 0)
            logits.narrow(1, shift, length)
                .copy_(torch::one_hot(ids.narrow(1, 0, length), vocab).to(torch::kFloat32) * 40);
        return logits;
    }
    std::int64_t vocab, period;
};
TORCH_MODULE(Copy);

// Uniform, keeping the last input it was given.
struct RecordImpl : torch::nn::Module {
    explicit RecordImpl(std::int64_t vocab) : vocab(vocab) {}
    torch::Tensor forward(const torch::Tensor& ids) {
        seen = ids.clone();
        return torch::zeros({ids.size(0), ids.size(1), vocab});
    }
    std::int64_t vocab;
    torch::Tensor seen;
};
TORCH_MODULE(Record);

// Uniform, except that once `flag` has been read (causally) the tokens of "yes" become near certain.
struct FlagImpl : torch::nn::Module {
    explicit FlagImpl(ByteTokenizer tokenizer) : tokenizer(tokenizer) {}
    torch::Tensor forward(const torch::Tensor& ids) {
        auto logits = torch::zeros({ids.size(0), ids.size(1), std::int64_t{tokenizer.vocab}});
        const auto seen = ids.eq(tokenizer.id('!')).cumsum(1).gt(0).to(torch::kFloat32) * 30;
        for (char c : {'y', 'e', 's'}) logits.select(2, tokenizer.id(c)).add_(seen);
        return logits;
    }
    ByteTokenizer tokenizer;
};
TORCH_MODULE(Flag);

fs::path temporary(const std::string& name, const std::string& text) {
    const fs::path file =
        fs::temp_directory_path() / ("lumi_eval_test_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(file, std::ios::binary) << text;
    return file;
}

// Sliding windows

TEST(SlidingWindows, PredictEachTokenOnceWithAtLeastWindowMinusStrideContext) {
    for (std::int64_t length : {1, 2, 5, 17, 64, 100, 257})
        for (std::int64_t window : {1, 4, 16, 64})
            for (std::int64_t stride : {std::int64_t{1}, window / 2, window - 1, window}) {
                if (stride < 1) continue;
                std::vector<int> predicted(static_cast<std::size_t>(length), 0);
                for (const auto& w : eval::sliding_windows(length, window, stride)) {
                    ASSERT_LE(w.end - w.begin, window);
                    ASSERT_LE(w.begin, w.first_target);
                    for (std::int64_t j = w.first_target + 1; j <= w.end; ++j) {
                        ++predicted[static_cast<std::size_t>(j)];
                        EXPECT_GE(j - w.begin, std::min(j, window - stride + 1)) << "context of token " << j;
                    }
                }
                for (std::int64_t j = 1; j < length; ++j)
                    ASSERT_EQ(predicted[static_cast<std::size_t>(j)], 1)
                        << "token " << j << " of " << length << ", window " << window << ", stride "
                        << stride;
            }
}

TEST(SlidingWindows, StrideEqualToWindowGivesLmEvalsDisjointWindows) {
    // lm-eval's get_rolling_token_windows(10 tokens, prefix, max_seq_len 4, context_len 1).
    const auto windows = eval::sliding_windows(11, 4, 4);
    ASSERT_EQ(windows.size(), 3u);
    EXPECT_EQ(windows[0].begin, 0);
    EXPECT_EQ(windows[0].end, 4);
    EXPECT_EQ(windows[0].first_target, 0);
    EXPECT_EQ(windows[1].begin, 4);
    EXPECT_EQ(windows[1].end, 8);
    EXPECT_EQ(windows[1].first_target, 4);
    EXPECT_EQ(windows[2].begin, 6);
    EXPECT_EQ(windows[2].end, 10);
    EXPECT_EQ(windows[2].first_target, 8);
}

TEST(SlidingWindows, RejectAStrideLongerThanTheWindow) {
    EXPECT_TRUE(contains(error_of([] { eval::sliding_windows(10, 4, 5); }), "stride"));
}

// Token perplexity

TEST(Perplexity, UniformLogitsGiveTheVocabularySizeAndScoreEveryTokenOnce) {
    Uniform model(61);
    const std::vector<std::vector<int>> documents{std::vector<int>(100, 5), std::vector<int>(7, 9), {4}};
    for (std::int64_t stride : {1, 8, 16}) {
        const auto score = eval::score_documents(model, documents, 2, 16, stride, 3);
        EXPECT_EQ(score.tokens, 108);  // the prefix predicts each document's first token
        EXPECT_NEAR(std::exp(score.nll / static_cast<double>(score.tokens)), 61.0, 61.0 * 1e-6);
    }
    const auto unprefixed = eval::score_documents(model, documents, std::nullopt, 16, 8, 3);
    EXPECT_EQ(unprefixed.tokens, 105);
}

TEST(Perplexity, EachPredictionHasTheContextTheStrideLeaves) {
    // A sequence of period P is predicted perfectly by Copy(P) wherever P - 1 earlier tokens are in the row:
    // with window - stride + 1 >= P only the first P - 1 tokens of the document are uncertain.
    const std::int64_t window = 12, stride = 5, period = window - stride + 1, vocab = 50;
    std::vector<int> document;
    for (int i = 1; i < 200; ++i)
        document.push_back(i % period == 0 ? 2 : 10 + i % period);  // x_0 = prefix 2
    const double uncertain = std::log(double(vocab));
    Copy exact(vocab, period);
    const auto score = eval::score_documents(exact, {document}, 2, window, stride, 4);
    EXPECT_NEAR(score.nll, static_cast<double>(period - 1) * uncertain, 1e-3);
    // One step longer a period than the context guarantees: later windows miss some predictions.
    std::vector<int> longer;
    for (int i = 1; i < 200; ++i) longer.push_back(i % (period + 1) == 0 ? 2 : 10 + i % (period + 1));
    Copy too_long(vocab, period + 1);
    const auto worse = eval::score_documents(too_long, {longer}, 2, window, stride, 4);
    EXPECT_GT(worse.nll, static_cast<double>(period + 1) * uncertain);
}

TEST(Perplexity, BatchingAndPaddingDoNotChangeATransformersScore) {
    lumi::Transformer<lumi::test::mha> model(lumi::InitSettings{.seed = 3});
    auto gen = lumi::make_generator(5);
    std::vector<std::vector<int>> documents;
    for (std::int64_t length : {90, 13, 47, 2, 130}) {
        const auto ids = torch::randint(3, 61, {length}, gen, torch::kLong);
        documents.emplace_back(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + length);
    }
    const auto one = eval::score_documents(model, documents, 2, 48, 20, 1);
    const auto many = eval::score_documents(model, documents, 2, 48, 20, 7);
    EXPECT_EQ(one.tokens, many.tokens);
    EXPECT_NEAR(one.nll, many.nll, 1e-4 * one.nll);
}

TEST(Perplexity, OneWindowEqualsTheModelsOwnLoss) {
    lumi::Transformer<lumi::test::mha> model(lumi::InitSettings{.seed = 4});
    auto gen = lumi::make_generator(6);
    const auto ids = torch::randint(3, 61, {1, 40}, gen, torch::kLong);
    std::vector<int> document(ids.data_ptr<std::int64_t>() + 1, ids.data_ptr<std::int64_t>() + 40);
    const auto score =
        eval::score_documents(model, {document}, static_cast<int>(ids[0][0].item<std::int64_t>()), 48, 24, 2);
    torch::NoGradGuard no_grad;
    const auto loss = model->forward(ids.narrow(1, 0, 39), ids.narrow(1, 1, 39)).loss.item<double>();
    EXPECT_EQ(score.tokens, 39);
    EXPECT_NEAR(score.nll, loss * 39, 1e-4 * loss * 39);
}

TEST(Perplexity, WindowDefaultsToTheModelsContextAndMayNotExceedIt) {
    EXPECT_EQ(eval::resolve_window<lumi::Transformer<lumi::test::mha>>(0, "perplexity"), 48);
    EXPECT_TRUE(
        contains(error_of([] { eval::resolve_window<lumi::Transformer<lumi::test::mha>>(64, "perplexity"); }),
                 "context 48"));
    EXPECT_TRUE(contains(error_of([] { eval::resolve_window<Uniform>(0, "perplexity"); }), "window"));
}

TEST(Perplexity, SettingsReadFromJsonAndCheckTheStride) {
    const auto settings = lumi::config::from_json<eval::PerplexitySettings>(
        boost::json::parse(
            R"({"file": "t.txt", "documents": "whole_file", "detokenize": "none", "prefix": "bos",
                               "window": 64, "stride": 64})"),
        "eval.json");
    EXPECT_EQ(settings.file, "t.txt");
    EXPECT_EQ(settings.documents, eval::Documents::whole_file);
    EXPECT_EQ(settings.detokenize, eval::Detokenizer::none);
    EXPECT_EQ(settings.prefix, eval::Prefix::bos);
    const auto message = error_of([] {
        lumi::config::from_json<eval::PerplexitySettings>(boost::json::parse(R"({"window": 8, "stride": 9})"),
                                                          "eval.json");
    });
    EXPECT_TRUE(contains(message, "eval.json: stride: must be at most the window")) << message;
    const auto boolq = lumi::config::from_json<eval::BoolqSettings>(
        boost::json::parse(R"({"prefix": "none", "limit": 10})"), "b");
    EXPECT_EQ(boolq.prefix, eval::Prefix::none);
    EXPECT_EQ(boolq.limit, 10);
}

// Word and byte figures

TEST(Perplexity, FiguresFollowTheirDefinitions) {
    eval::PerplexityResult r;
    r.nll = 100, r.tokens = 50, r.words = 20, r.bytes = 80;
    r.finish();
    EXPECT_DOUBLE_EQ(r.token_perplexity, std::exp(2.0));
    EXPECT_DOUBLE_EQ(r.word_perplexity, std::exp(5.0));
    EXPECT_DOUBLE_EQ(r.byte_perplexity, std::exp(1.25));
    EXPECT_DOUBLE_EQ(r.bits_per_byte, 100 / (80 * std::log(2.0)));
}

TEST(Perplexity, WordsAndBytesOfAHandCountedText) {
    // "café au lait\n": 14 bytes (é is two), re.split(r"\s+") gives ["café", "au", "lait", ""]: 4 words.
    const std::string text = "caf\u00e9 au lait\n";
    const fs::path file = temporary("hand.txt", text);
    ByteTokenizer tokenizer;
    Uniform model(tokenizer.vocab);
    const auto r = eval::perplexity(model, tokenizer,
                                    {.file = file,
                                     .documents = eval::Documents::whole_file,
                                     .detokenize = eval::Detokenizer::none,
                                     .window = 8,
                                     .stride = 3});
    const double ln_v = std::log(259.0);
    EXPECT_EQ(r.bytes, 14);
    EXPECT_EQ(r.words, 4);
    EXPECT_EQ(r.tokens, 14);
    EXPECT_EQ(r.documents, 1);
    EXPECT_NEAR(r.nll, 14 * ln_v, 1e-4);
    EXPECT_NEAR(r.token_perplexity, 259.0, 1e-3);
    EXPECT_NEAR(r.word_perplexity, std::exp(14 * ln_v / 4), 1e-6 * r.word_perplexity);
    EXPECT_NEAR(r.byte_perplexity, 259.0, 1e-3);
    EXPECT_NEAR(r.bits_per_byte, std::log2(259.0), 1e-6);
    fs::remove(file);
}

TEST(Perplexity, WordsAreCountedAsLmEvalsRegexSplit) {
    EXPECT_EQ(eval::count_words(""), 1);
    EXPECT_EQ(eval::count_words("one"), 1);
    EXPECT_EQ(eval::count_words(" a  b "), 4);  // ['', 'a', 'b', '']
    EXPECT_EQ(eval::count_words("a\n\n \tb"), 2);
    EXPECT_EQ(eval::count_words("a\u00a0b\u3000c"), 3);  // Unicode spaces split as Python's \s
    EXPECT_EQ(eval::count_words("caf\u00e9"), 1);
}

TEST(Perplexity, DetokenizerFollowsLmEvalsRules) {
    EXPECT_EQ(eval::wikitext_detokenize("a guest @-@ starring role , 1 @,@ 000 @.@ 5"),
              "a guest-starring role, 1,000.5");
    EXPECT_EQ(eval::wikitext_detokenize("( born 1 May ) and [ x ] and \" quoted \""),
              "(born 1 May) and [x] and \"quoted\"");
    EXPECT_EQ(eval::wikitext_detokenize(" = = Career = = \n Teddy 's Story . It rose 5 \u00b0 C ."),
              " == Career ==\nTeddy's Story. It rose 5\u00b0C .");
    EXPECT_EQ(eval::wikitext_detokenize("the players ' union"), "the players' union");
    EXPECT_EQ(eval::wikitext_detokenize("in N games"), "in 1 games");
    EXPECT_EQ(eval::wikitext_detokenize("( unclosed"), "( unclosed");
}

TEST(Perplexity, WikitextSplitsIntoLevelOneArticles) {
    const auto pages =
        eval::wikitext_documents(" \n = A = \n \n text \n = = Sub = = \n more \n = B = \n b \n");
    ASSERT_EQ(pages.size(), 2u);
    EXPECT_EQ(pages[0], " = A = \n \n text \n = = Sub = = \n more ");
    EXPECT_EQ(pages[1], " = B = \n b \n");
}

// The figures Python gives for the same files: wikitext_document_level's pages, lm-eval's word and byte
// counts and detokenizer (SHA-256 of the detokenised pages, each followed by a zero byte).
TEST(SharedData, WikitextPagesCountsAndDetokenisationMatchLmEval) {
    struct Expected {
        const char* file;
        std::size_t pages;
        std::int64_t words, bytes;
        const char* sha256;
    };
    for (const auto& e : {Expected{"test.txt", 62, 241335, 1256386,
                                   "01c65ef901b983d5e07dcaace5eb4c7483b64225c8c0a82e43a3fd3a50d16fa5"},
                          Expected{"valid.txt", 60, 214006, 1121620,
                                   "c81d393cc7bc5ebd01503a519590174617a2a6280ce969a794c1145e3916778a"}}) {
        const fs::path file = lumi::test::shared_data("wikitext-2") / e.file;
        LUMI_REQUIRE_SHARED_DATA(file);
        const auto text = eval::normalize_newlines(lumi::read_file(file));
        const auto pages = eval::wikitext_documents(text);
        ASSERT_EQ(pages.size(), e.pages) << e.file;
        std::int64_t words = 0, bytes = 0;
        lumi::Sha256 hash;
        for (const auto& page : pages) {
            words += eval::count_words(page);
            bytes += static_cast<std::int64_t>(page.size());
            hash.update(eval::wikitext_detokenize(page)).update(std::string_view("\0", 1));
        }
        EXPECT_EQ(words, e.words) << e.file;
        EXPECT_EQ(bytes, e.bytes) << e.file;
        EXPECT_EQ(hash.hex_digest(), e.sha256) << e.file;
    }
}

TEST(Perplexity, WikitextSliceScoresEndToEnd) {
    ByteTokenizer tokenizer;
    Uniform model(tokenizer.vocab);
    const auto r = eval::perplexity(
        model, tokenizer, {.file = lumi::test::fixture("wikitext-2-test.txt"), .window = 64, .limit = 1});
    EXPECT_EQ(r.documents, 1);
    EXPECT_GT(r.unk, 0);  // the tokenised release
    EXPECT_GT(r.words, 500);
    EXPECT_LT(r.tokens, r.bytes);  // detokenisation removed spaces; tokens are the remaining bytes
    EXPECT_NEAR(r.token_perplexity, 259.0, 1e-3);
    EXPECT_NEAR(r.bits_per_byte,
                static_cast<double>(r.tokens) * std::log2(259.0) / static_cast<double>(r.bytes), 1e-6);
    EXPECT_EQ(r.stride, 32);
    const auto m = eval::metrics(r);
    ASSERT_EQ(m.size(), 4u);
    EXPECT_EQ(m[1].name, "wikitext.word_perplexity");
    EXPECT_EQ(m[1].sample_size, r.words);
    EXPECT_FALSE(m[1].higher_is_better);
}

// BoolQ

std::vector<eval::BoolqExample> flag_examples() {
    return {{"is the sky blue", "The sky is blue!", true},
            {"do cats bark", "Cats bark.", false},
            {"is water dry", "Water is dry!", false},
            {"is fire hot", "Fire is hot.", true},
            {"is ice cold", "Ice is cold!", true}};
}

TEST(Boolq, PromptIsLmEvalsTemplate) {
    EXPECT_EQ(eval::boolq_prompt({"is it", "Some passage.", true}),
              "Some passage.\nQuestion: is it?\nAnswer:");
}

TEST(Boolq, PicksTheMoreLikelyAnswer) {
    ByteTokenizer tokenizer;
    Flag model(tokenizer);
    const auto r = eval::boolq(model, tokenizer, flag_examples(), {.window = 256});
    ASSERT_EQ(r.predictions.size(), 5u);
    const bool expected[] = {true, false, true, false, true};  // yes exactly when the passage has '!'
    for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(r.predictions[i].predicted, expected[i]) << i;
    EXPECT_EQ(r.n, 5);
    EXPECT_EQ(r.correct, 3);
    EXPECT_EQ(r.truncated, 0);
    EXPECT_DOUBLE_EQ(r.accuracy, 0.6);
    EXPECT_DOUBLE_EQ(r.standard_error, std::sqrt(0.6 * 0.4 / 5));
    EXPECT_EQ(r.answer_yes, 3);
    EXPECT_TRUE(r.majority_answer);
    EXPECT_DOUBLE_EQ(r.majority_baseline, 0.6);
}

TEST(Boolq, UniformModelPrefersTheAnswerWithFewerTokens) {
    // " yes" is four bytes, " no" three: summed log-likelihoods, not means, decide.
    ByteTokenizer tokenizer;
    Uniform model(tokenizer.vocab);
    const auto r =
        eval::boolq(model, tokenizer, flag_examples(), {.window = 256, .prefix = eval::Prefix::none});
    const double ln_v = std::log(259.0);
    for (const auto& p : r.predictions) {
        EXPECT_FALSE(p.predicted);
        EXPECT_NEAR(p.yes, -4 * ln_v, 1e-4);
        EXPECT_NEAR(p.no, -3 * ln_v, 1e-4);
    }
    EXPECT_DOUBLE_EQ(r.accuracy, 0.4);
    EXPECT_DOUBLE_EQ(r.majority_baseline, 0.6);
}

TEST(Boolq, LongPromptsLoseTheirStartAndAreCounted) {
    ByteTokenizer tokenizer;
    Flag model(tokenizer);
    const std::vector<eval::BoolqExample> examples{{"q", "!" + std::string(200, 'a'), true},
                                                   {"q", std::string(200, 'a') + "!", true}};
    const auto cut = eval::boolq(model, tokenizer, examples, {.window = 64});
    EXPECT_EQ(cut.truncated, 2);
    EXPECT_FALSE(cut.predictions[0].predicted);  // the '!' at the start was cut away
    EXPECT_TRUE(cut.predictions[1].predicted);   // the end of the prompt is kept
    const auto whole = eval::boolq(model, tokenizer, examples, {.window = 256});
    EXPECT_EQ(whole.truncated, 0);
    EXPECT_TRUE(whole.predictions[0].predicted);
}

TEST(Boolq, MajorityBaselineAndStandardErrorArithmetic) {
    eval::BoolqResult r;
    for (int i = 0; i < 10; ++i)
        r.predictions.push_back({.predicted = i < 3, .answer = i >= 6});  // 4 yes, 6 no
    r.finish();
    EXPECT_EQ(r.correct, 3);  // i = 3, 4, 5 (predicted no, answer no)
    EXPECT_DOUBLE_EQ(r.accuracy, 0.3);
    EXPECT_DOUBLE_EQ(r.standard_error, std::sqrt(0.3 * 0.7 / 10));
    EXPECT_FALSE(r.majority_answer);
    EXPECT_DOUBLE_EQ(r.majority_baseline, 0.6);
    EXPECT_EQ(r.predicted_yes, 3);
}

TEST(Boolq, SharedRowsScoreAsSeparateRows) {
    lumi::Transformer<lumi::test::mha> model(lumi::InitSettings{.seed = 8});
    const std::vector<int> a{2, 10, 11, 12, 13, 14}, b{2, 20, 21};
    // Neighbours with the same context share a row when each continuation but its last token is a prefix
    // of the longest: {30} and {31}; {40, 41} and {42} (" yes" = `▁ye s`, " no" = `▁no`); not {40, 41} and
    // {42, 43}.
    const std::vector<eval::ContinuationRequest> shared{
        {a, {30}}, {a, {31}}, {b, {32, 33}}, {a, {40, 41}}, {a, {42}}, {b, {40, 41}}, {b, {42, 43}}};
    const auto s = eval::score_continuations(model, shared, 48, 1, 3);
    EXPECT_EQ(s.rows, 5);
    for (std::size_t r = 0; r < shared.size(); ++r) {
        const std::vector<eval::ContinuationRequest> alone{shared[r]};
        const auto p = eval::score_continuations(model, alone, 48, 1, 1);
        EXPECT_NEAR(s.scores[r].logprob, p.scores[0].logprob, 1e-5) << r;
        EXPECT_EQ(s.scores[r].greedy, p.scores[0].greedy) << r;
    }
}

TEST(Boolq, ContinuationsKeepThePrefixTokenWhenTheContextIsCut) {
    Record model(50);
    const std::vector<int> context{2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
    const std::vector<eval::ContinuationRequest> requests{{context, {20, 21}}};
    const auto cut = eval::score_continuations(model, requests, 6, 1, 1);
    EXPECT_TRUE(cut.scores[0].truncated);
    EXPECT_EQ(cut.inputs, 6);
    const auto row = model->seen.reshape({-1});
    EXPECT_TRUE(row.equal(torch::tensor({2, 16, 17, 18, 19, 20}, torch::kLong))) << row;
    EXPECT_NEAR(cut.scores[0].logprob, -2 * std::log(50.0), 1e-4);
    EXPECT_TRUE(
        contains(error_of([&] { eval::score_continuations(model, requests, 2, 1, 1); }), "does not fit"));
}

TEST(Boolq, MalformedFilesNameTheFileLineAndField) {
    const auto jsonl = temporary("missing.jsonl",
                                 "{\"question\": \"q\", \"passage\": \"p\", \"answer\": true}\n"
                                 "{\"question\": \"q\", \"passage\": \"p\"}\n");
    auto message = error_of([&] { eval::read_boolq(jsonl); });
    EXPECT_TRUE(contains(message, jsonl.string() + ":2")) << message;
    EXPECT_TRUE(contains(message, "'answer'")) << message;

    const auto array = temporary("missing.json",
                                 "[{\"question\": \"q\", \"passage\": \"p\", \"answer\": true},\n"
                                 " {\"question\": \"q\", \"answer\": false}]");
    message = error_of([&] { eval::read_boolq(array); });
    EXPECT_TRUE(contains(message, array.string() + ": example [1]")) << message;
    EXPECT_TRUE(contains(message, "'passage'")) << message;

    const auto broken = temporary(
        "broken.jsonl", "{\"question\": \"q\", \"passage\": \"p\", \"answer\": true}\n\n{\"question\": \n");
    message = error_of([&] { eval::read_boolq(broken); });
    EXPECT_TRUE(contains(message, broken.string() + ":3: invalid JSON")) << message;

    const auto typed =
        temporary("typed.jsonl", "{\"question\": \"q\", \"passage\": \"p\", \"answer\": \"yes\"}\n");
    message = error_of([&] { eval::read_boolq(typed); });
    EXPECT_TRUE(contains(message, typed.string() + ":1: field 'answer' must be a boolean")) << message;

    const auto syntax = temporary("syntax.json", "[\n{\"question\": \"q\",,}]");
    message = error_of([&] { eval::read_boolq(syntax); });
    EXPECT_TRUE(contains(message, syntax.string() + ":2:")) << message;
    for (const auto& f : {jsonl, array, broken, typed, syntax}) fs::remove(f);
}

TEST(Boolq, LimitReadsOnlyTheFirstExamplesAndLabelIsAccepted) {
    const auto file = temporary("label.jsonl",
                                "{\"question\": \"a\", \"passage\": \"p\", \"label\": 1, \"idx\": 0}\n"
                                "{\"question\": \"b\", \"passage\": \"p\", \"label\": 0, \"idx\": 1}\n"
                                "not json\n");
    const auto examples = eval::read_boolq(file, 2);
    ASSERT_EQ(examples.size(), 2u);
    EXPECT_TRUE(examples[0].answer);
    EXPECT_FALSE(examples[1].answer);
    fs::remove(file);
}

TEST(Boolq, ValidationSliceParses) {
    const auto slice = eval::read_boolq(lumi::test::fixture("boolq_40.json"), 30);
    ASSERT_EQ(slice.size(), 30u);
    for (const auto& e : slice) EXPECT_FALSE(e.question.empty() || e.passage.empty());
    EXPECT_EQ(slice[0].question, "does ethanol take more energy make that produces");
    EXPECT_FALSE(slice[0].answer);
    EXPECT_EQ(eval::read_boolq(lumi::test::fixture("boolq_40.json")).size(), 40u);
}

TEST(SharedData, BoolqValidationParsesWhole) {
    const auto file = lumi::test::shared_data("boolq/validation.json");
    LUMI_REQUIRE_SHARED_DATA(file);
    const auto all = eval::read_boolq(file);
    ASSERT_EQ(all.size(), 3270u);
    std::int64_t yes = 0;
    for (const auto& e : all) yes += e.answer;
    EXPECT_EQ(yes, 2033);  // 62.17%: the majority baseline of the README
}

TEST(Boolq, SliceScoresEndToEnd) {
    ByteTokenizer tokenizer;
    Flag model(tokenizer);
    const auto r =
        eval::boolq(model, tokenizer,
                    {.file = lumi::test::fixture("boolq_40.json"), .limit = 12, .batch = 4, .window = 256});
    EXPECT_EQ(r.n, 12);
    EXPECT_GT(r.truncated, 0);  // passages are longer than 256 bytes
    EXPECT_GT(r.tokens, 0);
    const auto m = eval::metrics(r);
    EXPECT_EQ(m[0].name, "boolq.accuracy");
    EXPECT_EQ(m[2].name, "boolq.majority_baseline");
}

// Smoke prompts

eval::SmokePrompt smoke_prompt(eval::SmokeRule rule) {
    return {"id", "reasoning", "prompt", std::move(rule)};
}

TEST(Smoke, KeywordsMatchWholeWordsIgnoringCase) {
    EXPECT_TRUE(eval::contains_phrase("It is PARIS, of course.", "Paris"));
    EXPECT_FALSE(eval::contains_phrase("Parisian food", "Paris"));
    EXPECT_TRUE(eval::contains_phrase("The answer is 5.", "5"));
    EXPECT_FALSE(eval::contains_phrase("The answer is 15.", "5"));
    EXPECT_TRUE(eval::contains_phrase("It's the United Kingdom!", "united kingdom"));
    EXPECT_TRUE(eval::contains_phrase("Guten Morgen", "Guten Morgen"));
}

TEST(Smoke, AnyAllAndNoneKeywords) {
    const auto any = eval::score_smoke(smoke_prompt({.any = {"Paris", "Lyon"}}), "The capital is Paris.");
    EXPECT_DOUBLE_EQ(any.score, 1.0);
    EXPECT_TRUE(any.passed());
    EXPECT_DOUBLE_EQ(eval::score_smoke(smoke_prompt({.any = {"Paris"}}), "It is Rome.").score, 0.0);
    // all: partial credit.
    const auto all =
        eval::score_smoke(smoke_prompt({.all = {"red", "blue", "yellow", "green"}}), "red and blue");
    EXPECT_DOUBLE_EQ(all.score, 0.5);
    EXPECT_TRUE(contains(all.reasons[0], "missing 'yellow', 'green'")) << all.reasons[0];
    const auto none = eval::score_smoke(smoke_prompt({.any = {"positive"}, .none = {"negative"}}),
                                        "positive, not negative");
    EXPECT_DOUBLE_EQ(none.score, 0.5);
}

TEST(Smoke, FormChecksScaleTheContentScore) {
    // Three form checks (length, leakage, repetition): each failure costs a third.
    const auto leaked = eval::score_smoke(smoke_prompt({.any = {"Paris"}}), "Paris.\n### Instruction:\nNext");
    EXPECT_NEAR(leaked.score, 2.0 / 3, 1e-12);
    EXPECT_TRUE(contains(leaked.reasons[2], "template leaked: '### Instruction:'")) << leaked.reasons[2];
    EXPECT_NEAR(eval::score_smoke(smoke_prompt({}), "<|im_start|>assistant hi").score, 2.0 / 3, 1e-12);
    EXPECT_NEAR(eval::score_smoke(smoke_prompt({}), "Sure.\nHuman: and you?").score, 2.0 / 3, 1e-12);
    EXPECT_DOUBLE_EQ(eval::score_smoke(smoke_prompt({.check_leakage = false}), "### Response: x").score, 1.0);
    const auto long_answer = eval::score_smoke(smoke_prompt({.max_words = 3}), "one two three four");
    EXPECT_NEAR(long_answer.score, 2.0 / 3, 1e-12);
    EXPECT_NEAR(eval::score_smoke(smoke_prompt({.min_words = 5}), "too short").score, 2.0 / 3, 1e-12);
    const auto empty = eval::score_smoke(smoke_prompt({}), "  \n ");
    EXPECT_DOUBLE_EQ(empty.score, 0.0);
    EXPECT_EQ(empty.reasons.front(), "fail: empty output");
}

TEST(Smoke, RepetitionIsTheShareOfRepeatedNgrams) {
    EXPECT_DOUBLE_EQ(eval::repeated_ngram_ratio("a b c d e f", 3), 0.0);
    // "i am a cat" three times: 10 trigrams, 4 distinct.
    EXPECT_DOUBLE_EQ(eval::repeated_ngram_ratio("I am a cat. I am a cat. I am a cat.", 3), 0.6);
    EXPECT_DOUBLE_EQ(eval::repeated_ngram_ratio("i am a cat i am a cat i am a cat", 3), 0.6);
    EXPECT_DOUBLE_EQ(eval::repeated_ngram_ratio("the the the the the", 1), 0.8);
    EXPECT_DOUBLE_EQ(eval::repeated_ngram_ratio("two words", 3), 0.0);
    const auto loop = eval::score_smoke(smoke_prompt({.any = {"cat"}}), "i am a cat i am a cat i am a cat");
    EXPECT_NEAR(loop.score, 2.0 / 3, 1e-12);
    EXPECT_TRUE(contains(loop.reasons.back(), "fail: 60% of 3-grams repeat")) << loop.reasons.back();
}

TEST(Smoke, AggregatesPerCategoryAndOverall) {
    eval::SmokeSet set{{{"a", "reasoning", "p", {.any = {"5"}}},
                        {"b", "reasoning", "p", {.any = {"7"}}},
                        {"c", "creativity", "p", {}}}};
    std::vector<std::string> seen;
    const auto r = eval::run_smoke(set, [&](const std::vector<std::string>& prompts) {
        seen = prompts;
        return std::vector<std::string>{"it is 5", "it is 6", "a poem"};
    });
    EXPECT_EQ(seen.size(), 3u);
    ASSERT_EQ(r.categories.size(), 2u);
    EXPECT_EQ(r.categories[0].category, "reasoning");
    EXPECT_DOUBLE_EQ(r.categories[0].mean, 0.5);
    EXPECT_EQ(r.categories[0].passed, 1);
    EXPECT_DOUBLE_EQ(r.categories[1].mean, 1.0);
    EXPECT_EQ(r.overall.n, 3);
    EXPECT_DOUBLE_EQ(r.overall.mean, 2.0 / 3);
    EXPECT_EQ(r.overall.passed, 2);
    const auto m = eval::metrics(r);
    EXPECT_EQ(m[0].name, "smoke.score");
    EXPECT_EQ(m[2].name, "smoke.reasoning.score");
    EXPECT_EQ(eval::details(r).size(), 3u);
    EXPECT_TRUE(
        contains(error_of([&] { eval::score_smoke_outputs(set, {"one"}); }), "1 outputs for 3 prompts"));
}

TEST(Smoke, ShippedPromptsCoverEveryCategory) {
    const auto set =
        eval::load_smoke_prompts(fs::path(LUMI_SOURCE_DIR) / "presets" / "eval" / "smoke_prompts.json");
    EXPECT_GE(set.prompts.size(), 24u);
    std::map<std::string, int> per_category;
    for (const auto& p : set.prompts) ++per_category[p.category];
    EXPECT_EQ(per_category.size(), std::size(eval::smoke_categories));
    for (const auto category : eval::smoke_categories)
        EXPECT_GE(per_category[std::string(category)], 3) << category;
}

TEST(Smoke, PromptFilesAreReadStrictly) {
    const auto file = temporary("smoke.json", R"({"prompts": [{"id": "x", "category": "c", "prompt": "p",
                                                              "rule": {"anyy": ["a"]}}]})");
    const auto message = error_of([&] { eval::load_smoke_prompts(file); });
    EXPECT_TRUE(contains(message, "prompts[0].rule.anyy")) << message;
    EXPECT_TRUE(contains(message, "did you mean 'any'")) << message;
    const auto repeated =
        temporary("smoke2.json", R"({"prompts": [{"id": "x", "category": "c", "prompt": "p"},
                                                                  {"id": "x", "category": "c", "prompt": "q"}]})");
    EXPECT_TRUE(contains(error_of([&] { eval::load_smoke_prompts(repeated); }), "'x' is repeated"));
    fs::remove(file), fs::remove(repeated);
}

// results.json

eval::Results sample_results(double perplexity, double accuracy) {
    eval::Results r;
    r.info["model"] = "runs/x";
    r.add({{"wikitext.word_perplexity", perplexity, "exp(NLL / words)", 241335, "words", 12.5, false},
           {"boolq.accuracy", accuracy, "fraction correct", 3270, "examples", 40.0, true}});
    return r;
}

TEST(Results, WriteThenReadGivesTheSameMetrics) {
    const fs::path file =
        fs::temp_directory_path() / ("lumi_eval_test_results_" + std::to_string(::getpid())) / "results.json";
    auto r = sample_results(150.25, 0.625);
    r.details["smoke"] = boost::json::array{1, 2};
    eval::write_results(r, file);
    const auto back = eval::read_results(file);
    ASSERT_EQ(back.metrics.size(), 2u);
    EXPECT_EQ(back.metrics[0].name, "wikitext.word_perplexity");
    EXPECT_DOUBLE_EQ(back.metrics[0].value, 150.25);
    EXPECT_EQ(back.metrics[0].definition, "exp(NLL / words)");
    EXPECT_EQ(back.metrics[0].sample_size, 241335);
    EXPECT_EQ(back.metrics[0].sample_unit, "words");
    EXPECT_DOUBLE_EQ(back.metrics[0].seconds, 12.5);
    EXPECT_FALSE(back.metrics[0].higher_is_better);
    EXPECT_TRUE(back.metrics[1].higher_is_better);
    EXPECT_EQ(back.info.at("model").as_string(), "runs/x");
    EXPECT_EQ(back.details.at("smoke").as_array().size(), 2u);
    // A value read back compares as unchanged.
    auto precise = sample_results(1.8372700123456789e9, 1.0 / 3);
    eval::write_results(precise, file);
    const auto comparison = eval::compare(precise, eval::read_results(file));
    EXPECT_FALSE(contains(comparison, "better") || contains(comparison, "worse")) << comparison;
    fs::remove_all(file.parent_path());
}

TEST(Results, MissingFieldsNameTheMetric) {
    const auto file = temporary("bad_results.json", R"({"metrics": {"boolq.accuracy": {"value": 0.5}}})");
    const auto message = error_of([&] { eval::read_results(file); });
    EXPECT_TRUE(contains(message, "metrics.boolq.accuracy.definition")) << message;
    fs::remove(file);
}

TEST(Results, TableAndComparisonShowValuesAndDeltas) {
    const auto table = eval::format_table(sample_results(150.25, 0.625));
    EXPECT_TRUE(contains(table, "wikitext.word_perplexity")) << table;
    EXPECT_TRUE(contains(table, "150.25")) << table;
    EXPECT_TRUE(contains(table, "241335")) << table;
    auto sft = sample_results(160.0, 0.65);
    sft.add({{"smoke.score", 0.4, "mean", 32, "prompts", 3.0, true}});
    const auto comparison = eval::compare(sample_results(150.25, 0.625), sft, "pretrain", "sft");
    EXPECT_TRUE(contains(comparison, "pretrain")) << comparison;
    EXPECT_TRUE(contains(comparison, "+9.75")) << comparison;
    EXPECT_TRUE(contains(comparison, "+0.025")) << comparison;
    EXPECT_TRUE(contains(comparison, "+4%")) << comparison;
    EXPECT_TRUE(contains(comparison, "smoke.score")) << comparison;
    // Perplexity rose (worse); accuracy rose (better).
    const auto lines = comparison.substr(comparison.find("wikitext"));
    EXPECT_TRUE(contains(lines.substr(0, lines.find('\n')), "worse")) << comparison;
    const auto accuracy = comparison.substr(comparison.find("boolq"));
    EXPECT_TRUE(contains(accuracy.substr(0, accuracy.find('\n')), "better")) << comparison;
}

}  // namespace
