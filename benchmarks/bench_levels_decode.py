"""Benchmark: prediction cost of the anatomical sequence decoder against the single-L3 decoder,
on one realistic row profile set, both measured in one run.

    python benchmarks/bench_levels_decode.py [--rows 300] [--repeats 200]

The maps are a perfect level map (the training targets, ``l3loc.labels.level_targets``) of a
nominal spine on a ``--rows``-row processed image at 2 mm (300 rows = 600 mm: chest to thighs),
with a weak echo of every band one vertebra lower (real maps have second peaks: the decoder's
dynamic programme grows with the number of candidates). Timed, per scan and view:

- ``single L3``: ``decide_maps`` of a single-L3 model (row profile, decode, classify);
- ``sequence``: ``decide_maps`` of a model with the 7 level channels (the same, plus the
  7 row profiles and ``decode_levels`` + ``decide_l3``);
- ``sequence, 3 folds' claims``: the same for a 3-fold ensemble, whose folds' own sequences are
  decoded too (each fold's claim on L3 is checked against the ensemble's).

Prints the median and the 10th/90th percentiles of ``--repeats`` runs of each, interleaved.
The network's time is not included (see bench_predict.py): the ratio here is the decoder's
share only; the 7-channel net costs the same as the 1-channel one but for its last layer.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from l3loc.config import load_config  # noqa: E402
from l3loc.inference import function_localiser  # noqa: E402
from l3loc.labels import level_targets  # noqa: E402
from l3loc.levels import LEVELS, nominal_distance_mm  # noqa: E402
from l3loc.localisation import decide_maps  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300, help="processed rows (2 mm)")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    spacing, width = 2.0, 128
    l3 = args.rows * 0.5
    rows = np.array([l3 + nominal_distance_mm("L3", k) / spacing for k in LEVELS])
    maps = level_targets(args.rows, width, rows, 4.0, spacing)
    echo = level_targets(args.rows, width, rows + 38.0 / spacing, 4.0, spacing)
    maps = np.maximum(maps, 0.3 * echo)
    cfg = load_config("cpu_fast")
    single = function_localiser(lambda im: maps[LEVELS.index("L3")], cfg, views=("sagittal",))
    cfg_levels = load_config("cpu_fast", [f"label.levels=[{','.join(LEVELS)}]"])
    multi = function_localiser(lambda im: maps, cfg_levels, views=("sagittal",))
    folds = function_localiser([lambda im: maps] * 3, cfg_levels, views=("sagittal",))
    inputs = {"single L3": (single, {"sagittal": [maps[LEVELS.index("L3")]]}),
              "sequence": (multi, {"sagittal": [maps]}),
              "sequence, 3 folds' claims": (folds, {"sagittal": [maps] * 3})}
    times = {k: [] for k in inputs}
    for _ in range(args.repeats):
        for name, (loc, fold_maps) in inputs.items():
            t0 = time.perf_counter()
            decide_maps(fold_maps, loc)
            times[name].append(time.perf_counter() - t0)
    print(f"{args.rows} rows x {width} columns at {spacing:g} mm, {args.repeats} runs each")
    print("| decoder | median ms | p10 ms | p90 ms |")
    print("|---|---|---|---|")
    for name, t in times.items():
        t = np.array(t) * 1e3
        print(f"| {name} | {np.median(t):.2f} | {np.percentile(t, 10):.2f} | "
              f"{np.percentile(t, 90):.2f} |")
    ratio = np.median(times["sequence"]) / np.median(times["single L3"])
    fold_ratio = np.median(times["sequence, 3 folds' claims"]) / np.median(times["sequence"])
    _, decision = decide_maps(inputs["sequence"][1], multi)   # the work timed is a right answer
    errors = np.abs(decision.sequence.rows - rows) * spacing
    print(f"sequence: {decision.status}, largest level error {np.nanmax(errors):.2f} mm, "
          f"{int(np.isfinite(decision.sequence.rows).sum())} of {len(LEVELS)} levels")
    print(f"sequence / single L3 (medians): {ratio:.2f}x; with 3 folds' claims / sequence: "
          f"{fold_ratio:.2f}x")


if __name__ == "__main__":
    main()
