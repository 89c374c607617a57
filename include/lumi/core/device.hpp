#pragma once
// The device and weight dtype a stage's settings name: training, evaluation, generation and serving all read
// them, so they live below every area.
#include <string>
#include <string_view>

#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"

namespace lumi {

enum class Dtype { float32, bfloat16 };

// "auto" (CUDA when there is one, else the CPU), "cpu", "cuda", "cuda:1", ... `field` names the setting in
// the error for a CUDA device that is not there.
inline torch::Device resolve_device(const std::string& name, std::string_view field = "device") {
    if (name == "auto")
        return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    torch::Device device(name);
    if (device.is_cuda() && !torch::cuda::is_available())
        throw Error(std::string(field) + " is '" + name + "' but no CUDA device is available");
    return device;
}

}  // namespace lumi
