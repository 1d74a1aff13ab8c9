"""An evaluation of phantoms split by one of their ground-truth variants: does a model's level
follow a feature of the generator?

    python benchmarks/by_variant.py --eval work/ship_s21_varied2 \
        --data work/data/synth300_s21_varied2 --by arch_transition
    python benchmarks/by_variant.py --eval work/fresh27/eval --data work/data/synth_g26sharp_s29 \
        work/data/synth_g26smoothv_s30 --by tilt_deg --bins -30 -15 -5 -0.01 0.01 5 15 30

``--eval`` is the output folder of ``tools/eval.py --data <phantoms>`` (its per_case.csv; the fold
ensemble's rows) or of a k-fold ``tools/eval.py`` (every held-out case once; right level judged
from the truth's L3 body as the external evaluation does); ``--data`` one or more phantom folders
(their ground_truth.json); cases of a merged dataset (``l3loc merge`` prefixes each name with its
source folder's name) are matched to their source by that suffix, cases of no given folder are
left out. ``--by`` any scalar field of the ground truth (arch_transition, fov_type, n_lumbar,
n_rib_pairs, contrast_phase, inplane_binning, tilt_deg, ...);
``--bins`` splits a continuous one at the given edges (``--by arch_taper --bins 0 0.8 1.6 2.5``:
intervals closed on the right, the first one including its lower edge).
Prints, per view and value, over the positive cases of the fold ensemble: how many, right level
`found`, wrong-level `found`, best row at L3 (whatever the status), the median signed error of
the decision's L3 (+ = cranial: the prediction above the truth), how many lie within 10 mm (the
phantom target's measure) and how many more than 20 mm (about half a vertebra) from the truth.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from l3loc.external_tables import right_level


def split(per_case: pd.DataFrame, truth: pd.DataFrame, by: str, bins: list[float] | None = None) -> pd.DataFrame:
    """One row per view and value of ``by`` (per interval between ``bins`` edges if given): the
    positives of the fold ensemble."""
    ensemble = per_case["folds"] == "ensemble" if "folds" in per_case else True   # k-fold: all
    cases = per_case[ensemble & ~per_case["negative"].astype(bool)]
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
                     "within 10 mm": int((signed.abs() <= 10).sum()),
                     "off > 20 mm": int((signed.abs() > 20).sum())})
    return pd.DataFrame(rows)


def kfold_cases(per_case: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """A k-fold evaluation's rows in the form of an external one: names matched to the truth's
    (a merged dataset's names end in ``<source folder>_<name>``; unmatched rows are dropped) and
    the right level judged from the truth's L3 body (``l3loc.external_tables.right_level``)."""
    keys = dict(zip(truth["key"], truth["name"]))
    parts = [n.split("_") for n in per_case["name"]]
    # the longest suffix of the merged name that is a key: <source folder>_<name>
    names = [next((keys["_".join(p[i:])] for i in range(len(p)) if "_".join(p[i:]) in keys), None)
             for p in parts]
    cases = per_case.assign(name=names).dropna(subset=["name"])
    # a k-fold's z is counted from the scan's first row, the truth's is world z: shift by the
    # case's offset between the two L3 centres, then judge by the L3 body as the truth gives it
    by_name = truth.set_index("name")
    offset = by_name.loc[cases["name"], "l3_z_mm"].to_numpy(dtype=float) - cases["true_z_mm"].to_numpy()
    cases["pred_z_mm"] = cases["pred_z_mm"] + offset
    cases["true_z_mm"] = cases["true_z_mm"] + offset
    l3 = {n: v.get("L3", (float("nan"),) * 2) for n, v in zip(truth["name"], truth["vertebrae_z_mm"])}
    cases["right_level"] = [right_level(p, t, *l3[n]) for p, t, n in
                            zip(cases["pred_z_mm"], cases["true_z_mm"], cases["name"])]
    return cases


def read_truth(folders: list[Path]) -> pd.DataFrame:
    """The ground truth of every phantom folder, with ``key`` = ``<folder name>_<name>``."""
    tables = []
    for folder in folders:
        t = pd.DataFrame(json.loads((folder / "ground_truth.json").read_text()))
        tables.append(t.assign(key=folder.name + "_" + t["name"]))
    truth = pd.concat(tables, ignore_index=True)
    if truth["name"].duplicated().any():
        raise SystemExit(f"{', '.join(map(str, folders))}: case names repeat across these folders "
                         "(give folders of different seeds)")
    return truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval", required=True, type=Path, help="tools/eval.py --data output folder")
    ap.add_argument("--data", required=True, type=Path, nargs="+",
                    help="the phantoms' folder(s) (ground_truth.json)")
    ap.add_argument("--by", required=True, help="a scalar ground-truth field")
    ap.add_argument("--bins", type=float, nargs="+", metavar="EDGE",
                    help="split a continuous field at these edges (ascending; >= 2)")
    args = ap.parse_args()
    truth = read_truth(args.data)
    if args.by not in truth.columns:
        print(f"{args.data[0] / 'ground_truth.json'}: no field {args.by!r} (fields: "
              f"{', '.join(truth.columns)})", file=sys.stderr)
        return 2
    if args.bins is not None and (len(args.bins) < 2 or any(b >= c for b, c in zip(args.bins, args.bins[1:]))):
        print(f"--bins: need at least two ascending edges, got {args.bins}", file=sys.stderr)
        return 2
    per_case = pd.read_csv(args.eval / "per_case.csv")
    if "folds" not in per_case:                       # a k-fold evaluation
        per_case = kfold_cases(per_case, truth)
    table = split(per_case, truth, args.by, args.bins)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
