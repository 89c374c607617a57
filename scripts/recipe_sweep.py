#!/usr/bin/env python3
"""Token efficiency of the pretraining recipes: AdamW + cosine against Muon + warmup-stable-decay.

Each recipe trains over a learning-rate grid and several seeds (initialisation and data order), with the same
model, data, batch and number of steps. The report compares the best learning rate of each:
  - final validation loss (mean and spread over seeds) at equal tokens;
  - tokens to reach the baseline's final loss (the token-efficiency ratio);
  - validation loss at equal wall time (the baseline's time), interpolated from each run's clock.

  scripts/recipe_sweep.py --binary build/examples/lumi_pretrain_nano --dataset runs/nano/04_packed \\
      --out runs/recipe_sweep [--steps 300] [--seeds 3]

Writes <out>/sweep.json (every run's curve) and <out>/report.md. Runs already finished are reused, so an
interrupted sweep resumes. Only the model binary's own metrics.jsonl is read.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {
    # name: (settings file, the learning-rate key its grid sweeps)
    "adamw_cosine": ("presets/pretrain/nano.json", "optimizer.lr"),
    "muon_wsd": ("presets/pretrain/nano-muon.json", "optimizer.muon.lr"),
}


def floats(text):
    return [float(x) for x in text.split(",") if x]


def read_metrics(path):
    train, val = [], []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "val_loss" in record:
            val.append(record)
        elif "loss" in record:
            train.append(record)
    return train, val


def run_one(args, recipe, lr, seed, out):
    run_dir = out / "runs" / f"{recipe}_lr{lr:g}_seed{seed}"
    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    config, lr_key = RECIPES[recipe]
    eval_every = max(1, args.steps // args.points)
    command = [args.binary, "--config", str(ROOT / config),
               "--set", f"data.dataset={args.dataset}", "--set", "data.tokenizer=",
               "--set", f"run.output={run_dir}", "--set", "run.overwrite=true",
               "--set", f"run.max_steps={args.steps}", "--set", f"run.eval_every={eval_every}",
               "--set", f"run.log_every={eval_every}", "--set", f"run.eval_batches={args.eval_batches}",
               "--set", f"run.checkpoint_every={args.steps}", "--set", "run.keep_checkpoints=1",
               "--set", f"run.seed={seed}", "--set", f"init.seed={seed}",
               "--set", f"run.threads={args.threads}", "--set", "run.device=cpu",
               "--set", f"{lr_key}={lr}"]
    for extra in args.set:
        command += ["--set", extra]
    print(f"{recipe} lr {lr:g} seed {seed}", flush=True)
    log = out / "logs" / f"{run_dir.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as stream:
        status = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT).returncode
    if status != 0:
        sys.exit(f"error: {' '.join(map(str, command))} failed ({status}); see {log}")
    train, val = read_metrics(run_dir / "metrics.jsonl")
    clock = {r["step"]: r["elapsed_s"] for r in train}
    tokens = {r["step"]: r["tokens"] for r in train}
    result = {
        "recipe": recipe, "lr": lr, "seed": seed,
        "curve": [{"step": r["step"], "tokens": tokens.get(r["step"]), "elapsed_s": clock.get(r["step"]),
                   "val_loss": r["val_loss"]} for r in val],
        "final_val_loss": val[-1]["val_loss"],
        "final_train_loss": train[-1]["loss"],
        "elapsed_s": train[-1]["elapsed_s"],
        "tokens": train[-1]["tokens"],
    }
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, done)
    # The checkpoints are not needed for the report.
    subprocess.run(["rm", "-rf", str(run_dir / "checkpoints"), str(run_dir / "final")])
    return result


def interpolate(points, x):
    """y at x on a piecewise-linear curve [(x, y)], or None outside it."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def first_reach(points, target):
    """The first x where the curve falls to target, interpolated; None when it never does."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 <= target:
            return x1 if y1 == y0 else x0 + (x1 - x0) * (y0 - target) / (y0 - y1)
    return None


def mean_curve(runs, key):
    """The seeds' mean validation loss at each evaluation, against the mean of `key` there."""
    length = min(len(r["curve"]) for r in runs)
    return [(statistics.mean(r["curve"][i][key] for r in runs),
             statistics.mean(r["curve"][i]["val_loss"] for r in runs)) for i in range(length)]


def summarise(results, baseline, challenger):
    by = {}
    for r in results:
        by.setdefault((r["recipe"], r["lr"]), []).append(r)
    table, best = [], {}
    for (recipe, lr), runs in sorted(by.items()):
        losses = [r["final_val_loss"] for r in runs]
        row = {"recipe": recipe, "lr": lr, "seeds": len(runs), "mean": statistics.mean(losses),
               "stdev": statistics.stdev(losses) if len(losses) > 1 else 0.0,
               "elapsed_s": statistics.mean(r["elapsed_s"] for r in runs)}
        table.append(row)
        if recipe not in best or row["mean"] < best[recipe]["mean"]:
            best[recipe] = row
    summary = {"grid": table, "best": best}
    if baseline in best and challenger in best:
        b, c = best[baseline], best[challenger]
        b_runs, c_runs = by[(baseline, b["lr"])], by[(challenger, c["lr"])]
        summary["gap_nats"] = b["mean"] - c["mean"]  # > 0: the challenger ends lower
        b_tokens, c_tokens = mean_curve(b_runs, "tokens"), mean_curve(c_runs, "tokens")
        reach = first_reach(c_tokens, b["mean"])
        summary["tokens_to_baseline_loss"] = reach
        summary["token_ratio"] = b_tokens[-1][0] / reach if reach else None  # > 1: fewer tokens needed
        b_time, c_time = mean_curve(b_runs, "elapsed_s"), mean_curve(c_runs, "elapsed_s")
        summary["step_time_ratio"] = c["elapsed_s"] / b["elapsed_s"]
        summary["loss_at_baseline_time"] = {baseline: b_time[-1][1],
                                            challenger: interpolate(c_time, b_time[-1][0]) or c_time[-1][1]}
        summary["curves"] = {baseline: b_tokens, challenger: c_tokens}
    return summary


def report(summary, args):
    lines = [f"# Recipe sweep: {args.steps} steps, {args.seeds} seeds, dataset {args.dataset}", "",
             "| recipe | lr | final val loss (mean ± sd) | seconds |", "|---|---|---|---|"]
    for row in summary["grid"]:
        mark = " **best**" if summary["best"][row["recipe"]]["lr"] == row["lr"] else ""
        lines.append(f"| {row['recipe']} | {row['lr']:g}{mark} | {row['mean']:.4f} ± {row['stdev']:.4f} "
                     f"| {row['elapsed_s']:.0f} |")
    if "gap_nats" in summary:
        ratio = summary["token_ratio"]
        lines += ["", f"- gap at equal tokens: {summary['gap_nats']:+.4f} nats (positive: muon_wsd lower)",
                  f"- token ratio to the baseline's final loss: "
                  + (f"{ratio:.2f}x" if ratio else "not reached"),
                  f"- step time ratio (muon_wsd / adamw_cosine): {summary['step_time_ratio']:.3f}",
                  f"- loss at the baseline's wall time: " + ", ".join(
                      f"{k} {v:.4f}" for k, v in summary["loss_at_baseline_time"].items()),
                  "", "| tokens | adamw_cosine | muon_wsd |", "|---|---|---|"]
        for (t, a), (_, m) in zip(*summary["curves"].values()):
            lines.append(f"| {t:.0f} | {a:.4f} | {m:.4f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="lumi_pretrain_<preset>")
    parser.add_argument("--dataset", required=True, help="a packed dataset (pack_dataset output)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--points", type=int, default=10, help="validations per run")
    parser.add_argument("--eval-batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--adamw-lrs", type=floats, default=floats("1e-3,2e-3,4e-3,8e-3"))
    parser.add_argument("--muon-lrs", type=floats, default=floats("0.01,0.02,0.04,0.08"))
    parser.add_argument("--set", action="append", default=[], help="a further override for every run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in range(args.seeds):  # seeds outermost: a partial sweep still covers the grid
        for recipe, lrs in (("adamw_cosine", args.adamw_lrs), ("muon_wsd", args.muon_lrs)):
            for lr in lrs:
                results.append(run_one(args, recipe, lr, seed, args.out))
    summary = summarise(results, "adamw_cosine", "muon_wsd")
    text = json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                       "runs": results}, indent=1)
    with tempfile.NamedTemporaryFile("w", dir=args.out, delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, args.out / "sweep.json")
    (args.out / "report.md").write_text(report(summary, args))
    print(report(summary, args))


if __name__ == "__main__":
    main()
