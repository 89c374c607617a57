#pragma once

#include <stdexcept>
#include <string>

namespace lumi {

// Every error a user can cause: the message names the file, field or line and what was expected.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace lumi
