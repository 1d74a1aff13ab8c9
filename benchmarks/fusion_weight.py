"""Which view should count the levels? The level sequence decoded on a weighted mean of the two
views' level profiles, the frontal view weighted ``w`` (prediction uses ``w = 0.5``), on
phantoms only.

    python benchmarks/fusion_weight.py --experiment work/mix6_levels \
        --data work/data/synth300_s1/l3_dataset.npz

For each ``w`` in 0.5..1.0 it counts the positive cases whose L3 (from the decoded sequence,
whatever the confidence) lies within 10 mm of the truth, on the experiment's k-fold held-out
cases (each fold's nets on its own held-out cases; the profiles evaluation cached) and on an
npz the experiment was not trained on (``--data``: phantoms of another generator; the fold
ensemble, as prediction runs it), and the median error, with the L3 row as decoded and with it
moved to the sagittal L3 channel's peak within 12 mm ("row from the sagittal view").

The criterion, written down before the first sweep: the mean over the two sets of the share of
positives whose L3 is at a wrong level, lowest wins, ties to the lower ``w``. Never run this on
the real validation set: a weight chosen there is a weight tuned on it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from l3loc.decode import _subpixel_peak, decode_profile, row_profile  # noqa: E402
from l3loc.levels import LEVELS, decode_levels  # noqa: E402
from l3loc.metrics import RIGHT_LEVEL_MM  # noqa: E402

ROW_WINDOW_MM = 12.0


def kfold_cases(exp: Path) -> tuple[list, float]:
    """(frontal [levels, H], sagittal [levels, H], true L3 row) of every held-out case of every
    fold trained in both views, and the row spacing."""
    from l3loc.fold_profiles import fold_profiles

    splits = json.loads((exp / "splits.json").read_text())["folds"]
    cases, spacing = [], None
    for k in range(1, len(splits) + 1):
        dirs = {v: exp / v / f"fold_{k}" for v in ("frontal", "sagittal")}
        if not all((d / "best.pdparams").exists() for d in dirs.values()):
            continue
        fp = {v: fold_profiles(v, k, d, splits, cache_dir=exp / "eval" / "profiles")
              for v, d in dirs.items()}
        l3 = fp["frontal"].levels.index("L3")
        cases += [(f, s, t[l3]) for f, s, t in zip(fp["frontal"].level_profiles,
                                                   fp["sagittal"].level_profiles,
                                                   fp["frontal"].level_label_rows)]
        spacing = fp["frontal"].spacing_mm
    return cases, spacing


def npz_cases(exp: Path, npz: Path) -> list:
    """The same triples for an npz under the ensemble of every fold trained in both views."""
    from l3loc.cache import open_cache
    from l3loc.inference import load_localiser

    profiles, truth = {}, None
    for view in ("frontal", "sagittal"):
        vm = load_localiser(exp, view, backend="dygraph").views[view]
        data = open_cache(vm.cfg, view, progress=False, source=npz)
        profiles[view] = [np.stack([row_profile(m, vm.col_range)
                                    for m in vm.maps.confidence_map(data[i][0])])
                          for i in range(len(data))]
        truth = data.label_rows_px
    return list(zip(profiles["frontal"], profiles["sagittal"], truth))


def l3_row(frontal: np.ndarray, sagittal: np.ndarray, w: float, spacing: float,
           sagittal_row: bool) -> float:
    """L3 of the sequence decoded on ``w * frontal + (1 - w) * sagittal``; with
    ``sagittal_row``, moved to the sagittal L3 channel's highest local maximum within
    ``ROW_WINDOW_MM``."""
    l3 = LEVELS.index("L3")
    row = decode_levels(w * frontal + (1 - w) * sagittal, LEVELS, spacing).rows[l3]
    if not sagittal_row or not math.isfinite(row):
        return row
    smooth = decode_profile(sagittal[l3], "profile", spacing).profile   # as prediction smooths
    lo = max(1, int(math.floor(row - ROW_WINDOW_MM / spacing)))
    hi = min(len(smooth) - 1, int(math.ceil(row + ROW_WINDOW_MM / spacing)) + 1)
    j = lo + int(np.argmax(smooth[lo:hi]))
    is_peak = smooth[j] >= smooth[j - 1] and smooth[j] >= smooth[j + 1]
    return _subpixel_peak(smooth, j) if is_peak else row


def sweep(cases: list, spacing: float, w: float, sagittal_row: bool) -> tuple[int, int, float]:
    """(positives at the right level, positives, median error mm)."""
    errors = [abs(l3_row(f, s, w, spacing, sagittal_row) - t) * spacing
              for f, s, t in cases if math.isfinite(t)]
    errors = np.array([e if math.isfinite(e) else np.inf for e in errors])
    return int((errors <= RIGHT_LEVEL_MM).sum()), len(errors), float(np.median(errors))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path, help="phantoms of another generator (npz)")
    args = ap.parse_args()
    kfold, spacing = kfold_cases(args.experiment)
    other = npz_cases(args.experiment, args.data)
    print(f"| frontal weight w | k-fold: right level / positives | {args.data.parent.name}: right "
          "level / positives | criterion (mean wrong share) | median error mm, k-fold / "
          f"{args.data.parent.name} (decoded row; row from the sagittal view) |")
    print("|---|---|---|---|---|")
    best = None
    for w in np.round(np.arange(0.5, 1.0001, 0.05), 2):
        rk, nk, mk = sweep(kfold, spacing, w, False)
        ro, no, mo = sweep(other, spacing, w, False)
        _, _, mk_s = sweep(kfold, spacing, w, True)
        _, _, mo_s = sweep(other, spacing, w, True)
        crit = ((nk - rk) / nk + (no - ro) / no) / 2
        best = (crit, w) if best is None or crit < best[0] - 1e-12 else best
        print(f"| {w:.2f} | {rk} / {nk} | {ro} / {no} | {100 * crit:.2f} % | "
              f"{mk:.2f} / {mo:.2f}; {mk_s:.2f} / {mo_s:.2f} |")
    print(f"\nlowest criterion: w = {best[1]:.2f} ({100 * best[0]:.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
