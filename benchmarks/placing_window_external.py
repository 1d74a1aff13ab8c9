"""How far may the placing view move a row, on a dataset outside the model's k-fold? A shipped or
run folder with a ``refined`` view evaluated on ``--data`` once per window of
``l3loc.placement`` (the frontal nets count, the sagittal nets place; statuses never change), the
refined view's L3 error of every positive reported per window.

    python benchmarks/placing_window_external.py --model l3loc/shipped/ft26e-sag27-refined-1 \
        --data work/data/cal26/l3_dataset.npz --out work/window_cal26 --windows 10 12.5 15 20

Choose the window on a set that is no test set (cal26 is the calibration set); `--data` can be a
real set (a folder with labels.csv) to check that no wider window moves a found row off its body.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

import l3loc  # noqa: E402,F401  (sets the thread variables before paddle)
from l3loc import localisation  # noqa: E402
from l3loc.external import evaluate_external  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a run or shipped folder with a refined view")
    ap.add_argument("--data", required=True, help="l3_dataset.npz or a folder with labels.csv")
    ap.add_argument("--out", required=True, help="folder for one evaluation per window")
    ap.add_argument("--windows", type=float, nargs="+", default=[10.0, 12.5, 15.0, 20.0])
    a = ap.parse_args()
    rows = []
    for w in a.windows:
        localisation.PLACING_WINDOW_MM = w     # what prediction and external evaluation read
        out = Path(a.out) / f"window_{w:g}"
        if not (out / "per_case.csv").exists():
            evaluate_external(a.model, a.data, out_dir=out, plots=False)
        t = pd.read_csv(out / "per_case.csv")
        t = t[(t["view"] == "refined") & (t["folds"] == "ensemble") & ~t["negative"].astype(bool)]
        err, found = t["error_mm"].abs(), t["status"] == "found"
        rows.append({"window mm": w, "positives": len(t), "median mm": err.median(),
                     "mean mm": err.mean(), "within 10 mm": int((err <= 10).sum()),
                     "within 10 mm %": 100 * (err <= 10).mean(),
                     "found right": int((found & t["right_level"].astype(bool)).sum()),
                     "found wrong": int((found & ~t["right_level"].astype(bool)).sum()),
                     "found rows' largest mm": err[found].max()})
    print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
