"""UNet speed on this machine: train step (forward + backward + Adam) and dygraph inference.

Usage:
    python benchmarks/bench_model.py                      # base 8/16/32 x 128²/256²/512², batch 2
    python benchmarks/bench_model.py --bases 16 --sizes 256 --batch 4

Each (base, size) runs in its own process so that its peak RSS (``resource.getrusage``) is its
own. A combination whose first train step takes longer than ``--max-step-s`` is reported and not
timed further, and bigger images of the same width are skipped. Prints a Markdown table of
medians; the machine may be shared, so the load average at the start is printed too.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# run from a checkout without installing: the repository root holds the l3loc package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_one(base: int, size: int, batch: int, min_seconds: float, max_step_s: float) -> dict:
    """Time one configuration in this process; returns medians in seconds and peak RSS in MiB."""
    import resource
    import statistics

    import l3loc  # noqa: F401  (before paddle: MKL_DEBUG_CPU_TYPE / OMP_NUM_THREADS)
    import numpy as np
    import paddle

    from l3loc.labels import band_target
    from l3loc.losses import build_loss
    from l3loc.models import build_model

    paddle.seed(0)
    model = build_model({"type": "UNet", "base_channels": base})
    loss_fn = build_loss({"type": "BCEWithLogits"})
    opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    x = paddle.rand([batch, 1, size, size])
    target = paddle.to_tensor(np.stack([band_target(size, size, size / 2, 2.0, 1.0)[None]] * batch))

    def train_step() -> float:
        start = time.perf_counter()
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)  # waits for the result
        return time.perf_counter() - start

    def infer_step() -> float:
        start = time.perf_counter()
        with paddle.no_grad():
            model(x).numpy()
        return time.perf_counter() - start

    def timed(step) -> tuple[float, float, float, int]:
        """Median and fastest wall seconds, median process CPU seconds, number of repeats."""
        cpu0 = time.process_time()
        first = step()  # warm-up: allocations and kernel selection
        if first > max_step_s:
            return first, first, time.process_time() - cpu0, 1
        walls: list[float] = []
        cpus: list[float] = []
        while len(walls) < 3 or (sum(walls) < min_seconds and len(walls) < 20):
            cpu0 = time.process_time()
            walls.append(step())
            cpus.append(time.process_time() - cpu0)
        return statistics.median(walls), min(walls), statistics.median(cpus), len(walls)

    model.train()
    train_s, train_min_s, train_cpu_s, n_train = timed(train_step)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    model.eval()
    infer_s, _, _, n_infer = timed(infer_step) if n_train > 1 else (float("nan"),) * 3 + (0,)
    n_params = sum(int(p.size) for p in model.parameters() if not p.stop_gradient)
    return {"base": base, "size": size, "batch": batch, "params": n_params,
            "train_s": train_s, "train_min_s": train_min_s, "train_cpu_s": train_cpu_s,
            "n_train": n_train, "infer_s": infer_s, "n_infer": n_infer,
            "peak_rss_mib": rss_mib, "too_slow": n_train == 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=4.0,
                        help="time each step kind for at least this long (3..20 repeats)")
    parser.add_argument("--max-step-s", type=float, default=30.0,
                        help="do not repeat a combination whose first train step is slower")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(run_one(args.bases[0], args.sizes[0], args.batch, args.min_seconds,
                                 args.max_step_s)))
        return

    load_start = os.getloadavg()[0]
    rows = []
    for base in args.bases:
        for size in sorted(args.sizes):
            cmd = [sys.executable, __file__, "--one", "--bases", str(base), "--sizes", str(size),
                   "--batch", str(args.batch), "--min-seconds", str(args.min_seconds),
                   "--max-step-s", str(args.max_step_s)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"bench_model: {' '.join(cmd)} failed:\n{proc.stderr}")
            out = proc.stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
            if row["too_slow"]:
                break  # bigger images at this width only get slower

    print("| base | size | params | train step s, median (fastest) | train img/s | "
          "train CPU s/step | inference s, median | inference img/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["too_slow"]:
            print(f"| {r['base']} | {r['size']}² | {r['params']:,} | {r['train_s']:.1f} "
                  f"(1 step, > {args.max_step_s:g} s: not repeated) | | | | | "
                  f"{r['peak_rss_mib']:.0f} |")
            continue
        print(f"| {r['base']} | {r['size']}² | {r['params']:,} | {r['train_s']:.3f} "
              f"({r['train_min_s']:.3f}, n={r['n_train']}) | {r['batch'] / r['train_s']:.1f} | "
              f"{r['train_cpu_s']:.2f} | {r['infer_s']:.3f} (n={r['n_infer']}) | "
              f"{r['batch'] / r['infer_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    print(f"\nBatch {args.batch}; {os.cpu_count()} cores, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'set by l3loc')}; 1-min load average "
          f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end (the machine is shared: "
          f"a load above 1 means other jobs took CPU during the timing).")


if __name__ == "__main__":
    main()
