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

``--features-out PATH`` also draws the first real scan next to phantoms of its acquisition that
show one structure each (``FEATURES``: a steep lumbosacral junction, a compression fracture,
osteophytes bridging a disc, pedicle screws and rods, forearms on the belly, a stub last rib
below steep lowest ribs), to check that each is visible and plausible as the net sees it.

    python benchmarks/side_by_side.py --features-out benchmarks/side_by_side_features.png
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
from l3loc.cli import script_main  # noqa: E402
from l3loc.config import load_config, resolve_config  # noqa: E402
from l3loc.errors import InputError  # noqa: E402
from l3loc.io.volume import read_volume  # noqa: E402
from l3loc.preprocess import preprocess_volume  # noqa: E402
from l3loc.preprocess_config import PreprocessConfig  # noqa: E402
from l3loc.synth.anatomy import plan_case  # noqa: E402
from l3loc.synth.config import PRESETS, STYLES  # noqa: E402
from l3loc.synth.phantom import geometry, render_volume  # noqa: E402
from l3loc.synth.scene import forearm_axes  # noqa: E402

#: Candidate phantoms searched per real scan (plans only: cheap).
N_CANDIDATES = 300
#: Phantoms that show one structure each (--features-out): (title, SynthConfig overrides, plan
#: predicate); searched among 2000 candidates whose field of view runs from T12 to below S1 (a
#: wrist within cpu_fast's +-38 mm frontal band for the forearms).
FEATURES = (
    ("sacral slope >= 45 deg", {}, lambda p: p.vertebra("S").tilt_top >= 45),
    ("compression fracture", {}, lambda p: any(v.fracture != "none" and v.name in ("T12", "L1", "L2", "L3")
                                               for v in p.vertebrae)),
    ("osteophytes bridging a disc", {}, lambda p: any(v.bridge_below and v.name[0] == "L" for v in p.vertebrae)),
    ("pedicle screws and rods", {"metal_rates": {"spine_rods": 1.0}}, lambda p: True),
    ("forearms on the belly", {"arms_raised_rate": 0.0},
     lambda p: any(abs(w[0] - p.body_x_mm) < 38 for _, w in forearm_axes(p, geometry(p)))),
    ("a stub last rib, steep lowest ribs", {"short_rib_rate": 1.0}, lambda p: p.bone["low_rib_deg"] >= 40),
)


def _lumbosacral(p) -> bool:
    """The plan's scan shows T12 to below the S1 plate."""
    return p.slice_z_mm[0] > p.vertebra(f"T{p.n_rib_pairs}").z_top and p.slice_z_mm[-1] < -40


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


def matching_phantom(ct, positive: bool, style: str, seed: int, overrides: dict | None = None,
                     want=None, n: int = N_CANDIDATES):
    """The plan of similar acquisition (thickness, pixel, matrix) whose scan length is nearest to
    the real one's and whose L3 presence matches (among those ``want`` accepts, when given), and
    its rendered volume."""
    t, _, px = ct.spacing_mm
    length = ct.hu.shape[0] * t
    # coarse pixels (a PET/CT's CT) are rendered on a ~1 mm grid and binned, as the generator does
    b = max(1, int(round(px / 0.9))) if px > PRESETS["default"].lowres_mm[0] - 0.5 else 1
    cfg = replace(PRESETS["default"], thickness_mm={round(t, 3): 1.0}, inplane_mm=(px / b, px / b),
                  matrix=int(min(max(ct.hu.shape[1:]) * b, 512)), lowres_rate=float(b > 1),
                  lowres_mm=(px, px), style=style, **(overrides or {}))
    best = min((p for p in (plan_case(seed, i, cfg) for i in range(n)) if want is None or want(p)),
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
    ap.add_argument("--features-out", type=Path, default=None,
                    help="also draw the first real scan next to phantoms showing one structure each")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args()
    cfgs = {name: PreprocessConfig.from_dict(load_config(resolve_config(file))["preprocess"])
            for name, file in (("1mm", "_base_"), ("cpu_fast", "cpu_fast"))}
    rows, first = [], None
    for scan in real_scans(args.real_val, args.real):
        ct = read_volume(scan["path"])
        lab = None if scan["l3_z_mm"] is None else float(ct.geometry.canonical_from_z(scan["l3_z_mm"]))
        plan, hu = matching_phantom(ct, scan["positive"], args.style, args.seed)
        real = (f"{scan['name']}: {ct.hu.shape[0]} x {ct.spacing_mm[0]:.2f} mm, {ct.spacing_mm[2]:.2f} mm px",
                net_inputs(ct, lab, cfgs))
        first = first or (scan, ct, real)
        rows.append(real + _phantom_row(plan, hu, cfgs))
        print(f"{scan['name']}: phantom {plan.name} {plan.fov_type} {plan.acquired_shape}", flush=True)
    write_figure(args.out, rows)
    print(f"wrote {args.out}")
    if args.features_out is not None:
        scan, ct, real = first
        rows = []
        for title, overrides, want in FEATURES:
            plan, hu = matching_phantom(ct, scan["positive"], args.style, args.seed, overrides,
                                        lambda p, want=want: _lumbosacral(p) and want(p), n=2000)
            ph_title, ph_imgs = _phantom_row(plan, hu, cfgs)
            rows.append(real + (f"{title}: {ph_title}", ph_imgs))
            print(f"{title}: phantom {plan.name} {plan.fov_type} {plan.acquired_shape}", flush=True)
        write_figure(args.features_out, rows)
        print(f"wrote {args.features_out}")
    return 0


def _phantom_row(plan, hu, cfgs: dict) -> tuple[str, list]:
    """(title, network inputs) of a rendered phantom."""
    ph = SimpleNamespace(hu=hu, spacing_mm=plan.acquired_spacing_mm, geometry=None)
    return (f"{plan.name} ({plan.fov_type}, {plan.style}): {plan.acquired_shape[0]} x {plan.spacing_mm[0]:.2f} mm, "
            f"{plan.acquired_spacing_mm[2]:.2f} mm px", net_inputs(ph, plan.ground_truth()["l3_slice"], cfgs))


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
    script_main(main)
