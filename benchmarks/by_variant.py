"""An evaluation of phantoms split by one of their ground-truth variants: does a model's level
follow a feature of the generator?

    python benchmarks/by_variant.py --eval work/ship_s21_varied2 \
        --data work/data/synth300_s21_varied2 --by arch_transition

``--eval`` is the output folder of ``tools/eval.py --data <phantoms>`` (its per_case.csv),
``--data`` the phantoms' folder (its ground_truth.json); ``--by`` any scalar field of the ground
truth (arch_transition, fov_type, n_lumbar, n_rib_pairs, contrast_phase, inplane_binning, ...);
``--bins`` splits a continuous one at the given edges (``--by arch_taper --bins 0 0.8 1.6 2.5``:
intervals closed on the right, the first one including its lower edge).
Prints, per view and value, over the positive cases of the fold ensemble: how many, right level
`found`, wrong-level `found`, best row at L3 (whatever the status), the median signed error of
the decision's L3 (+ = cranial: the prediction above the truth) and how many lie more than 20 mm
(about half a vertebra) from the truth.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def split(per_case: pd.DataFrame, truth: pd.DataFrame, by: str, bins: list[float] | None = None) -> pd.DataFrame:
    """One row per view and value of ``by`` (per interval between ``bins`` edges if given): the
    positives of the fold ensemble."""
    cases = per_case[(per_case["folds"] == "ensemble") & ~per_case["negative"].astype(bool)]
    cases = cases.merge(truth[["name", by]], on="name", how="left", validate="many_to_one")
    if bins is not None:
        cases[by] = pd.cut(cases[by], bins, include_lowest=True)   # intervals sort in order
    rows = []
    for (view, value), g in cases.groupby(["view", by], sort=True, observed=True):
        right = g["right_level"].astype(bool)
        found = g["status"] == "found"
        signed = g["pred_z_mm"] - g["true_z_mm"]
        rows.append({"view": view, by: value, "cases": len(g), "right found": int((found & right).sum()),
                     "wrong found": int((found & ~right).sum()), "best row at L3": int(right.sum()),
                     "median signed mm": round(float(signed.median()), 1),
                     "off > 20 mm": int((signed.abs() > 20).sum())})
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", required=True, type=Path, help="tools/eval.py --data output folder")
    ap.add_argument("--data", required=True, type=Path, help="the phantoms' folder (ground_truth.json)")
    ap.add_argument("--by", required=True, help="a scalar ground-truth field")
    ap.add_argument("--bins", type=float, nargs="+", metavar="EDGE",
                    help="split a continuous field at these edges (ascending; >= 2)")
    args = ap.parse_args()
    truth = pd.DataFrame(json.loads((args.data / "ground_truth.json").read_text()))
    if args.by not in truth.columns:
        print(f"{args.data / 'ground_truth.json'}: no field {args.by!r} (fields: {', '.join(truth.columns)})",
              file=sys.stderr)
        return 2
    if args.bins is not None and (len(args.bins) < 2 or any(b >= c for b, c in zip(args.bins, args.bins[1:]))):
        print(f"--bins: need at least two ascending edges, got {args.bins}", file=sys.stderr)
        return 2
    table = split(pd.read_csv(args.eval / "per_case.csv"), truth, args.by, args.bins)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
