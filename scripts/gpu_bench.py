#!/usr/bin/env python3
"""PyTorch's side of scripts/gpu_check.sh: transformers' LlamaForCausalLM of a lumi preset's shape, one training
step (bfloat16 autocast with float32 weights, gradient clipping at 1.0, AdamW lr 3e-4 betas 0.9/0.95 weight
decay 0.1 on matrices, fused on CUDA), eager or torch.compile, timed after warm-up. Prints one JSON line:
tokens/s, the model FLOPs per token lumi counts (docs/performance.md: 6 per matmul weight + 12 L d T) and
MFU against the peak given.

  gpu_bench.py --mode eager|compile --batch 32 --seq 1024 --device cuda --peak-tflops 989.4
"""
import argparse
import json
import time

PRESETS = {  # lumi's presets/lumi/presets/*.hpp
    "nano": dict(vocab=4096, layers=4, d_model=192, heads=3, kv_heads=3, ffn=768),
    "tiny": dict(vocab=32768, layers=6, d_model=256, heads=4, kv_heads=4, ffn=1024),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--mode", default="eager", choices=["eager", "compile"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps after three warm-up steps")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for MFU (0: not reported)")
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    p = PRESETS[args.preset]
    config = LlamaConfig(vocab_size=p["vocab"], hidden_size=p["d_model"], intermediate_size=p["ffn"],
                         num_hidden_layers=p["layers"], num_attention_heads=p["heads"],
                         num_key_value_heads=p["kv_heads"], max_position_embeddings=max(1024, args.seq),
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                         attention_bias=False, mlp_bias=False)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = LlamaForCausalLM(config).to(device)
    model.train()
    params = [w for w in model.parameters() if w.requires_grad]
    decay = [w for w in params if w.dim() >= 2]
    no_decay = [w for w in params if w.dim() < 2]
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=fused)
    forward = torch.compile(model) if args.mode == "compile" else model
    ids = torch.randint(p["vocab"], (args.batch, args.seq + 1), device=device)
    inputs, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = forward(input_ids=inputs).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    for _ in range(3):
        step()
    sync()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    elapsed = time.perf_counter() - start
    tokens_per_s = args.steps * inputs.numel() / elapsed
    matmul = sum(w.numel() for name, w in model.named_parameters() if w.dim() >= 2 and "embed_tokens" not in name)
    flops_per_token = 6.0 * matmul + 12.0 * p["layers"] * p["d_model"] * args.seq
    result = {"mode": args.mode, "tokens_per_s": tokens_per_s, "flops_per_token": flops_per_token,
              "warmup_s": warmup, "torch": torch.__version__, "device": str(device)}
    if args.peak_tflops > 0:
        result["mfu"] = tokens_per_s * flops_per_token / (args.peak_tflops * 1e12)
    if device.type == "cuda":
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
