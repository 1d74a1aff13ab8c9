"""Benchmark: the two decoders (and the profile decoder's smoothing) on a trained experiment.

    python benchmarks/bench_decode.py --experiment work/<experiment> [--smooth 1 2 4]

Evaluates every trained fold and view on its held-out cases once (network run, timed), then
re-decodes the saved row profiles with ``argmax`` and with ``profile`` at each ``--smooth`` sigma
(no network). Prints one Markdown table (errors over every positive held-out case) for
benchmarks/README.md. Results go to <experiment>/eval/bench_decode/.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from l3loc.evaluate import evaluate_experiment  # noqa: E402
from l3loc.runs import latest_experiment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", help="experiment folder (default: the latest under work/)")
    parser.add_argument("--smooth", type=float, nargs="*", default=[1.0, 2.0, 4.0],
                        help="Gaussian sigmas (mm) of the profile decoder to try")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    exp = Path(args.experiment) if args.experiment else latest_experiment("work")
    out = exp / "eval" / "bench_decode"

    rows = []
    variants = [("argmax", 2.0)] + [("profile", s) for s in args.smooth]
    for decoder, smooth in variants:
        t0 = time.perf_counter()
        summary = evaluate_experiment(exp, decoder=decoder, smooth_mm=smooth, plots=False,
                                      out_dir=out / f"{decoder}_{smooth:g}mm")
        seconds = time.perf_counter() - t0
        for _, r in summary.iterrows():
            rows.append({"view": r["view"], "decoder": decoder,
                         "smooth_mm": smooth if decoder == "profile" else None,
                         "n": r["n_positive"], "mean_mm": r["mean_mm"], "std_mm": r["std_mm"],
                         "median_mm": r["median_mm"], "p90_mm": r["p90_mm"],
                         "within_5mm_pct": r["within_5mm_pct"],
                         "within_10mm_pct": r["within_10mm_pct"], "bias_mm": r["bias_mm"],
                         "seconds": seconds})
        print(f"{decoder} smooth {smooth:g} mm: {seconds:.1f} s", file=sys.stderr)
    table = pd.DataFrame(rows).sort_values(["view", "decoder", "smooth_mm"], kind="stable")
    print(f"experiment: {exp}")
    print("| view | decoder | smooth mm | n | mean ± std mm | median mm | p90 mm | ≤5 mm | ≤10 mm "
          "| bias mm |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for _, r in table.iterrows():
        sm = "–" if pd.isna(r["smooth_mm"]) else f"{r['smooth_mm']:g}"
        print(f"| {r['view']} | {r['decoder']} | {sm} | {r['n']} | {r['mean_mm']:.2f} ± "
              f"{r['std_mm']:.2f} | {r['median_mm']:.2f} | {r['p90_mm']:.2f} | "
              f"{r['within_5mm_pct']:.1f} % | {r['within_10mm_pct']:.1f} % | {r['bias_mm']:+.2f} |")


if __name__ == "__main__":
    main()
