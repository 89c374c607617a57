// Each LUMI_CASE is a spec that must not compile; case 0 is the control that must.
#if LUMI_CASE == 5
#include <lumi/model/transformer.hpp>
#else
#include <lumi/model/spec.hpp>
#endif

namespace {

constexpr lumi::ModelSpec valid{.vocab_size = 64,
                                .n_layer = 2,
                                .d_model = 32,
                                .n_head = 4,
                                .n_kv_head = 2,
                                .ffn_hidden = 64,
                                .context = 16};

#if LUMI_CASE == 0
static_assert(lumi::model::check_spec<valid>());
#elif LUMI_CASE == 1
constexpr lumi::ModelSpec bad{.vocab_size = 64, .n_layer = 2, .d_model = 30, .n_head = 4, .n_kv_head = 4};
static_assert(lumi::model::check_spec<bad>());
#elif LUMI_CASE == 2
constexpr lumi::ModelSpec bad{.vocab_size = 64, .n_layer = 2, .d_model = 12, .n_head = 4, .n_kv_head = 4};
static_assert(lumi::model::check_spec<bad>());
#elif LUMI_CASE == 3
constexpr lumi::ModelSpec bad{.vocab_size = 64, .n_layer = 2, .d_model = 48, .n_head = 4, .n_kv_head = 3};
static_assert(lumi::model::check_spec<bad>());
#elif LUMI_CASE == 4
constexpr lumi::ModelSpec bad{.vocab_size = 0, .n_layer = 2, .d_model = 32, .n_head = 4, .n_kv_head = 4};
static_assert(lumi::model::check_spec<bad>());
#elif LUMI_CASE == 5
// The layer types check the spec where they are generated, with no explicit check_spec call here.
constexpr lumi::ModelSpec bad{.vocab_size = 64, .n_layer = 2, .d_model = 48, .n_head = 4, .n_kv_head = 3};
[[maybe_unused]] lumi::Transformer<bad>* model = nullptr;
[[maybe_unused]] constexpr auto size = sizeof(lumi::TransformerImpl<bad>);
#elif LUMI_CASE == 6
constexpr lumi::ModelSpec bad{.vocab_size = 64, .n_layer = 0, .d_model = 32, .n_head = 4, .n_kv_head = 4};
static_assert(lumi::model::check_spec<bad>());
#endif

}  // namespace
