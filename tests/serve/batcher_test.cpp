#include "lumi/model/transformer.hpp"
#include "lumi/serve/engine.hpp"
#include "test_specs.hpp"

namespace {

using namespace std::chrono_literals;
using lumi::serve::Event;
using lumi::serve::Request;
using lumi::serve::Stream;
constexpr lumi::ModelSpec spec = lumi::test::gqa;  // context 48
using Model = lumi::Transformer<spec>;

std::string decode(const std::vector<int>& tokens) {
    std::string text;
    for (int t : tokens) text += std::to_string(t) + " ";
    return text;
}

std::vector<int> prompt_of(std::size_t length, int salt) {
    std::vector<int> ids{1};
    for (std::size_t i = 1; i < length; ++i) ids.push_back(int((i * 7 + std::size_t(salt) * 13) % 58) + 3);
    return ids;
}

// What the request gives alone, through eval::generate_ids.
std::string alone(Model& model, const Request& r) {
    const auto out = lumi::eval::generate_ids(model, {r.prompt}, r.sampling, /*eos_id=*/2, decode);
    return out.front().text + "|" + out.front().finish_reason;
}

// Every event of a stream until its last: the text and the finish reason.
std::string read_all(Stream& stream, Event* last = nullptr) {
    std::string text;
    for (int waits = 0; waits < 2000; ++waits)
        for (auto& e : stream.take(10ms)) {
            text += e.text;
            if (e.last) {
                if (last) *last = e;
                return text + "|" + e.finish_reason;
            }
        }
    return text + "|(no last event)";
}

Request request(std::size_t length, std::int64_t max_new, int salt) {
    // No EOS stop: each request runs its full length, so the rows move where the test says.
    return Request{.prompt = prompt_of(length, salt),
                   .sampling = {.max_new_tokens = max_new, .stop_at_eos = false}};
}

TEST(Batcher, RequestsJoiningAndMovingInTheCacheGetWhatTheyGetAlone) {
    Model model(lumi::InitSettings{.seed = 5});
    lumi::serve::Batcher<Model> batcher(model, 2, decode, 4);
    const auto a = request(5, 40, 1), d = request(30, 18, 2), c = request(3, 10, 3);
    auto sa = std::make_shared<Stream>(), sd = std::make_shared<Stream>(), sc = std::make_shared<Stream>();
    batcher.add(a, sa);
    for (int i = 0; i < 20; ++i) batcher.step();
    batcher.add(d, sd);  // longer than every row so far: the rows move right
    batcher.add(c, sc);  // joins right-aligned, masked from the row's older contents
    EXPECT_EQ(batcher.active(), 3);
    while (!batcher.idle()) batcher.step();  // a reaches the context's end: the rows move left
    EXPECT_EQ(batcher.counters().shifts, 2u);
    EXPECT_EQ(read_all(*sa), alone(model, a));
    EXPECT_EQ(read_all(*sd), alone(model, d));
    EXPECT_EQ(read_all(*sc), alone(model, c));
    EXPECT_EQ(batcher.counters().completed, 3u);
    EXPECT_EQ(batcher.counters().prompt_tokens, 38u);
}

TEST(Batcher, SampledRequestsAreSeededAndStopStringsEndThem) {
    Model model(lumi::InitSettings{.seed = 6});
    lumi::serve::Batcher<Model> batcher(model, 2, decode, 2);
    Request sampled = request(6, 12, 4);
    sampled.sampling.temperature = 0.8;
    sampled.sampling.top_p = 0.9;
    sampled.sampling.seed = 11;
    Request greedy = request(9, 20, 5);
    const std::string expected = alone(model, greedy);
    // The third token of the greedy answer as a stop string: the answer ends before it.
    const auto first = expected.substr(0, expected.find(' ') + 1);
    greedy.sampling.stop = {
        expected.substr(first.size(), expected.find(' ', first.size()) + 1 - first.size())};
    auto s1 = std::make_shared<Stream>(), s2 = std::make_shared<Stream>();
    batcher.add(sampled, s1);
    batcher.add(greedy, s2);
    while (!batcher.idle()) batcher.step();
    EXPECT_EQ(read_all(*s1), alone(model, sampled));
    EXPECT_EQ(read_all(*s2), alone(model, greedy));
}

TEST(Batcher, ACancelledRequestLeavesAtTheNextStep) {
    Model model(lumi::InitSettings{.seed = 7});
    lumi::serve::Batcher<Model> batcher(model, 2, decode, 2);
    auto keep = std::make_shared<Stream>(), gone = std::make_shared<Stream>();
    const auto kept = request(4, 20, 6);
    batcher.add(request(8, 20, 7), gone);
    batcher.add(kept, keep);
    batcher.step();
    gone->cancel();
    batcher.step();
    EXPECT_EQ(batcher.active(), 1);
    Event last;
    read_all(*gone, &last);
    EXPECT_EQ(last.finish_reason, "cancelled");
    EXPECT_EQ(last.completion_tokens, 2u);
    while (!batcher.idle()) batcher.step();
    EXPECT_EQ(read_all(*keep), alone(model, kept));                   // moved into the freed row 0
    EXPECT_THROW(batcher.add(request(40, 9, 8), keep), lumi::Error);  // 40 + 9 > 48
}

TEST(Batcher, SamplesOnlyTheTokenizersIds) {
    Model model(lumi::InitSettings{.seed = 10});
    lumi::serve::Batcher<Model> batcher(model, 2, decode, 2, /*vocabulary=*/12);
    Request sampled = request(5, 40, 9);
    sampled.sampling.temperature = 1.5;  // flat enough to reach every id
    auto stream = std::make_shared<Stream>();
    batcher.add(sampled, stream);
    while (!batcher.idle()) batcher.step();
    std::istringstream tokens(read_all(*stream));
    int count = 0;
    for (int id; tokens >> id; ++count) EXPECT_LT(id, 12);
    EXPECT_EQ(count, 40);
}

TEST(Engine, ConcurrentRequestsAreAnsweredAsAloneAndTheQueueIsBounded) {
    Model model(lumi::InitSettings{.seed = 8});
    std::vector<Request> requests;
    for (int i = 0; i < 3; ++i) requests.push_back(request(3 + std::size_t(i) * 5, 30, 10 + i));
    std::vector<std::string> expected;
    for (const auto& r : requests) expected.push_back(alone(model, r));
    lumi::serve::Engine<Model> engine(model, 2, decode, {.max_batch = 2, .max_queue = 1});
    std::vector<std::shared_ptr<Stream>> streams;
    for (const auto& r : requests) streams.push_back(engine.submit(r));
    EXPECT_THROW(engine.submit(requests[0]), lumi::serve::Busy);  // 2 rows + 1 waiting are taken
    for (std::size_t i = 0; i < streams.size(); ++i) EXPECT_EQ(read_all(*streams[i]), expected[i]) << i;
    auto status = engine.status();  // updated after the step that sent the last events
    for (int i = 0; i < 200 && status.counters.completed < 3; ++i, status = engine.status())
        std::this_thread::sleep_for(5ms);
    EXPECT_EQ(status.submitted, 3u);
    EXPECT_EQ(status.counters.completion_tokens, 90u);
    EXPECT_EQ(status.counters.first_tokens, 3u);
}

TEST(Engine, ShutdownEndsWhatCannotFinishInTime) {
    Model model(lumi::InitSettings{.seed = 9});
    lumi::serve::Engine<Model> engine(model, 2, decode, {.max_batch = 1, .max_queue = 4});
    const Request slow = request(3, 44, 1);
    auto running = engine.submit(slow);
    auto waiting = engine.submit(slow);
    engine.shutdown(0ms);
    Event last;
    read_all(*waiting, &last);
    EXPECT_EQ(last.finish_reason, "shutdown");
    EXPECT_THROW(engine.submit(slow), lumi::serve::Busy);
    read_all(*running, &last);
    EXPECT_TRUE(last.finish_reason == "shutdown" || last.finish_reason == "length") << last.finish_reason;
}

}  // namespace
