#pragma once

// The message of the lumi::Error a call throws: what the bad-input tests assert on. New tests use these; the
// older suites' own copies move here as they are touched.
#include <string>

#include <gtest/gtest.h>

#include <lumi/core/error.hpp>

namespace lumi::test {

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const lumi::Error& error) {
        return error.what();
    }
    ADD_FAILURE() << "expected a lumi::Error";
    return {};
}

inline bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace lumi::test
