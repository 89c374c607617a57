// The main of the benchmark binaries made of several translation units, with the stage binaries' process
// settings (lumi/core/threads.hpp), so a benchmark measures what a training run gets.
#include <benchmark/benchmark.h>

#include <lumi/core/threads.hpp>

int main(int argc, char** argv) {
    lumi::prefer_passive_openmp(argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
