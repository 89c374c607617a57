#pragma once

#include <array>
#include <string_view>

#include <lumi/model/linear.hpp>
#include <lumi/model/role.hpp>
#include <lumi/model/spec.hpp>

namespace lumi::model {

// The adaptation policy of a plain model: every role is a plain Linear.
struct Dense {
    template <ModelSpec S, Role R>
    using linear = Linear;
};

}  // namespace lumi::model
