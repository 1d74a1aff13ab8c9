"""How a model does on phantoms with unusual spines: the rows of an external evaluation on an
``l3_dataset.npz`` (``l3loc eval --data``), grouped by the number of lumbar vertebrae and rib
pairs, and, on transitional spines, which convention the rows follow.

    l3loc eval --experiment <model> --data work/data/synth300_g24_s21/l3_dataset.npz --out work/m_g24
    python benchmarks/unusual_spines.py work/m_g24 [more evaluation folders] [--view refined]

The truth names vertebrae down from the last rib (``l3loc.levels``): with 6 lumbar vertebrae,
counting three up from the sacrum lands on the truth's L4, with 4 on its L2. A row within 10 mm of
that vertebra follows the sacrum's count instead of the ribs'. Needs the phantoms' own
``n_lumbar``, ``n_rib_pairs`` and ``level_rows`` (``l3loc synth`` writes them).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from l3loc.cli import script_main  # noqa: E402
from l3loc.errors import InputError  # noqa: E402
from l3loc.io.npz import read_l3_npz  # noqa: E402
from l3loc.levels import LEVELS  # noqa: E402

WITHIN_MM = 10.0
#: The truth's name of the vertebra three above the sacrum, by the number of lumbar vertebrae.
SACRUM_COUNTED_L3 = {4: "L2", 5: "L3", 6: "L4"}


def spine_rows(per_case_csv: Path, view: str) -> pd.DataFrame:
    """The positive ensemble rows of one view, with each phantom's spine and the distance of its
    row from the L3 counted up from the sacrum."""
    t = pd.read_csv(per_case_csv)
    t = t[(t["folds"] == "ensemble") & (t["view"] == view) & ~t["negative"].astype(bool)]
    if t.empty:
        raise InputError(per_case_csv, f"no positive ensemble rows of the {view} view")
    npz = Path(t["input"].iloc[0])
    ds, _ = read_l3_npz(npz)
    missing = [k for k in ("n_lumbar", "n_rib_pairs", "level_rows") if k not in ds.extra]
    if missing:
        raise InputError(npz, f"has no {', '.join(missing)}: not a phantom set of l3loc synth")
    index = {n: i for i, n in enumerate(ds.names)}
    levels = ds.level_rows()
    i = np.array([index[n] for n in t["name"]])
    n_lumbar = np.asarray(ds.extra["n_lumbar"])[i].astype(int)
    sacrum_level = [LEVELS.index(SACRUM_COUNTED_L3[n]) for n in n_lumbar]
    # npz phantoms have no volume: z = -row * slice spacing, as l3loc.case_geometry does
    sacrum_z = -levels[i, sacrum_level] * ds.spacings[i, 2]
    return t.assign(n_lumbar=n_lumbar, n_rib_pairs=np.asarray(ds.extra["n_rib_pairs"])[i].astype(int),
                    at_rib_l3=t["error_mm"].abs().to_numpy() <= WITHIN_MM,
                    at_sacrum_l3=np.abs(t["pred_z_mm"].to_numpy() - sacrum_z) <= WITHIN_MM)


def report(rows: pd.DataFrame) -> str:
    """Text: per spine, cases, within 10 mm, ambiguous, wrong level found; then the
    transitional spines' rows by convention."""
    wrong_found = (rows["status"] == "found") & ~rows["right_level"].astype(bool)
    g = rows.assign(wrong_found=wrong_found, ambiguous=rows["status"] == "ambiguous").groupby(
        ["n_lumbar", "n_rib_pairs"]).agg(cases=("at_rib_l3", "size"), within_10_mm=("at_rib_l3", "sum"),
                                         ambiguous=("ambiguous", "sum"), wrong_found=("wrong_found", "sum"))
    usual = (rows["n_lumbar"] == 5) & (rows["n_rib_pairs"] == 12)
    trans = rows[rows["n_lumbar"] != 5]
    lines = [f"within {WITHIN_MM:g} mm: {int(rows['at_rib_l3'].sum())} of {len(rows)}; usual spines (5 lumbar, "
             f"12 rib pairs) {int(rows[usual]['at_rib_l3'].sum())} of {int(usual.sum())}, the others "
             f"{int(rows[~usual]['at_rib_l3'].sum())} of {int((~usual).sum())}", "",
             g.to_string(), "",
             f"transitional spines ({len(trans)}): rows at the L3 counted from the ribs (the truth) "
             f"{int(trans['at_rib_l3'].sum())}, from the sacrum {int(trans['at_sacrum_l3'].sum())}, "
             f"neither {int((~trans['at_rib_l3'] & ~trans['at_sacrum_l3']).sum())}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evaluations", nargs="+", type=Path, help="folders written by l3loc eval --data <npz>")
    ap.add_argument("--view", default="refined", help="the view's rows (default refined)")
    a = ap.parse_args(argv)
    for folder in a.evaluations:
        print(f"## {folder} ({a.view})\n\n{report(spine_rows(folder / 'per_case.csv', a.view))}\n")
    return 0


if __name__ == "__main__":
    script_main(main)
