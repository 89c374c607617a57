#pragma once

#include <unistd.h>

#include <cstdlib>

namespace lumi {

// LibTorch's OpenMP threads spin while they wait for work (libgomp's default "active" policy). Next to any
// other busy process (a second test, a data loader, a build) the spinning starves the thread that has work: a
// nano training step measured 40x slower with torch 2.11 on 2 cores, against about 5% lost when the machine
// is idle. libgomp reads the policy when it is loaded, before main, so the program re-executes itself once
// with OMP_WAIT_POLICY=passive; a policy the user set is kept.
inline void prefer_passive_openmp(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // only returns on failure: then run on as we are
}

}  // namespace lumi
