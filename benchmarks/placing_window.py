"""How far may the placing view move a row? The window of ``l3loc.placement``, measured on a
k-fold's held-out phantoms: the counting run's L3 (its k-fold ``per_level_case.csv``, the
sequence's) moved to the placing fold's L3 peak within each window, two ways: kept where the peak
lies on the window's edge (``placed_row``, what l3loc does) and clamped to the edge.

    python benchmarks/placing_window.py --counting work/fresh27 --placing work/sag27/sagittal/fold_1 \
        --data work/data/mix27/l3_dataset.npz --fold 1

Both runs must share the splits (same data, same seed): the fold's held-out cases are scored.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import l3loc  # noqa: E402,F401  (sets the thread variables before paddle)
from l3loc.cache import open_cache  # noqa: E402
from l3loc.config import load_config  # noqa: E402
from l3loc.decode import decode_profile, row_profile  # noqa: E402
from l3loc.fold_profiles import load_fold_model  # noqa: E402
from l3loc.placement import placed_row  # noqa: E402
from l3loc.preprocess import band_col_range  # noqa: E402
from l3loc.preprocess_config import PreprocessConfig  # noqa: E402

WINDOWS_MM = (4, 6, 8, 10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counting", required=True, help="run folder evaluated by `l3loc eval` (k-fold)")
    ap.add_argument("--placing", required=True, help="the placing view's fold folder")
    ap.add_argument("--data", required=True, help="the runs' l3_dataset.npz")
    ap.add_argument("--fold", type=int, default=1)
    ap.add_argument("--view", default="sagittal", help="the placing fold's view")
    a = ap.parse_args()
    cfg = load_config(Path(a.placing) / "config.yaml")
    data = open_cache(cfg, a.view, source=a.data)
    t = float(cfg["preprocess"]["spacing_mm"])
    cases = pd.read_csv(Path(a.counting) / "eval" / "per_level_case.csv")
    cases = cases[(cases["fold"] == a.fold) & (cases["level"] == "L3")
                  & (cases["decoder"] == "sequence") & (cases["view"] == "frontal")]
    counting = dict(zip(cases["name"], cases["pred_row"]))
    names = json.loads((Path(a.counting) / "splits.json").read_text())["folds"][a.fold - 1]
    index = {n: i for i, n in enumerate(data.names)}
    col_range = band_col_range(PreprocessConfig.from_dict(cfg["preprocess"]), a.view)
    l3 = list(cfg["label"].get("levels", ["L3"])).index("L3")
    net = load_fold_model(Path(a.placing), cfg)
    rows = []
    for name in names:
        i = index[name]
        truth, row = float(data.label_rows_px[i]), counting.get(name, np.nan)
        if not (np.isfinite(truth) and np.isfinite(row)):
            continue
        prob = np.asarray(net(data[i][0]))
        prob = prob[l3] if prob.ndim == 3 else prob
        profile = decode_profile(row_profile(prob, col_range), "profile", t,
                                 cfg["eval"]["smooth_mm"]).profile
        out = {"counting": (row - truth) * t}
        for w in WINDOWS_MM:
            out[f"kept {w}"] = (placed_row(row, profile, t, w) - truth) * t
            lo, hi = max(0, int(np.floor(row - w / t))), min(len(profile) - 1, int(np.ceil(row + w / t)))
            peak = lo + int(np.argmax(profile[lo:hi + 1]))
            out[f"clamped {w}"] = (placed_row(float(peak), profile, t, 1.5 * t) - truth) * t
        rows.append(out)
    table = pd.DataFrame(rows).abs()
    print(f"{len(table)} held-out positives of fold {a.fold} with a counting row")
    print(pd.DataFrame({"median mm": table.median(), "mean mm": table.mean(),
                        "within 10 mm %": (table <= 10).mean() * 100}).round(2).to_string())


if __name__ == "__main__":
    main()
