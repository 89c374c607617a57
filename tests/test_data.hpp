#pragma once

// Where tests find real text: small slices committed under tests/data/fixtures (every clone has them), and
// the whole data sets of ../shared/data, which CI has and a user's clone does not.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace lumi::test {

inline std::filesystem::path fixture(const std::string& name) {
    return std::filesystem::path(LUMI_SOURCE_DIR) / "tests" / "data" / "fixtures" / name;
}

inline std::filesystem::path shared_data(const std::string& relative) {
    return std::filesystem::path(LUMI_SHARED_DATA_DIR) / relative;
}

}  // namespace lumi::test

// For tests named SharedData.* (CTest label shared-data): skips, naming what to provide, when a whole data
// set is absent.
#define LUMI_REQUIRE_SHARED_DATA(file)                                                                      \
    if (!std::filesystem::exists(file))                                                                     \
    GTEST_SKIP() << "needs the whole data set " << (file)                                                   \
                 << ": put the shared data sets at " LUMI_SHARED_DATA_DIR                                   \
                    " or configure with -DLUMI_SHARED_DATA_DIR=<dir>; the fixtures in tests/data/fixtures " \
                    "cover every other test"
