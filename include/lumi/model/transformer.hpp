#pragma once

#include <cmath>
#include <optional>
#include <sstream>
#include <type_traits>
#include <vector>

#include <lumi/model/block.hpp>
#include <lumi/model/loss.hpp>

namespace lumi::model {

struct InitSettings {
    std::uint64_t seed = 0;
    double std = 0.02;  // residual output projections (o, down) get std / sqrt(2 n_layer), as GPT-2
};

struct Output {
    torch::Tensor logits;  // [B, T, vocab]; undefined with LossKernel::chunked
    torch::Tensor loss;    // mean cross-entropy over targets != ignore_index (float32 scalar)
};

// Hugging Face's LlamaModel: embeddings, blocks, final norm. Its registered names make the checkpoint names.
template <ModelSpec S, class Adapt>
class DecoderImpl : public torch::nn::Module {
    static_assert(check_spec<S>());

  public:
    DecoderImpl()
        : embed_tokens(register_module("embed_tokens", torch::nn::Embedding(S.vocab_size, S.d_model))),
          layers(register_module("layers", torch::nn::ModuleList())),
          norm(register_module("norm", RMSNorm<S>())),
          rotary_emb(register_module("rotary_emb", RotaryEmbedding<S>())) {
        for (std::int64_t i = 0; i < S.n_layer; ++i) {
            blocks.emplace_back();
            layers->push_back(blocks.back());
        }
    }

    // ids: [B, T] int64 at positions start .. start + T - 1 -> hidden states [B, T, d_model].
    torch::Tensor forward(const torch::Tensor& ids, const Context& ctx = {}) {
        auto x = embed_tokens(ids);
        for (std::size_t i = 0; i < blocks.size(); ++i)
            x = blocks[i]->forward(x, rotary_emb, ctx, std::int64_t(i));
        return norm(x);
    }

    torch::nn::Embedding embed_tokens;
    torch::nn::ModuleList layers;
    std::vector<Block<S, Adapt>> blocks;  // the same modules as `layers`, typed
    RMSNorm<S> norm;
    RotaryEmbedding<S> rotary_emb;
};
template <ModelSpec S, class Adapt = Dense>
using Decoder = torch::nn::ModuleHolder<DecoderImpl<S, Adapt>>;

// A LLaMA-style causal language model generated from the spec S; Adapt decides each projection's type.
template <ModelSpec S, class Adapt = Dense>
class TransformerImpl : public torch::nn::Module {
    static_assert(check_spec<S>());

  public:
    static constexpr ModelSpec spec = S;
    using Adaptation = Adapt;

    explicit TransformerImpl(InitSettings init = {})
        : model(register_module("model", Decoder<S, Adapt>())),
          lm_head(S.tie_embeddings ? nullptr : register_module("lm_head", Linear(S.d_model, S.vocab_size))) {
        initialize(init);
        if constexpr (requires(torch::nn::Module & m) { Adapt::prepare(m); }) Adapt::prepare(*this);
    }

    // Logits for every position.
    torch::Tensor forward(const torch::Tensor& ids, std::int64_t start = 0) {
        return head(model->forward(ids, Context{.start = start}));
    }

    // Logits with an attention mask and/or a KV cache (generation, packed instruction data).
    torch::Tensor forward(const torch::Tensor& ids, const Context& ctx) {
        return head(model->forward(ids, ctx));
    }

    // Logits and the mean next-token loss; targets[b, t] is the token expected after ids[b, t].
    Output forward(const torch::Tensor& ids, const torch::Tensor& targets, const Context& ctx = {}) {
        auto hidden = model->forward(ids, ctx);
        if (loss_kernel == LossKernel::chunked)
            return {torch::Tensor(), chunked_head_loss(hidden, head_weight(), targets, loss_chunk, kernel_)};
        auto logits = head(hidden);
        auto loss = cross_entropy(logits, targets);
        return {std::move(logits), std::move(loss)};
    }

    torch::Tensor head(const torch::Tensor& hidden) { return torch::linear(hidden, head_weight()); }

    const torch::Tensor& head_weight() const {
        if constexpr (S.tie_embeddings)
            return model->embed_tokens->weight;
        else
            return lm_head->weight;
    }

    // Normal(0, std) for embeddings and projections, std / sqrt(2 n_layer) for the residual outputs, ones
    // for the norms; the same seed gives the same weights.
    void initialize(const InitSettings& init) {
        torch::NoGradGuard no_grad;
        auto gen = make_generator(init.seed);
        const double residual_std = init.std / std::sqrt(2.0 * double(S.n_layer));
        model->embed_tokens->weight.normal_(0.0, init.std, gen);
        for (auto& block : model->blocks) block->init(gen, init.std, residual_std);
        model->norm->init();
        if constexpr (!S.tie_embeddings) lm_head->init(gen, init.std);
    }

    // Every fused CPU kernel (RMSNorm, RoPE, silu x up, the chunked loss's rows) or the plain ops each is
    // tested against, model-wide.
    void set_kernel(Kernel kernel) {
        kernel_ = kernel;
        for (auto& m : modules()) {
            if (auto* norm = m->template as<RMSNormImpl<S>>()) norm->kernel = kernel;
            if (auto* rope = m->template as<RotaryEmbeddingImpl<S>>()) rope->kernel = kernel;
            if (auto* mlp = m->template as<SwiGLUImpl<S, Adapt>>()) mlp->kernel = kernel;
        }
    }
    Kernel kernel() const { return kernel_; }

    std::int64_t parameter_count() const {
        std::int64_t n = 0;
        for (const auto& p : parameters()) n += p.numel();
        return n;
    }

    std::int64_t trainable_parameter_count() const {
        std::int64_t n = 0;
        for (const auto& p : parameters())
            if (p.requires_grad()) n += p.numel();
        return n;
    }

    LossKernel loss_kernel = LossKernel::full;
    std::int64_t loss_chunk = 0;  // tokens per chunk of the chunked kernel; 0 = default_loss_chunk(vocab)
    Decoder<S, Adapt> model;
    Linear lm_head;

  private:
    Kernel kernel_ = Kernel::fused;
};
template <ModelSpec S, class Adapt = Dense>
using Transformer = torch::nn::ModuleHolder<TransformerImpl<S, Adapt>>;

// What a user wants to know about a shape before training it (llm.c prints the same at start-up).
template <ModelSpec S>
std::string describe() {
    std::ostringstream os;
    // Through integral_constant: clang 14 takes a consteval call on a template argument only there.
    const auto params = std::integral_constant<std::int64_t, parameter_count(S)>::value;
    os << "layers " << S.n_layer << ", d_model " << S.d_model << ", heads " << S.n_head << " (kv "
       << S.n_kv_head << ", head dim " << S.head_dim() << "), SwiGLU " << S.ffn_hidden << ", vocab "
       << S.vocab_size << ", context " << S.context
       << (S.tie_embeddings ? ", tied embeddings" : ", untied embeddings") << "\n"
       << "parameters " << params << " (embeddings " << embedding_parameters(S) << ", blocks "
       << S.n_layer * block_parameters(S) << (S.tie_embeddings ? "" : ", LM head ")
       << (S.tie_embeddings ? std::string() : std::to_string(embedding_parameters(S))) << ")\n"
       << "weights " << double(params) * 4 / (1 << 20) << " MiB float32, " << double(params) * 2 / (1 << 20)
       << " MiB bfloat16; AdamW training state ~" << double(params) * 16 / (1 << 20) << " MiB in float32";
    return os.str();
}

}  // namespace lumi::model

namespace lumi {
using model::Dense;
using model::InitSettings;
using model::Transformer;
using model::TransformerImpl;
}  // namespace lumi
