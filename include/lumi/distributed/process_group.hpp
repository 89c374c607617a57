#pragma once

// Data-parallel processes on LibTorch's c10d: a TCPStore rendezvous, then Gloo (CPU) or NCCL (CUDA).
//
// The c10d headers moved between LibTorch lines: 1.13's ProcessGroupGloo derives from ProcessGroup, 2.x's
// from Backend; the TCPStore and Work interfaces lumi uses are the same on both. ProcessGroupGloo.hpp
// includes Gloo's own headers, which neither Debian's libtorch-dev nor the PyPI wheel ships: Debian's
// libgloo-dev provides them (scripts/setup.sh installs it). Without them lumi still builds and trains in one
// process.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "lumi/core/error.hpp"
#include "lumi/core/torch.hpp"

#if defined(USE_DISTRIBUTED) && __has_include(<torch/csrc/distributed/c10d/TCPStore.hpp>)
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#define LUMI_HAS_C10D 1
#else
#define LUMI_HAS_C10D 0
#endif

#if LUMI_HAS_C10D && defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define LUMI_HAS_GLOO 1
#else
#define LUMI_HAS_GLOO 0
#endif

#if LUMI_HAS_C10D && defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define LUMI_HAS_NCCL 1
#else
#define LUMI_HAS_NCCL 0
#endif

namespace lumi::distributed {

inline constexpr bool has_gloo = LUMI_HAS_GLOO;
inline constexpr bool has_nccl = LUMI_HAS_NCCL;

// Where this process stands, from the variables torchrun sets (and a launcher wrapper sets for srun, mpirun).
struct Environment {
    int rank = 0;
    int world_size = 1;
    int local_rank = 0;
    std::string master_addr;
    int master_port = 0;
    std::chrono::seconds timeout{300};  // LUMI_DIST_TIMEOUT: how long a collective may wait for a peer

    bool distributed() const { return world_size > 1; }
};

namespace detail {
inline std::optional<std::string> variable(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
}

inline long integer(const char* name, const std::string& text, long low, long high, const char* expected) {
    std::size_t used = 0;
    long value = 0;
    try {
        value = std::stol(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || value < low || value > high)
        throw lumi::Error(std::string(name) + "='" + text + "': expected " + expected);
    return value;
}
}  // namespace detail

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT and LUMI_DIST_TIMEOUT. WORLD_SIZE unset or 1
// is one process, and then nothing else is read; an error names the variable that is missing or wrong.
inline Environment environment() {
    Environment env;
    const auto world = detail::variable("WORLD_SIZE");
    if (!world) return env;
    env.world_size = int(detail::integer("WORLD_SIZE", *world, 1, 1 << 20, "a positive integer"));
    if (env.world_size == 1) return env;
    const auto rank = detail::variable("RANK");
    if (!rank)
        throw lumi::Error("WORLD_SIZE is " + *world +
                          " but RANK is not set (start each process with RANK=0.." +
                          std::to_string(env.world_size - 1) + ", as torchrun does)");
    env.rank = int(detail::integer(
        "RANK", *rank, 0, env.world_size - 1,
        ("an integer from 0 to WORLD_SIZE-1 = " + std::to_string(env.world_size - 1)).c_str()));
    if (const auto local = detail::variable("LOCAL_RANK"))
        env.local_rank = int(detail::integer("LOCAL_RANK", *local, 0, env.world_size - 1,
                                             "an integer from 0 to WORLD_SIZE-1"));
    const auto addr = detail::variable("MASTER_ADDR");
    if (!addr)
        throw lumi::Error("WORLD_SIZE is " + *world +
                          " but MASTER_ADDR is not set (the host name or address of rank 0)");
    env.master_addr = *addr;
    const auto port = detail::variable("MASTER_PORT");
    if (!port)
        throw lumi::Error("WORLD_SIZE is " + *world +
                          " but MASTER_PORT is not set (a free TCP port on MASTER_ADDR, e.g. 29500)");
    env.master_port = int(detail::integer("MASTER_PORT", *port, 1, 65535, "a TCP port from 1 to 65535"));
    if (const auto timeout = detail::variable("LUMI_DIST_TIMEOUT"))
        env.timeout = std::chrono::seconds(
            detail::integer("LUMI_DIST_TIMEOUT", *timeout, 1, 7 * 24 * 3600, "a number of seconds >= 1"));
    return env;
}

#if LUMI_HAS_C10D
#if LUMI_TORCH_AT_LEAST(2, 0)
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif
using Work = c10::intrusive_ptr<c10d::Work>;
#else
struct Work {  // what a one-process build hands back: nothing to wait for
    void reset() {}
    explicit operator bool() const { return false; }
};
#endif

// The processes of one data-parallel run. Every collective is called by every rank in the same order; one
// that fails (a peer died, or did not answer within the timeout) throws a lumi::Error saying so.
class ProcessGroup {
  public:
    // One process: every collective is a no-op.
    ProcessGroup() = default;

    // Joins the run `env` describes: Gloo for CPU tensors, NCCL for CUDA ones when LibTorch has it.
    ProcessGroup(const Environment& env, torch::Device device) : env_(env) {
        if (env.distributed()) connect(device);
    }

    int rank() const { return env_.rank; }
    int size() const { return env_.world_size; }
    int local_rank() const { return env_.local_rank; }
    bool distributed() const { return env_.world_size > 1; }
    const Environment& environment() const { return env_; }
    const std::string& backend() const { return backend_name_; }

    // "rank 1 of 2"
    std::string describe() const {
        return "rank " + std::to_string(env_.rank) + " of " + std::to_string(env_.world_size);
    }

    // Starts a sum over ranks, in place; wait() finishes it. Alone, there is nothing to wait for.
    Work allreduce_async(torch::Tensor& tensor, const char* what) {
        if (!distributed()) return {};
#if LUMI_HAS_C10D
        std::vector<torch::Tensor> tensors{tensor};
        try {
            return backend_->allreduce(tensors);
        } catch (const std::exception& error) {
            throw lost(what, error);
        }
#else
        return {};
#endif
    }

    void wait(const Work& work, const char* what) {
        if (!work) return;
#if LUMI_HAS_C10D
        try {
            work->wait();
        } catch (const std::exception& error) {
            throw lost(what, error);
        }
#endif
    }

    // Sums `tensor` over ranks, in place.
    void allreduce(torch::Tensor& tensor, const char* what) {
        if (distributed()) wait(allreduce_async(tensor, what), what);
    }

    // Each value summed over ranks (for losses, token counts and flags).
    std::vector<double> sum(std::vector<double> values, const char* what) {
        if (!distributed()) return values;
        auto tensor = torch::tensor(values, torch::kFloat64).to(device_of_collectives());
        allreduce(tensor, what);
        tensor = tensor.cpu();
        return {tensor.data_ptr<double>(), tensor.data_ptr<double>() + tensor.numel()};
    }

    // Overwrites `tensor` with rank `root`'s.
    void broadcast(torch::Tensor& tensor, int root, const char* what) {
        if (!distributed()) return;
#if LUMI_HAS_C10D
        std::vector<torch::Tensor> tensors{tensor};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        try {
            backend_->broadcast(tensors, options)->wait();
        } catch (const std::exception& error) {
            throw lost(what, error);
        }
#endif
    }

    // Returns once every rank has called it.
    void barrier(const char* what) {
        if (!distributed()) return;
        // A one-element allreduce rather than c10d's barrier: NCCL's needs a device chosen for it.
        auto token = torch::zeros({1}, torch::TensorOptions().device(device_of_collectives()));
        allreduce(token, what);
    }

  private:
#if LUMI_HAS_C10D
    void connect(torch::Device device) {
        const Environment& env = env_;
        // torchrun's agent already serves a store at MASTER_PORT: every rank joins it as a client, under a
        // prefix per restart so keys left by an earlier attempt do not mix in (as torch.distributed does).
        const bool agent_store = detail::variable("TORCHELASTIC_USE_AGENT_STORE") == "True";
        c10d::TCPStoreOptions options;
        options.port = std::uint16_t(env.master_port);
        options.isServer = env.rank == 0 && !agent_store;
        options.numWorkers = std::size_t(env.world_size);
        options.waitWorkers = !agent_store;
        options.timeout = env.timeout;
        try {
            store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
            if (agent_store)
                store_ = c10::make_intrusive<c10d::PrefixStore>(
                    "/worker/attempt_" + detail::variable("TORCHELASTIC_RESTART_COUNT").value_or("0"),
                    store_);
        } catch (const std::exception& error) {
            throw lumi::Error(
                describe() +
                ": no rendezvous with the other ranks at MASTER_ADDR:MASTER_PORT = " + env.master_addr + ":" +
                std::to_string(env.master_port) + " within " + std::to_string(env.timeout.count()) +
                " s (are all WORLD_SIZE ranks started, and is the port free on rank 0?): " +
                first_line(error.what()));
        }
        try {
#if LUMI_HAS_NCCL
            if (device.is_cuda()) {
                auto nccl = c10d::ProcessGroupNCCL::Options::create();
                nccl->timeout = env.timeout;
                backend_ =
                    c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, env.rank, env.world_size, nccl);
                backend_name_ = "nccl";
                return;
            }
#endif
#if LUMI_HAS_GLOO
            auto gloo = c10d::ProcessGroupGloo::Options::create(env.timeout);
            gloo->devices.push_back(gloo_device(env.master_addr));
            backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env.rank, env.world_size, gloo);
            backend_name_ = "gloo";
#else
            throw lumi::Error("lumi was compiled without Gloo's headers (install libgloo-dev, then rebuild)");
#endif
        } catch (const lumi::Error& error) {
            throw lumi::Error(describe() + ": cannot start data-parallel training: " + error.what());
        } catch (const std::exception& error) {
            // PyTorch 2's store protocol opens with a VALIDATE query that 1.13 does not send.
            const std::string hint =
                agent_store && !LUMI_TORCH_AT_LEAST(2, 0)
                    ? " (torchrun's store: a PyTorch 2 torchrun cannot serve a LibTorch 1.13 "
                      "program; start the ranks by hand, with srun or mpirun: docs/distributed.md)"
                    : "";
            throw lumi::Error(describe() +
                              ": cannot connect to the other ranks: " + first_line(error.what()) + hint);
        }
    }
#else
    void connect(torch::Device) {
        throw lumi::Error(describe() + ": this LibTorch was built without torch.distributed (c10d)");
    }
#endif

    torch::Device device_of_collectives() const {
        return backend_name_ == "nccl" ? torch::Device(torch::kCUDA, env_.local_rank)
                                       : torch::Device(torch::kCPU);
    }

    static std::string first_line(const std::string& text) {
        const auto end = text.find('\n');
        return end == std::string::npos ? text : text.substr(0, end);
    }

    lumi::Error lost(const char* what, const std::exception& error) const {
        return lumi::Error(describe() + " lost contact with the other ranks during " + what +
                           " (a rank failed, was killed, or did not answer within LUMI_DIST_TIMEOUT = " +
                           std::to_string(env_.timeout.count()) + " s); the last checkpoint is intact: " +
                           "resume every rank with run.resume=latest. Cause: " + first_line(error.what()));
    }

#if LUMI_HAS_GLOO
    // Loopback runs stay on loopback; otherwise GLOO_SOCKET_IFNAME names the interface, or the host
    // name's address is used, as torch.distributed does.
    static std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master) {
        if (master == "localhost" || master.starts_with("127."))
            return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
        if (const auto name = detail::variable("GLOO_SOCKET_IFNAME"))
            return c10d::ProcessGroupGloo::createDeviceForInterface(*name);
        return c10d::ProcessGroupGloo::createDefaultDevice();
    }
#endif

    Environment env_;
    std::string backend_name_ = "none";
#if LUMI_HAS_C10D
    c10::intrusive_ptr<c10d::Store> store_;
    c10::intrusive_ptr<Collectives> backend_;
#endif
};

// The process's group, joined on first use from the environment. It is never destroyed: a peer that died
// must not make this process hang in a destructor at exit.
inline ProcessGroup& world(torch::Device device = torch::kCPU) {
    static std::once_flag once;
    static ProcessGroup* group = nullptr;
    std::call_once(once, [&] { group = new ProcessGroup(environment(), device); });
    return *group;
}

}  // namespace lumi::distributed
