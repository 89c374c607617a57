#pragma once
// The chat templates, in one place: how a prompt and its answer are written for fine-tuning (data/sft.hpp),
// for generation and evaluation (eval/prompt.hpp) and for serving, and the markers that end an answer.
//   instruct: `### Instruction:\n{prompt}\n\n[### Input:\n{context}\n\n]### Response:\n{response}`
//   chatml:   `<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>`
//   chat:     `Human: {prompt}\n\nAssistant: {response}`
// each followed by EOS; later turns repeat the pattern after a separator.
#include <string>
#include <string_view>
#include <vector>

namespace lumi::data {

enum class ChatTemplate { instruct, chatml, chat };

// The prompt part of turn `index` (with its leading separator for later turns): what a generator feeds the
// model before letting it answer. `context` (Alpaca input, a system message) goes with the prompt.
inline std::string prompt_text(ChatTemplate kind, std::string_view prompt, std::string_view context = {},
                               std::size_t index = 0) {
    std::string text, user(prompt);
    if (kind != ChatTemplate::instruct && !context.empty()) user += "\n\n" + std::string(context);
    switch (kind) {
        case ChatTemplate::instruct:
            text =
                (index > 0 ? "\n\n" : "") + std::string("### Instruction:\n") + std::string(prompt) + "\n\n";
            if (!context.empty()) text += "### Input:\n" + std::string(context) + "\n\n";
            return text + "### Response:\n";
        case ChatTemplate::chatml:
            return (index > 0 ? "\n" : "") + std::string("<|im_start|>user\n") + user +
                   "<|im_end|>\n<|im_start|>assistant\n";
        case ChatTemplate::chat:
            return (index > 0 ? "\n\n" : "") + std::string("Human: ") + user + "\n\nAssistant: ";
    }
    return text;
}

inline std::string response_text(ChatTemplate kind, std::string_view response) {
    return kind == ChatTemplate::chatml ? std::string(response) + "<|im_end|>" : std::string(response);
}

// The template's own markers end an answer: the model must not write the next turn.
inline std::vector<std::string> template_stops(ChatTemplate kind) {
    switch (kind) {
        case ChatTemplate::instruct:
            return {"### Instruction:", "### Response:", "### Input:"};
        case ChatTemplate::chatml:
            return {"<|im_end|>", "<|im_start|>"};
        case ChatTemplate::chat:
            return {"\nHuman:", "\nAssistant:"};
    }
    return {};
}

// Every template's markers: in an answer they mean the model went on to write the next turn itself.
inline constexpr std::string_view template_markers[] = {
    "### Instruction:", "### Input:", "### Response:", "<|im_start|>",
    "<|im_end|>",       "\nHuman:",   "\nAssistant:"};

}  // namespace lumi::data
