#pragma once

// BoolQ (Clark et al., 2019) zero-shot, as lm-evaluation-harness's `boolq` task: the model reads
// `{passage}\nQuestion: {question}?\nAnswer:` and the answer is whichever of " yes" and " no" has the
// higher log-likelihood. Accuracy is reported with its standard error and the majority-class baseline of the
// same examples: an accuracy below that baseline means the model has learnt nothing usable for the task.
//
//   auto result = lumi::eval::boolq(model, tokenizer, {.file = "boolq/validation.json", .limit = 500});

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include <lumi/config/config.hpp>
#include <lumi/core/error.hpp>
#include <lumi/core/files.hpp>
#include <lumi/core/parallel.hpp>
#include <lumi/eval/results.hpp>
#include <lumi/eval/scoring.hpp>

namespace lumi::eval {

struct BoolqExample {
    std::string question;
    std::string passage;
    bool answer = false;
};

struct BoolqSettings {
    std::filesystem::path file{};  // a JSON array or JSON Lines of {question, passage, answer}
    std::int64_t limit = 0;        // the first examples only; 0 = all
    std::int64_t batch = 8;        // rows per forward pass
    std::int64_t window = 0;  // the longest input; 0 = the model's context; longer prompts lose their start
    Prefix prefix = Prefix::eos;  // before the prompt (lm-eval puts nothing: `none`)

    void validate() const {
        using lumi::config::FieldError;
        if (limit < 0) throw FieldError("limit", "must be >= 0 (0: every example)");
        if (batch < 1) throw FieldError("batch", "must be at least 1");
        if (window < 0) throw FieldError("window", "must be >= 0 (0: the model's context)");
    }
};

struct BoolqPrediction {
    double yes = 0, no = 0;  // ln p(" yes" | prompt), ln p(" no" | prompt)
    bool predicted = false;  // yes > no: ties go to "no", lm-eval's argmax over [no, yes]
    bool answer = false;
    bool truncated = false;  // the passage lost its start to fit the window
};

struct BoolqResult {
    std::string file;
    std::int64_t n = 0, correct = 0, truncated = 0;
    std::int64_t answer_yes = 0, predicted_yes = 0;
    double accuracy = 0;
    double standard_error = 0;     // sqrt(accuracy (1 - accuracy) / n)
    double majority_baseline = 0;  // the accuracy of always answering the more frequent answer
    bool majority_answer = true;
    std::int64_t tokens = 0;  // input tokens run through the model
    double seconds = 0;
    std::vector<BoolqPrediction> predictions;

    // Counts and figures from predictions.
    void finish() {
        n = static_cast<std::int64_t>(predictions.size());
        correct = truncated = answer_yes = predicted_yes = 0;
        for (const auto& p : predictions) {
            correct += p.predicted == p.answer;
            truncated += p.truncated;
            answer_yes += p.answer;
            predicted_yes += p.predicted;
        }
        if (n == 0) return;
        const double count = static_cast<double>(n);
        accuracy = static_cast<double>(correct) / count;
        standard_error = std::sqrt(accuracy * (1 - accuracy) / count);
        majority_answer = 2 * answer_yes >= n;
        majority_baseline = static_cast<double>(majority_answer ? answer_yes : n - answer_yes) / count;
    }
};

// lm-eval's boolq prompt (its doc_to_text), the question as given plus "?".
inline std::string boolq_prompt(const BoolqExample& example) {
    return example.passage + "\nQuestion: " + example.question + "?\nAnswer:";
}

namespace detail {

// One example from a JSON object; `where` names the file and line or index. `answer` is a boolean; the
// SuperGLUE layout's `label` (1 = true) is accepted in its place.
inline BoolqExample boolq_example(const boost::json::value& value, const std::string& where) {
    const auto* object = value.if_object();
    if (!object) throw lumi::Error(where + ": expected an object with question, passage and answer");
    BoolqExample example;
    for (const auto& [key, out] : {std::pair{"question", &example.question}, {"passage", &example.passage}}) {
        const auto* field = object->if_contains(key);
        if (!field) throw lumi::Error(where + ": missing field '" + key + "' (a string)");
        if (!field->is_string()) throw lumi::Error(where + ": field '" + key + "' must be a string");
        *out = std::string(field->as_string());
    }
    if (const auto* answer = object->if_contains("answer")) {
        if (!answer->is_bool())
            throw lumi::Error(where + ": field 'answer' must be a boolean (true or false)");
        example.answer = answer->as_bool();
    } else if (const auto* label = object->if_contains("label")) {
        if (!label->is_int64() || (label->as_int64() != 0 && label->as_int64() != 1))
            throw lumi::Error(where + ": field 'label' must be 0 or 1");
        example.answer = label->as_int64() == 1;
    } else {
        throw lumi::Error(where + ": missing field 'answer' (a boolean)");
    }
    return example;
}

}  // namespace detail

// The examples of a JSON array (BoolQ as Hugging Face datasets exports it) or of JSON Lines; at most
// `limit` of them (0: all). Errors name the file and the line (JSON Lines) or the index (array).
inline std::vector<BoolqExample> read_boolq(const std::filesystem::path& file, std::size_t limit = 0) {
    const std::string text = lumi::read_file(file);
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) throw lumi::Error(file.string() + ": no examples: the file is empty");
    std::vector<BoolqExample> examples;
    if (text[first] == '[') {
        const boost::json::value root = lumi::config::read_json_file(file);
        const auto& array = root.as_array();
        for (std::size_t i = 0; i < array.size() && (limit == 0 || examples.size() < limit); ++i)
            examples.push_back(
                detail::boolq_example(array[i], file.string() + ": example [" + std::to_string(i) + "]"));
    } else {
        std::size_t line_number = 0;
        for (std::size_t begin = 0; begin < text.size() && (limit == 0 || examples.size() < limit);) {
            const std::size_t end = std::min(text.find('\n', begin), text.size());
            const std::string_view line(text.data() + begin, end - begin);
            ++line_number;
            begin = end + 1;
            if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
            const std::string where = file.string() + ":" + std::to_string(line_number);
            boost::json::error_code error;
            const boost::json::value value = boost::json::parse(line, error);
            if (error) throw lumi::Error(where + ": invalid JSON: " + error.message());
            examples.push_back(detail::boolq_example(value, where));
        }
    }
    if (examples.empty()) throw lumi::Error(file.string() + ": no examples");
    return examples;
}

// Scores the examples; predictions keep the file's order.
template <class Model, class Tok>
BoolqResult boolq(Model& model, const Tok& tokenizer, const std::vector<BoolqExample>& examples,
                  const BoolqSettings& settings, const Progress& progress = {}) {
    const auto start = std::chrono::steady_clock::now();
    settings.validate();
    const std::int64_t window = resolve_window<Model>(settings.window, "boolq");
    const std::optional<int> prefix = prefix_id(tokenizer, settings.prefix);

    // Each continuation's tokens are the tail of encode(prompt + continuation) past encode(prompt)'s length
    // (lm-eval's split): SentencePiece's dummy prefix would add a second space to " yes" encoded alone.
    constexpr std::string_view choices[] = {" yes", " no"};
    std::vector<ContinuationRequest> requests(2 * examples.size());
    lumi::parallel_for(examples.size(), lumi::default_threads(), [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) {
            const std::string prompt = boolq_prompt(examples[i]);
            const std::size_t context_length = tokenizer.encode(prompt).size();
            for (std::size_t c = 0; c < 2; ++c) {
                const std::vector<int> whole = tokenizer.encode(prompt + std::string(choices[c]));
                if (whole.size() <= context_length)
                    throw lumi::Error("boolq: example " + std::to_string(i) + ": '" +
                                      std::string(choices[c]) + "' encodes to no tokens after the prompt");
                auto& request = requests[2 * i + c];
                if (prefix) request.context.push_back(*prefix);
                request.context.insert(request.context.end(), whole.begin(),
                                       whole.begin() + static_cast<std::ptrdiff_t>(context_length));
                request.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(context_length),
                                            whole.end());
            }
        }
    });
    // Progress counts rows: one per example when the two answers can share one, else two.
    const auto scored =
        score_continuations(model, requests, window, prefix ? 1 : 0, settings.batch, progress);
    const auto& scores = scored.scores;

    BoolqResult result;
    result.file = settings.file.string();
    result.predictions.resize(examples.size());
    for (std::size_t i = 0; i < examples.size(); ++i) {
        auto& p = result.predictions[i];
        p.yes = scores[2 * i].logprob;
        p.no = scores[2 * i + 1].logprob;
        p.predicted = p.yes > p.no;
        p.answer = examples[i].answer;
        p.truncated = scores[2 * i].truncated || scores[2 * i + 1].truncated;
    }
    result.tokens = scored.inputs;
    result.finish();
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

// BoolQ from settings.file.
template <class Model, class Tok>
BoolqResult boolq(Model& model, const Tok& tokenizer, const BoolqSettings& settings,
                  const Progress& progress = {}) {
    if (settings.file.empty())
        throw lumi::Error("boolq: file: is required (e.g. ../shared/data/boolq/validation.json)");
    auto result = boolq(model, tokenizer, read_boolq(settings.file, static_cast<std::size_t>(settings.limit)),
                        settings, progress);
    result.file = settings.file.string();
    return result;
}

inline std::vector<Metric> metrics(const BoolqResult& r, std::string_view task = "boolq") {
    const std::string t(task);
    const std::string rule =
        "prediction = whichever of ' yes' and ' no' has the higher summed log-likelihood of its tokens after "
        "'{passage}\\nQuestion: {question}?\\nAnswer:' (lm-eval's boolq, zero-shot); " +
        std::to_string(r.truncated) + " of " + std::to_string(r.n) + " prompts cut from the left to fit; " +
        r.file;
    return {
        {t + ".accuracy", r.accuracy, "fraction of examples predicted correctly; " + rule, r.n, "examples",
         r.seconds, true},
        {t + ".accuracy_stderr", r.standard_error, "sqrt(accuracy * (1 - accuracy) / n)", r.n, "examples",
         r.seconds, false},
        {t + ".majority_baseline", r.majority_baseline,
         std::string("fraction of the same examples whose answer is the more frequent one (") +
             (r.majority_answer ? "yes" : "no") + "): the accuracy of a constant guess",
         r.n, "examples", r.seconds, true},
    };
}

}  // namespace lumi::eval
