#include "lumi/eval/generate.hpp"
#include "../model/test_specs.hpp"
#include "lumi/data/sft.hpp"
#include "lumi/eval/prompt.hpp"
#include "lumi/model/transformer.hpp"
#include "test_errors.hpp"

namespace {

using lumi::eval::SamplingSettings;
constexpr lumi::ModelSpec spec = lumi::test::gqa;
using Model = lumi::Transformer<spec>;

// Always predicts (last token + 1) mod vocab: generation outcomes are known exactly.
struct CounterImpl : torch::nn::Module {
    static constexpr lumi::ModelSpec spec = lumi::test::mha;
    torch::Tensor weight = register_parameter("weight", torch::zeros({1}));
    torch::Tensor forward(const torch::Tensor& ids, const lumi::model::Context&) {
        return torch::one_hot((ids + 1).remainder(spec.vocab_size), spec.vocab_size).to(torch::kFloat32) *
               10.0;
    }
};
TORCH_MODULE(Counter);

TEST(Masks, SegmentAndPaddingMasksAllowExactlyTheRightKeys) {
    const auto segment = lumi::model::segment_mask(torch::tensor({{0, 0, 1, 1}}, torch::kInt32));
    const auto expected =
        torch::tensor({{1, 0, 0, 0}, {1, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 1, 1}}).to(torch::kBool);
    EXPECT_TRUE(torch::equal(segment.squeeze(), expected));
    const auto padding = lumi::model::padding_mask(torch::tensor({{false, true, true}}), 2);
    // Queries at positions 1 and 2 of 3; key 0 is padding.
    EXPECT_TRUE(torch::equal(padding.squeeze(), torch::tensor({{0, 1, 0}, {0, 1, 1}}).to(torch::kBool)));
}

TEST(Masks, PackedExamplesGiveTheLogitsTheyHaveAlone) {
    Model model(lumi::InitSettings{.seed = 4});
    model->eval();
    torch::NoGradGuard no_grad;
    const auto first = torch::tensor({{3, 9, 4, 1, 5}}, torch::kInt64);
    const auto second = torch::tensor({{7, 2, 8, 6}}, torch::kInt64);
    const auto packed = torch::cat({first, second}, 1);
    const auto segments = torch::tensor({{0, 0, 0, 0, 0, 1, 1, 1, 1}}, torch::kInt32);
    const auto logits =
        model->forward(packed, lumi::model::Context{.mask = lumi::model::segment_mask(segments)});
    EXPECT_TRUE(torch::allclose(logits.narrow(1, 0, 5), model->forward(first), 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(logits.narrow(1, 5, 4), model->forward(second), 1e-5, 1e-5));
}

TEST(KVCache, IncrementalLogitsEqualTheFullForward) {
    Model model(lumi::InitSettings{.seed = 2});
    model->eval();
    torch::NoGradGuard no_grad;
    const auto ids = torch::randint(spec.vocab_size, {2, 12}, lumi::make_generator(1), torch::kInt64);
    const auto full = model->forward(ids);
    lumi::model::KVCache cache(spec, 2, 12, torch::kFloat32);
    auto prefill = model->forward(ids.narrow(1, 0, 7), lumi::model::Context{.start = 0, .cache = &cache});
    EXPECT_TRUE(torch::allclose(prefill, full.narrow(1, 0, 7), 1e-5, 1e-5));
    for (std::int64_t t = 7; t < 12; ++t) {
        auto step = model->forward(ids.narrow(1, t, 1), lumi::model::Context{.start = t, .cache = &cache});
        EXPECT_TRUE(torch::allclose(step, full.narrow(1, t, 1), 1e-5, 1e-5)) << "position " << t;
    }
    EXPECT_THROW(model->forward(ids.narrow(1, 0, 1), lumi::model::Context{.start = 12, .cache = &cache}),
                 lumi::Error);
}

TEST(Generate, GreedyWithTheCacheEqualsRecomputingEachStep) {
    Model model(lumi::InitSettings{.seed = 7});
    const std::vector<std::vector<int>> prompts{{1, 5, 9, 13, 2, 7}, {1, 30}, {1, 44, 45, 46}};
    SamplingSettings s{.max_new_tokens = 16, .stop_at_eos = false};
    const auto cached = lumi::eval::generate_ids(model, prompts, s, 2);
    s.use_cache = false;
    const auto recomputed = lumi::eval::generate_ids(model, prompts, s, 2);
    for (std::size_t b = 0; b < prompts.size(); ++b) {
        EXPECT_EQ(cached[b].tokens.size(), 16u);
        EXPECT_EQ(cached[b].tokens, recomputed[b].tokens) << "prompt " << b;
        EXPECT_EQ(cached[b].finish_reason, "length");
    }
    // A prompt generated alone continues as it does inside the padded batch.
    const auto alone = lumi::eval::generate_ids(
        model, {prompts[1]}, SamplingSettings{.max_new_tokens = 16, .stop_at_eos = false}, 2);
    EXPECT_EQ(alone[0].tokens, cached[1].tokens);
}

TEST(Generate, TopKOfOneIsGreedyAndSamplingIsSeeded) {
    Model model(lumi::InitSettings{.seed = 7});
    const std::vector<std::vector<int>> prompts{{1, 5, 9}};
    const auto greedy =
        lumi::eval::generate_ids(model, prompts, {.max_new_tokens = 10, .stop_at_eos = false}, 2);
    const auto top1 = lumi::eval::generate_ids(
        model, prompts, {.max_new_tokens = 10, .temperature = 1.3, .top_k = 1, .stop_at_eos = false}, 2);
    EXPECT_EQ(greedy[0].tokens, top1[0].tokens);
    SamplingSettings hot{.max_new_tokens = 10, .temperature = 1.5, .seed = 11, .stop_at_eos = false};
    EXPECT_EQ(lumi::eval::generate_ids(model, prompts, hot, 2)[0].tokens,
              lumi::eval::generate_ids(model, prompts, hot, 2)[0].tokens);
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
    const auto logits = torch::log(torch::tensor({{0.05, 0.5, 0.15, 0.3}}));
    const auto kept = [&](double p) {
        return torch::isfinite(lumi::eval::top_p_filter(logits, p)).to(torch::kInt64);
    };
    EXPECT_TRUE(torch::equal(kept(0.5), torch::tensor({{0, 1, 0, 0}}, torch::kInt64)));
    EXPECT_TRUE(torch::equal(kept(0.79), torch::tensor({{0, 1, 0, 1}}, torch::kInt64)));
    EXPECT_TRUE(torch::equal(kept(0.81), torch::tensor({{0, 1, 1, 1}}, torch::kInt64)));
    EXPECT_TRUE(torch::equal(kept(0.01), torch::tensor({{0, 1, 0, 0}}, torch::kInt64)));
    const auto top2 = torch::isfinite(lumi::eval::top_k_filter(logits, 2)).to(torch::kInt64);
    EXPECT_TRUE(torch::equal(top2, torch::tensor({{0, 1, 0, 1}}, torch::kInt64)));
}

TEST(Sampling, RepetitionPenaltyLowersSeenLogits) {
    const auto logits = torch::tensor({{2.0, -2.0, 1.0}});
    const auto seen = torch::tensor({{true, true, false}});
    const auto out = lumi::eval::apply_repetition_penalty(logits, seen, 2.0);
    EXPECT_TRUE(torch::equal(out, torch::tensor({{1.0, -4.0, 1.0}})));
}

TEST(Generate, StopsAtEosAndAtStopStringsWhichNeverReachTheOutput) {
    Counter model;
    const auto letters = [](const std::vector<int>& tokens) {
        std::string text;
        for (int t : tokens) text += char('a' + t % 26);
        return text;
    };
    // From 3 the counter emits 4, 5, 6, ...; EOS = 7 ends after 4, 5, 6.
    auto eos = lumi::eval::generate_ids(model, {{1, 3}}, {.max_new_tokens = 10}, 7, letters);
    EXPECT_EQ(eos[0].tokens, (std::vector<int>{4, 5, 6}));
    EXPECT_EQ(eos[0].finish_reason, "eos");
    std::string streamed;
    auto stopped = lumi::eval::generate_ids(
        model, {{1, 3}}, {.max_new_tokens = 10, .stop_at_eos = false, .stop = {"ghi"}}, 7, letters,
        [&](std::size_t, const std::string& delta) { streamed += delta; });
    EXPECT_EQ(stopped[0].text, "ef");  // e f g h i: cut before "ghi"
    EXPECT_EQ(stopped[0].finish_reason, "stop");
    EXPECT_EQ(streamed, "ef");
}

TEST(Generate, RejectsSettingsThatCannotWork) {
    Model model;
    EXPECT_THROW(lumi::eval::generate_ids(model, {{1}}, {.max_new_tokens = spec.context}, 2), lumi::Error);
    EXPECT_THROW(lumi::eval::generate_ids(model, {{1}}, {.top_p = 0.0}, 2), lumi::config::FieldError);
}

TEST(StopScanner, HoldsBackATailThatCouldStillBecomeAStopString) {
    lumi::eval::StopScanner scanner;
    const std::vector<std::string> stops{"\nHuman:"};
    std::string text = "Hello";
    EXPECT_EQ(scanner.update(text, stops).delta, "Hello");
    text = "Hello\nHu";
    auto update = scanner.update(text, stops);
    EXPECT_FALSE(update.stopped);
    EXPECT_EQ(update.delta, "");  // "\nHu" may be the start of "\nHuman:"
    text = "Hello\nHug";
    EXPECT_EQ(scanner.update(text, stops).delta, "\nHug");
    text = "Hello\nHug\nHuman: and";
    update = scanner.update(text, stops);
    EXPECT_TRUE(update.stopped);
    EXPECT_EQ(text, "Hello\nHug");
    EXPECT_EQ(update.delta, "");
}

using lumi::eval::ChatMessage;
using lumi::eval::PromptTemplate;

TEST(ChatPrompt, MultiTurnPiecesAreTheFineTuningTemplate) {
    const std::vector<ChatMessage> one{{"user", "Name a colour."}};
    // A single turn is exactly what lumi_generate feeds for the same prompt and template.
    for (auto t :
         {PromptTemplate::raw, PromptTemplate::instruct, PromptTemplate::chatml, PromptTemplate::chat}) {
        const auto pieces = lumi::eval::chat_pieces(t, one);
        ASSERT_EQ(pieces.size(), 1u);
        EXPECT_EQ(pieces[0], lumi::eval::apply_template(t, "Name a colour."));
    }
    const std::vector<ChatMessage> three{
        {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}};
    const auto pieces = lumi::eval::chat_pieces(PromptTemplate::chatml, three);
    ASSERT_EQ(pieces.size(), 3u);
    EXPECT_EQ(pieces[0], "<|im_start|>user\nHi\n\nBe brief.<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(pieces[1], "Hello.<|im_end|>");
    EXPECT_EQ(pieces[2], "\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
    // The same turns as data::render gives the SFT data, less the last answer.
    lumi::data::Conversation c{.context = "Be brief.", .turns = {{"Hi", "Hello."}, {"Bye", "x"}}};
    const auto rendered = lumi::data::render(c, lumi::data::ChatTemplate::chat);
    const auto chat = lumi::eval::chat_pieces(PromptTemplate::chat, three);
    ASSERT_EQ(chat.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(chat[i], rendered[i].text) << i;
    // Trimming drops the oldest turn and keeps the system text with the first kept prompt.
    const auto trimmed = lumi::eval::chat_pieces(PromptTemplate::chatml, three, 1);
    ASSERT_EQ(trimmed.size(), 1u);
    EXPECT_EQ(trimmed[0], "<|im_start|>user\nBye\n\nBe brief.<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatPrompt, TrimsTheOldestTurnsToFitAndNamesBadMessages) {
    const auto encode = [](std::string_view text) {
        return std::vector<int>(text.size(), 7);
    };  // a token a byte
    const std::vector<ChatMessage> messages{
        {"user", std::string(40, 'a')}, {"assistant", std::string(40, 'b')}, {"user", "c"}};
    const auto full = lumi::eval::chat_prompt(PromptTemplate::raw, messages, encode, 1, 1000);
    EXPECT_EQ(full.dropped_turns, 0u);
    EXPECT_EQ(full.ids.size(), 1u + 40 + 41 + 2);
    EXPECT_EQ(full.ids.front(), 1);
    const auto trimmed = lumi::eval::chat_prompt(PromptTemplate::raw, messages, encode, 1, 20);
    EXPECT_EQ(trimmed.dropped_turns, 1u);
    EXPECT_EQ(trimmed.ids.size(), 2u);
    EXPECT_CONTAINS(
        lumi::test::error_of([&] {
            lumi::eval::chat_prompt(PromptTemplate::raw, {{"user", std::string(30, 'x')}}, encode, 1, 20);
        }),
        "the prompt is 31 tokens; with the answer's budget the context has room for 20");
    EXPECT_CONTAINS(lumi::test::error_of([&] {
                        lumi::eval::chat_pieces(PromptTemplate::chat, {{"user", "a"}, {"user", "b"}});
                    }),
                    "messages[1].role: expected 'assistant'");
    EXPECT_CONTAINS(lumi::test::error_of([&] {
                        lumi::eval::chat_pieces(PromptTemplate::chat, {{"user", "a"}, {"tool", "b"}});
                    }),
                    "messages[1].role: unknown role 'tool'");
    EXPECT_CONTAINS(lumi::test::error_of([&] {
                        lumi::eval::chat_pieces(PromptTemplate::chat, {{"user", "a"}, {"assistant", "b"}});
                    }),
                    "messages: the last message must be the user's");
}

}  // namespace
