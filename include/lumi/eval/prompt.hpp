#pragma once

#include <string>
#include <vector>

#include "lumi/data/sft.hpp"

namespace lumi::eval {

// How a user's prompt is shown to the model: as is, or in the instruction template it was tuned on.
enum class PromptTemplate { raw, instruct, chatml, chat };

inline std::string apply_template(PromptTemplate t, const std::string& prompt) {
    using data::ChatTemplate;
    switch (t) {
        case PromptTemplate::raw:
            return prompt;
        case PromptTemplate::instruct:
            return data::prompt_text(ChatTemplate::instruct, prompt);
        case PromptTemplate::chatml:
            return data::prompt_text(ChatTemplate::chatml, prompt);
        case PromptTemplate::chat:
            return data::prompt_text(ChatTemplate::chat, prompt);
    }
    return prompt;
}

// The template's own markers end an answer: the model must not write the next turn.
inline std::vector<std::string> template_stops(PromptTemplate t) {
    switch (t) {
        case PromptTemplate::instruct:
            return {"### Instruction:", "### Response:", "### Input:"};
        case PromptTemplate::chatml:
            return {"<|im_end|>", "<|im_start|>"};
        case PromptTemplate::chat:
            return {"\nHuman:", "\nAssistant:"};
        case PromptTemplate::raw:
            return {};
    }
    return {};
}

}  // namespace lumi::eval
