#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lumi/core/error.hpp"
#include "lumi/data/chat_template.hpp"

namespace lumi::eval {

// How a user's prompt is shown to the model: as is, or in the instruction template it was tuned on.
enum class PromptTemplate { raw, instruct, chatml, chat };

// The fine-tuning template a prompt template stands for; none for raw prompts.
inline std::optional<data::ChatTemplate> chat_template_of(PromptTemplate t) {
    switch (t) {
        case PromptTemplate::raw:
            return std::nullopt;
        case PromptTemplate::instruct:
            return data::ChatTemplate::instruct;
        case PromptTemplate::chatml:
            return data::ChatTemplate::chatml;
        case PromptTemplate::chat:
            return data::ChatTemplate::chat;
    }
    return std::nullopt;
}

inline std::string apply_template(PromptTemplate t, const std::string& prompt) {
    const auto kind = chat_template_of(t);
    return kind ? data::prompt_text(*kind, prompt) : prompt;
}

// The template's own markers end an answer (data::template_stops); none for raw prompts.
inline std::vector<std::string> template_stops(PromptTemplate t) {
    const auto kind = chat_template_of(t);
    return kind ? data::template_stops(*kind) : std::vector<std::string>{};
}

// One message of a conversation, as OpenAI's API has them: role "system", "user" or "assistant".
struct ChatMessage {
    std::string role;
    std::string content;
};

// A conversation as the model saw conversations in fine-tuning (data::render): system text with the first
// prompt, each answer after its prompt, the last prompt left open for the answer. Pieces are encoded one by
// one, as in training, so the token boundaries are the trained ones. Messages: system ones first, then user
// and assistant alternating, ending with user; `first_turn` drops the turns before it (history trimming).
inline std::vector<std::string> chat_pieces(PromptTemplate t, const std::vector<ChatMessage>& messages,
                                            std::size_t first_turn = 0) {
    std::string system;
    std::vector<const ChatMessage*> turns;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        const std::string field = "messages[" + std::to_string(i) + "]";
        if (m.role == "system") {
            if (!turns.empty()) throw Error(field + ".role: a system message must come before the others");
            system += (system.empty() ? "" : "\n\n") + m.content;
            continue;
        }
        const char* expected = turns.size() % 2 == 0 ? "user" : "assistant";
        if (m.role != "user" && m.role != "assistant")
            throw Error(field + ".role: unknown role '" + m.role + "' (expected system, user or assistant)");
        if (m.role != expected)
            throw Error(field + ".role: expected '" + expected + "' (user and assistant messages alternate)");
        turns.push_back(&m);
    }
    if (turns.empty() || turns.size() % 2 == 0) throw Error("messages: the last message must be the user's");
    std::vector<std::string> pieces;
    const std::size_t from = std::min(2 * first_turn, turns.size() - 1);
    for (std::size_t i = from; i < turns.size(); i += 2) {
        const std::size_t index = (i - from) / 2;
        const std::string_view context = index == 0 ? std::string_view(system) : std::string_view();
        const std::string& prompt = turns[i]->content;
        if (const auto kind = chat_template_of(t)) {
            pieces.push_back(data::prompt_text(*kind, prompt, context, index));
            if (i + 1 < turns.size()) pieces.push_back(data::response_text(*kind, turns[i + 1]->content));
        } else {
            pieces.push_back((index > 0 ? "\n" : "") +
                             (context.empty() ? prompt : std::string(context) + "\n\n" + prompt));
            if (i + 1 < turns.size()) pieces.push_back("\n" + turns[i + 1]->content);
        }
    }
    return pieces;
}

struct ChatPrompt {
    std::vector<int> ids;       // BOS and the encoded pieces
    std::size_t dropped_turns;  // oldest turns left out to fit
};

// The conversation's tokens within `room` tokens (the context less the answer's budget): the oldest turns go
// first; the system text stays. Throws when the last prompt alone does not fit.
inline ChatPrompt chat_prompt(PromptTemplate t, const std::vector<ChatMessage>& messages,
                              const std::function<std::vector<int>(std::string_view)>& encode, int bos_id,
                              std::size_t room) {
    std::size_t turns = 0;
    for (const auto& m : messages) turns += m.role == "user";
    for (std::size_t first = 0;; ++first) {
        ChatPrompt prompt{{bos_id}, first};
        for (const auto& piece : chat_pieces(t, messages, first)) {
            const auto ids = encode(piece);
            prompt.ids.insert(prompt.ids.end(), ids.begin(), ids.end());
        }
        if (prompt.ids.size() <= room) return prompt;
        if (first + 1 >= turns)
            throw Error("messages: the prompt is " + std::to_string(prompt.ids.size()) +
                        " tokens; with the answer's budget the context has room for " + std::to_string(room));
    }
}

}  // namespace lumi::eval
