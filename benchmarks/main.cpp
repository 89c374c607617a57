// The main of the benchmark binaries made of several translation units.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
