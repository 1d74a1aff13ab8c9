"""Real CT next to phantoms, as the network sees them: the gap between the two, in one picture.

    python benchmarks/side_by_side.py --real-val ../shared/data/real_val --real ../shared/data/real
    python benchmarks/side_by_side.py --style plain --out benchmarks/side_by_side_plain.png

For every real scan (the rows of ``<real-val>/labels.csv`` and every ``<real>/*/ct.nii.gz`` not
listed there) one picture row: the real scan, then a phantom of the same slice thickness,
in-plane pixel size, matrix and nearest scan length (and the same L3 presence), each as
frontal and sagittal network input at the 1 mm card grid (packaged config ``_base_``) and at the
``cpu_fast`` grid (``cpu_fast``). Both go through ``preprocess_volume`` with the
config's ``PreprocessConfig``, the code prediction uses, so what is shown is what the net gets
(window [100, 1500] HU -> [0, 1], side mask, sagittal slab). The L3 row (label or ground truth)
is marked red.
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.config import load_config, resolve_config  # noqa: E402
from l3loc.errors import InputError  # noqa: E402
from l3loc.io.volume import read_volume  # noqa: E402
from l3loc.preprocess import preprocess_volume  # noqa: E402
from l3loc.preprocess_config import PreprocessConfig  # noqa: E402
from l3loc.synth.anatomy import PRESETS, STYLES, plan_case  # noqa: E402
from l3loc.synth.phantom import render_volume  # noqa: E402

#: Candidate phantoms searched per real scan (plans only: cheap).
N_CANDIDATES = 300


def real_scans(real_val: Path, real: Path) -> list[dict]:
    """(name, path, l3_z_mm or None, positive) of every real scan, labelled ones first."""
    import pandas as pd

    scans, seen = [], set()
    labels = real_val / "labels.csv"
    if labels.exists():
        for row in pd.read_csv(labels).itertuples():
            path = (real_val / row.path).resolve()
            z = None if row.negative or not np.isfinite(row.l3_z_mm) else float(row.l3_z_mm)
            scans.append({"name": row.name, "path": path, "l3_z_mm": z, "positive": not row.negative})
            seen.add(path)
    for path in sorted(real.glob("*/ct.nii.gz")):
        if path.resolve() not in seen:
            # unlabelled scans of ../real are abdominal: matched with phantoms that hold L3
            scans.append({"name": path.parent.name, "path": path.resolve(), "l3_z_mm": None, "positive": True})
    if not scans:
        raise InputError(real_val, "no labels.csv here and no */ct.nii.gz under --real")
    return scans


def matching_phantom(ct, positive: bool, style: str, seed: int):
    """The plan of similar acquisition (thickness, pixel, matrix) whose scan length is nearest to
    the real one's and whose L3 presence matches, and its rendered volume."""
    t, _, px = ct.spacing_mm
    length = ct.hu.shape[0] * t
    cfg = replace(PRESETS["default"], thickness_mm={round(t, 3): 1.0}, inplane_mm=(px, px),
                  matrix=int(min(max(ct.hu.shape[1:]), 512)), style=style)
    best = min((plan_case(seed, i, cfg) for i in range(N_CANDIDATES)),
               key=lambda p: (p.l3_in_fov != positive, abs(p.shape[0] * t - length)))
    return best, render_volume(best)


def net_inputs(ct, label_slice, cfgs: dict) -> list:
    """[(title, image, label row px)] for each config and view."""
    out = []
    for cname, pcfg in cfgs.items():
        for view in ("frontal", "sagittal"):
            pc = preprocess_volume(ct, view, label_slice, pcfg)
            out.append((f"{view[0].upper()} {cname}", pc.image, pc.label_row_px, pcfg.spacing_mm))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-val", type=Path, default=ROOT.parent / "shared" / "data" / "real_val")
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "side_by_side.png")
    ap.add_argument("--style", choices=sorted(STYLES), default="default", help="phantom style family")
    ap.add_argument("--seed", type=int, default=0, help="phantom dataset seed")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args()
    cfgs = {name: PreprocessConfig.from_dict(load_config(resolve_config(file))["preprocess"])
            for name, file in (("1mm", "_base_"), ("cpu_fast", "cpu_fast"))}
    rows = []
    for scan in real_scans(args.real_val, args.real):
        ct = read_volume(scan["path"])
        lab = None if scan["l3_z_mm"] is None else float(ct.geometry.canonical_from_z(scan["l3_z_mm"]))
        plan, hu = matching_phantom(ct, scan["positive"], args.style, args.seed)
        gt = plan.ground_truth()
        ph = SimpleNamespace(hu=hu, spacing_mm=plan.spacing_mm, geometry=None)
        t, _, px = ct.spacing_mm
        rows.append((f"{scan['name']}: {ct.hu.shape[0]} x {t:.2f} mm, {px:.2f} mm px", net_inputs(ct, lab, cfgs),
                     f"{plan.name} ({plan.fov_type}, {plan.style}): {plan.shape[0]} x {plan.spacing_mm[0]:.2f} mm, "
                     f"{plan.spacing_mm[2]:.2f} mm px", net_inputs(ph, gt["l3_slice"], cfgs)))
        print(f"{scan['name']}: phantom {plan.name} {plan.fov_type} {plan.shape}", flush=True)
    write_figure(args.out, rows)
    print(f"wrote {args.out}")
    return 0


def write_figure(path: Path, rows: list) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 8, figsize=(16, 3.6 * len(rows)), squeeze=False,
                             gridspec_kw={"wspace": 0.05, "hspace": 0.35})
    for r, (real_title, real_imgs, ph_title, ph_imgs) in enumerate(rows):
        for k, (title, img, lab, mm) in enumerate(real_imgs + ph_imgs):
            ax = axes[r, k]
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if np.isfinite(lab):
                ax.axhline(lab, color="red", lw=0.6)
            ax.set_title(("real " if k < 4 else "phantom ") + title, fontsize=7)
            ax.axis("off")
        axes[r, 0].text(0, -0.16, real_title, transform=axes[r, 0].transAxes, fontsize=7, va="top")
        axes[r, 4].text(0, -0.16, ph_title, transform=axes[r, 4].transAxes, fontsize=7, va="top")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight", format="png")
    plt.close(fig)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as exc:   # one line naming the file, as the tools do
        if "--debug" in sys.argv:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
