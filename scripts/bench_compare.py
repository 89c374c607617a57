#!/usr/bin/env python3
"""Compare Google Benchmark JSON files and print ratios (standard library only).

  bench_compare.py baseline.json candidate.json     same benchmarks in two runs: candidate / baseline
  bench_compare.py run.json --pair full chunked      within one run: each name with /chunked/ against the
                                                     same name with /full/

Ratios are of items per second (throughput: > 1 means the candidate is faster) when both sides report it,
otherwise of real time (< 1 means faster), and of peak_bytes when present (< 1 means less memory).
Repetitions (--benchmark_repetitions) are reduced to their median (or the reported median aggregate).
"""
import argparse
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    runs, medians = {}, {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"])
        if b.get("run_type") != "aggregate":
            runs.setdefault(name, []).append(b)
        elif b.get("aggregate_name") == "median":  # --benchmark_report_aggregates_only
            medians[name] = [b]
    for name, median in medians.items():
        runs.setdefault(name, median)
    merged = {}
    for name, samples in runs.items():
        merged[name] = {
            key: statistics.median(s[key] for s in samples)
            for key in ("items_per_second", "real_time", "peak_bytes")
            if all(key in s for s in samples)
        }
        merged[name]["time_unit"] = samples[0].get("time_unit", "ns")
    return merged, data.get("context", {})


def ratio_row(name, base, cand):
    if "items_per_second" in base and "items_per_second" in cand:
        metric = "items/s"
        before, after = base["items_per_second"], cand["items_per_second"]
    else:
        metric = "time (" + base["time_unit"] + ")"
        before, after = base["real_time"], cand["real_time"]
    memory = ""
    if base.get("peak_bytes") and cand.get("peak_bytes"):
        memory = "%.2f" % (cand["peak_bytes"] / base["peak_bytes"])
    return [name, metric, "%.4g" % before, "%.4g" % after, "%.3f" % (after / before) if before else "-", memory]


def print_table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline")
    parser.add_argument("candidate", nargs="?")
    parser.add_argument("--pair", nargs=2, metavar=("BASE", "CANDIDATE"),
                        help="compare variants within one file: names with /BASE/ against /CANDIDATE/")
    args = parser.parse_args()
    base, context = load(args.baseline)
    rows = []
    if args.pair:
        if args.candidate:
            parser.error("--pair compares within one file: give one file")
        old, new = ("/" + args.pair[0] + "/", "/" + args.pair[1] + "/")
        for name in base:
            if old in name and name.replace(old, new, 1) in base:
                rows.append(ratio_row(name.replace(old, "/{%s -> %s}/" % tuple(args.pair), 1), base[name],
                                      base[name.replace(old, new, 1)]))
        header = ["benchmark", "metric", args.pair[0], args.pair[1], "ratio", "peak ratio"]
    else:
        if not args.candidate:
            parser.error("give two files, or one with --pair")
        cand, _ = load(args.candidate)
        for name in base:
            if name in cand:
                rows.append(ratio_row(name, base[name], cand[name]))
        missing = sorted(set(base) ^ set(cand))
        if missing:
            print("in one file only: " + ", ".join(missing), file=sys.stderr)
        header = ["benchmark", "metric", "baseline", "candidate", "ratio", "peak ratio"]
    if not rows:
        sys.exit("bench_compare: no benchmark to compare")
    if context:
        print("machine: %s CPUs at %s MHz, %s" % (context.get("num_cpus"), context.get("mhz_per_cpu"),
                                                 context.get("date", "")))
    print_table(rows, header)


if __name__ == "__main__":
    main()
