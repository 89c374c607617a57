// Builds the shared precompiled header for the test binaries, and their main.
#include <gtest/gtest.h>

#include "lumi/core/threads.hpp"

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
