"""Accuracy columns for ``bench_models.py --accuracy``, read from the evaluations of one run per config.

Usage (after training and evaluating each config as in ``benchmarks/README.md``, "The UNet
family"):

    python benchmarks/models_accuracy.py --prefix acc_ --out acc.csv

For each config ``C`` of ``bench_models.MODEL_CONFIGS`` it reads the sagittal rows of
``work/<prefix>C/eval/summary.csv`` (``l3loc eval``: held-out synthetic fold) and of
``work/<prefix>C/eval_<name>/summary.csv`` (``l3loc eval --data``: the second synthetic set, the
held-out phantom style and the real validation set) and writes one CSV row: ``train_min`` (the
minutes the sagittal fold 1 trained, from its ``train_log.csv``), the mean and median L3 error
in mm per set, then per set the positives found at the right level (the held-out fold: within
10 mm, and detected) and the negatives called ``not_found`` as ``k/n`` (and on real CT the
positives found at a wrong level, the worst outcome, and those whose best row is at L3 whatever
the status). A config whose runs are missing is left out, with a line saying so. It also prints
each config's mean error minus the baseline's on the same cases, with a bootstrap interval.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_models import MODEL_CONFIGS  # noqa: E402  (same folder)

from l3loc.atomic import write_text  # noqa: E402

#: column prefix -> evaluation folder under the run (eval_<dataset name> for ``--data``).
SETS = {
    "synth_fold1": "eval",
    "synth2": "eval_synth_g3_s1",
    "synth_style": "eval_synth_g3_smooth_s2",
    "real_val": "eval_real_val",
}


def _sagittal_row(path: Path) -> dict:
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["view"] == "sagittal"]
    if len(rows) != 1:
        raise SystemExit(f"{path}: expected one sagittal row, found {len(rows)}")
    return rows[0]


def accuracy_row(run: Path) -> dict:
    """The accuracy columns of one run folder (see the module docstring)."""
    # the training's own clock (epochs with their validation), under the protocol's conditions
    with open(run / "sagittal" / "fold_1" / "train_log.csv", newline="") as fh:
        out = {"train_min": f"{sum(float(r['seconds']) for r in csv.DictReader(fh)) / 60:.1f}"}
    for column, folder in SETS.items():
        r = _sagittal_row(run / folder / "summary.csv")
        out[f"{column}_mm"] = f"{float(r['mean_mm']):.2f}"
        out[f"{column}_median_mm"] = f"{float(r['median_mm']):.2f}"
        if folder == "eval":
            # the fold's own evaluation has no level verdict: positives within 10 mm (what
            # external evaluation calls the right level without the body's extent), and
            # positives not called not_found
            n_pos = int(r["n_positive"])
            near = round(float(r["within_10mm_pct"]) * n_pos / 100)
            out[f"{column}_within_10mm"] = f"{near}/{n_pos}"
            out[f"{column}_detected"] = f"{r['positive_right']}/{n_pos}"
            neg = r["negative_right"]
        else:
            out[f"{column}_right_level"] = f"{r['right_level_found']}/{r['n_positive']}"
            neg = r["negatives_right"]
        out[f"{column}_negatives_right"] = f"{neg}/{r['n_negative']}"
    # real CT has few positives: also the worst outcome, and the best row whatever the status
    out["real_val_wrong_level"] = r["wrong_level_found"]
    out["real_val_best_row_right"] = f"{r['best_row_right_level']}/{r['n_positive']}"
    return out


def paired_differences(runs: dict[str, Path], baseline: str, n_boot: int = 2000) -> list[str]:
    """Mean error of each config minus the baseline's on the same positive cases, per set, with a
    95 % bootstrap interval over cases (the test-set part of the noise; not the training part:
    another seed or fold moves the figures too). Lines of a Markdown table."""
    import numpy as np
    import pandas as pd

    def errors(run: Path, folder: str) -> pd.Series:
        cases = pd.read_csv(run / folder / "per_case.csv")
        cases = cases[(cases["view"] == "sagittal") & ~cases["negative"].astype(bool)]
        return cases.set_index("name")["error_mm"].astype(float)

    sets = [s for s in SETS if s != "real_val"]  # 3 real positives: no interval worth printing
    lines = ["| config | " + " | ".join(f"{s} (mm)" for s in sets) + " |",
             "|---|" + "---|" * len(sets)]
    for name, run in runs.items():
        if name == baseline:
            continue
        cells = []
        for column in sets:
            base, other = errors(runs[baseline], SETS[column]), errors(run, SETS[column])
            diff = (other - base.reindex(other.index)).dropna().to_numpy()
            rng = np.random.default_rng(0)  # one draw per cell: an added config moves no other
            boot = rng.choice(diff, (n_boot, diff.size)).mean(axis=1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
            cells.append(f"{diff.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=Path("work"))
    ap.add_argument("--prefix", default="acc_", help="run folder = <work-dir>/<prefix><config>")
    ap.add_argument("--configs", nargs="+", default=list(MODEL_CONFIGS))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    ap.add_argument("--baseline", default="cpu_fast",
                    help="also print each config's error minus this one's, case by case")
    args = ap.parse_args(argv)
    rows, runs = [], {}
    for name in args.configs:
        run = args.work_dir / f"{args.prefix}{name}"
        missing = [f for f in SETS.values() if not (run / f / "summary.csv").is_file()]
        if missing:
            print(f"{name}: left out, {run} has no {', '.join(missing)}")
            continue
        rows.append({"config": name, **accuracy_row(run)})
        runs[name] = run
    if not rows:
        raise SystemExit("no config has all its evaluations")
    lines = [",".join(rows[0])] + [",".join(r.values()) for r in rows]
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists (--overwrite replaces it)")
    write_text(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.baseline in runs:
        print(f"\nMean error minus {args.baseline}'s on the same positive cases, 95 % bootstrap "
              "interval over cases:")
        print("\n".join(paired_differences(runs, args.baseline)))


if __name__ == "__main__":
    main()
