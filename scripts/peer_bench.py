#!/usr/bin/env python3
"""The same training step in lumi and in PyTorch's Python front end, on one machine, in one run.

  peer_bench.py --lumi-bench build/benchmarks/lumi_train_bench --python /usr/bin/python3 --preset nano
  peer_bench.py --lumi-bench build-torch2/benchmarks/lumi_train_bench --python .venv-torch2/bin/python
  peer_bench.py ... --baseline-bench ../before/build-torch2/benchmarks/lumi_train_bench   (an earlier build too)

Each round runs, in a rotating order and each in a fresh process: lumi's train_step benchmark with the full
loss (the algorithm the Python model runs), lumi with its chunked LM head + loss, PyTorch eager, and with
torch >= 2 PyTorch torch.compile (the compilation itself is not timed), also with PyTorch's fused AdamW
(`fused=True`, torch >= 2.4 on CPU), the fastest step PyTorch offers without compiling the optimizer. Both sides build the same LLaMA shape
(the preset), the same initialisation (normal 0.02, residual projections 0.02 / sqrt(2 layers), norms 1),
take the same random batch shape and the same step: forward (and loss) under the precision, backward, global
gradient clipping at 1.0, AdamW (lr 3e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices only,
multi-tensor) and gradients reset to none. Attention is the fused kernel where the LibTorch has it (2.x), the
explicit one otherwise, on both sides.

Reported: median tokens/s over the rounds and peak memory: the largest CPU tensor memory allocated during one
step above what was live before it, as c10's CPU allocator reports it to the profiler's memory hook (lumi:
benchmarks/bench.hpp PeakMemory; Python: torch.autograd.profiler with profile_memory=True, in an untimed step).
Ratios are against PyTorch eager. Run it with the Python whose torch is the LibTorch lumi was built against.
The Python side runs as a worker of this same script (--worker), so this file needs only the standard library.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

PRESETS = {  # lumi's presets/lumi/presets/*.hpp
    "nano": dict(vocab=4096, layers=4, d_model=192, heads=3, kv_heads=3, ffn=768, context=256),
    "micro": dict(vocab=32768, layers=4, d_model=128, heads=2, kv_heads=2, ffn=512, context=1024),
    "tiny": dict(vocab=32768, layers=6, d_model=256, heads=4, kv_heads=4, ffn=1024, context=1024),
    "small": dict(vocab=32768, layers=7, d_model=384, heads=6, kv_heads=6, ffn=1536, context=1024),
}


def worker(args):
    """One PyTorch process: build, warm up, measure memory in one step, then time steps; print JSON."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    p = PRESETS[args.preset]
    major = int(torch.__version__.split(".")[0])
    fused = major >= 2 and hasattr(F, "scaled_dot_product_attention")

    class RMSNorm(nn.Module):
        def __init__(self, d, eps=1e-5):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))
            self.eps = eps

        def forward(self, x):
            x32 = x.float()
            normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
            return self.weight * normed.to(x.dtype)

    head_dim = p["d_model"] // p["heads"]
    half = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    freqs = torch.outer(torch.arange(p["context"], dtype=torch.float64), torch.pow(10000.0, -half))
    emb = torch.cat([freqs, freqs], -1)
    cos_table, sin_table = emb.cos().float(), emb.sin().float()

    def rope(x):
        t = x.size(-2)
        c, s = cos_table[:t].to(x.dtype), sin_table[:t].to(x.dtype)
        x1, x2 = x.chunk(2, -1)
        return x * c + torch.cat([-x2, x1], -1) * s

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            d, kv = p["d_model"], p["kv_heads"] * head_dim
            self.q_proj = nn.Linear(d, d, bias=False)
            self.k_proj = nn.Linear(d, kv, bias=False)
            self.v_proj = nn.Linear(d, kv, bias=False)
            self.o_proj = nn.Linear(d, d, bias=False)

        def forward(self, x):
            b, t, d = x.shape
            q = rope(self.q_proj(x).view(b, t, p["heads"], head_dim).transpose(1, 2))
            k = rope(self.k_proj(x).view(b, t, p["kv_heads"], head_dim).transpose(1, 2))
            v = self.v_proj(x).view(b, t, p["kv_heads"], head_dim).transpose(1, 2)
            groups = p["heads"] // p["kv_heads"]
            if groups > 1:
                k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
            if fused:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                scores = torch.matmul(q, k.transpose(-2, -1)).float() * (1.0 / math.sqrt(head_dim))
                mask = torch.ones(t, t, dtype=torch.bool).tril()
                scores = scores.masked_fill(mask.logical_not(), float("-inf"))
                y = torch.matmul(scores.softmax(-1).to(v.dtype), v)
            return self.o_proj(y.transpose(1, 2).reshape(b, t, d))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(p["d_model"], p["ffn"], bias=False)
            self.up_proj = nn.Linear(p["d_model"], p["ffn"], bias=False)
            self.down_proj = nn.Linear(p["ffn"], p["d_model"], bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm, self.self_attn = RMSNorm(p["d_model"]), Attention()
            self.post_attention_layernorm, self.mlp = RMSNorm(p["d_model"]), MLP()

        def forward(self, x):
            h = x + self.self_attn(self.input_layernorm(x))
            return h + self.mlp(self.post_attention_layernorm(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(p["vocab"], p["d_model"])
            self.layers = nn.ModuleList(Block() for _ in range(p["layers"]))
            self.norm = RMSNorm(p["d_model"])
            self.lm_head = nn.Linear(p["d_model"], p["vocab"], bias=False)
            std, residual = 0.02, 0.02 / math.sqrt(2.0 * p["layers"])
            with torch.no_grad():
                for name, w in self.named_parameters():
                    if w.dim() == 1:
                        w.fill_(1.0)
                    else:
                        w.normal_(0.0, residual if name.endswith(("o_proj.weight", "down_proj.weight")) else std)

        def forward(self, ids, targets):
            x = self.embed_tokens(ids)
            for block in self.layers:
                x = block(x)
            logits = self.lm_head(self.norm(x))
            return F.cross_entropy(logits.view(-1, p["vocab"]).float(), targets.reshape(-1), ignore_index=-100)

    torch.manual_seed(0)
    model = Model()
    loss_fn = model
    compile_seconds = 0.0
    if args.worker in ("compile", "compile-fused"):
        loss_fn = torch.compile(model)
    adamw = {"fused": True} if args.worker == "compile-fused" else {"foreach": True}
    params = list(model.parameters())
    decay = [w for w in params if w.dim() >= 2]
    no_decay = [w for w in params if w.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **adamw)
    ids = torch.randint(p["vocab"], (args.batch, args.seq + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:]

    def step():
        if args.precision == "bfloat16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(inputs, targets)
        else:
            loss = loss_fn(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    step()  # creates AdamW's moments (lumi creates them up front) and, with torch.compile, compiles
    compile_seconds = time.perf_counter() - start
    with torch.autograd.profiler.profile(profile_memory=True, use_kineto=True) as prof:
        step()
    current = peak = 0
    for event in prof.kineto_results.events():
        if event.name() == "[memory]" and "CPU" in str(event.device_type()):
            current += event.nbytes()
            peak = max(peak, current)
    steps, start = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < args.min_time:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"tokens_per_s": steps * inputs.numel() / elapsed, "peak_bytes": peak,
                      "first_step_s": compile_seconds, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "fused_attention": fused}))


def environment(args):
    """Both sides get the same intra-op threads and OpenMP wait policy (LibTorch reads both at start-up):
    passive, as lumi's stage binaries and benchmarks choose, since spinning threads on a shared machine make
    every figure swing by several times."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return env


def run_lumi(args, variant, shape, binary=None):
    binary = binary or args.lumi_bench
    name = "^train_step/%s/%s/%s/" % (args.preset, variant, args.precision)
    out = subprocess.run([binary, "--benchmark_filter=" + name, "--benchmark_format=json",
                          "--benchmark_min_time=%g" % args.min_time], check=True, capture_output=True, text=True,
                         env=environment(args))
    runs = [b for b in json.loads(out.stdout)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    if len(runs) != 1:
        sys.exit("peer_bench: %s matched %d benchmarks in %s" % (name, len(runs), binary))
    return {"tokens_per_s": runs[0]["items_per_second"], "peak_bytes": runs[0]["peak_bytes"]}


def run_python(args, mode, shape):
    out = subprocess.run([args.python, os.path.abspath(__file__), "--worker", mode, "--preset", args.preset,
                          "--batch", str(shape[0]), "--seq", str(shape[1]), "--precision", args.precision,
                          "--min-time", str(args.min_time)], check=True, capture_output=True, text=True,
                         env=environment(args))
    return json.loads(out.stdout.strip().splitlines()[-1])


def lumi_shape(args):
    """The batch and sequence length lumi's benchmark is registered with (the Python side copies them)."""
    out = subprocess.run([args.lumi_bench, "--benchmark_list_tests"], check=True, capture_output=True, text=True)
    pattern = re.compile(r"^train_step/%s/full/%s/batch:(\d+)/seq:(\d+)" % (args.preset, args.precision))
    for line in out.stdout.splitlines():
        m = pattern.match(line)
        if m:
            return int(m.group(1)), int(m.group(2))
    sys.exit("peer_bench: %s has no train_step/%s/full/%s benchmark" % (args.lumi_bench, args.preset, args.precision))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lumi-bench", help="lumi_train_bench of the build to compare")
    parser.add_argument("--baseline-bench", help="lumi_train_bench of an earlier build, measured in the same rounds "
                        "('lumi before', chunked loss: the trainer's default)")
    parser.add_argument("--python", default=sys.executable, help="Python with the torch to compare against")
    parser.add_argument("--preset", default="nano", choices=sorted(PRESETS))
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds of timed steps per measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads on both sides")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile even with torch >= 2")
    parser.add_argument("--worker", choices=["eager", "compile", "compile-fused"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.lumi_bench:
        parser.error("--lumi-bench is required")

    shape = lumi_shape(args)
    version = subprocess.run([args.python, "-c", "import torch; print(torch.__version__)"], check=True,
                             capture_output=True, text=True).stdout.strip()
    runners = {"lumi": lambda: run_lumi(args, "full", shape), "lumi chunked loss": lambda: run_lumi(args, "chunked", shape),
               "torch eager": lambda: run_python(args, "eager", shape)}
    if args.baseline_bench:
        runners["lumi before"] = lambda: run_lumi(args, "chunked", shape, args.baseline_bench)
    major, minor = (int(x) for x in version.split(".")[:2])
    if major >= 2 and not args.no_compile:
        runners["torch.compile"] = lambda: run_python(args, "compile", shape)
        if (major, minor) >= (2, 4):
            runners["compile+fused AdamW"] = lambda: run_python(args, "compile-fused", shape)
    print("preset %s, batch %d x %d tokens, %s, %d threads; torch %s (%s) against %s; %d rounds, alternating" %
          (args.preset, shape[0], shape[1], args.precision, args.threads, version, args.python, args.lumi_bench,
           args.rounds),
          flush=True)
    names = list(runners)
    results = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            results[n].append(runners[n]())
            extra = results[n][-1]
            print("  round %d  %-18s %9.0f tokens/s  peak %7.1f MiB%s" %
                  (r + 1, n, extra["tokens_per_s"], extra["peak_bytes"] / 2**20,
                   "  (first step %.1f s)" % extra["first_step_s"] if "compile" in n else ""), flush=True)
    eager_tps = statistics.median(x["tokens_per_s"] for x in results["torch eager"])
    eager_peak = statistics.median(x["peak_bytes"] for x in results["torch eager"])
    print("\n%-18s %12s %10s %12s %12s" % ("", "tokens/s", "ratio", "peak MiB", "peak ratio"))
    for n in names:
        tps = statistics.median(x["tokens_per_s"] for x in results[n])
        peak = statistics.median(x["peak_bytes"] for x in results[n])
        print("%-18s %12.0f %10.3f %12.1f %12.3f" % (n, tps, tps / eager_tps, peak / 2**20, peak / eager_peak))


if __name__ == "__main__":
    main()
