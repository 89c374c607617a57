#pragma once

// The message of the lumi::Error a call throws ("" when none): what the bad-input tests assert on. New tests
// use these; the older suites' own copies move here as they are touched.
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
    return {};  // no error: "" (so EXPECT_CONTAINS fails, and EXPECT_EQ(error_of(f), "") asserts none)
}

// Whether text holds part; a failure shows both.
inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
    if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}
#define EXPECT_CONTAINS(text, part) EXPECT_TRUE(::lumi::test::contains(text, part))

}  // namespace lumi::test
