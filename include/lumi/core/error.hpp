#pragma once

#include <stdexcept>
#include <string>

namespace lumi {

// Every error a user can cause: the message names the file, field or line and what was expected.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// A run stopped on request (SIGINT, SIGTERM) after saving what it needs to resume. A stage binary exits with
// 128 + signal, as a shell reports a process the signal ended, so schedulers and scripts see it did not
// finish.
class Interrupted : public Error {
  public:
    Interrupted(const std::string& what, int signal) : Error(what), signal(signal) {}
    int signal;
};

}  // namespace lumi
