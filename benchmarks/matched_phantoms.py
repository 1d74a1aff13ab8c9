"""Phantoms of each real scan's acquisition and field of view, thin and made thick alike: does a
model lose a real scan at 5 mm because of the slices or because of how the real spine looks?

    python benchmarks/matched_phantoms.py --data ../shared/data/real_val --out work/data/matched --n 10
    python tools/eval.py --experiment l3loc/shipped/<model> --data work/data/matched --out work/matched
    python benchmarks/matched_phantoms.py --data ../shared/data/real_val --out work/data/matched_stub --set short_rib_rate=1

For each positive scan of ``<data>/labels.csv``, ``--n`` phantoms (seeds ``--seed``, ``--seed`` + 1,
...; every other one of the ``varied`` anatomy family) of its slice thickness, pixel size and
matrix (``side_by_side.matching_phantom``), chosen among plans that hold L3 and start about as far
over it as the real scan does (within ``START_TOLERANCE_MM``), with no gantry tilt. Each is
written as NIfTI (``<real>~<phantom>.nii.gz``) and, when its slices are thinner than
``--thick-mm``, again made into contiguous slabs of that thickness exactly as
``benchmarks/real_thick.py`` makes the real 5 mm set (``..._thick<mm>.nii.gz``), with a
``labels.csv`` of the phantoms' own L3 (centre and body extent, the phantom's z). Evaluation only.

If a model's result on the phantoms does not change with the thickening while the real scan's
does, the phantoms keep a cue at thick slices that the real spine does not have. ``--set`` gives
every phantom a SynthConfig value (``short_rib_rate=1``: every last rib pair a stub, as
ircad_07's) to test one such cue.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from l3loc.cli import script_main  # noqa: E402
from l3loc.synth.config import PRESETS  # noqa: E402
from real_crops import write_derived_set  # noqa: E402
from real_thick import thick_version  # noqa: E402
from side_by_side import matching_phantom  # noqa: E402

#: How far the phantom's first slice may lie from the real scan's, counted from L3 (mm).
START_TOLERANCE_MM = 30.0


def matched_phantoms(ct, l3_z_mm: float, n: int, seed: int, overrides: dict | None = None):
    """``n`` (plan, hu) of ``ct``'s acquisition whose scans start as far over L3 as ``ct``'s
    (``overrides``: SynthConfig fields, e.g. ``{"short_rib_rate": 1.0}``)."""
    start = float(np.max(ct.geometry.z_mm(range(ct.hu.shape[0])))) - l3_z_mm

    def want(p):
        return (p.l3_in_fov and p.tilt_deg == 0
                and abs(p.slice_z_mm[0] - p.vertebra("L3").z_centre - start) <= START_TOLERANCE_MM)

    for k in range(n):
        anatomy = "varied" if k % 2 else "default"
        yield matching_phantom(ct, True, "default", seed + k, overrides={**(overrides or {}), "anatomy": anatomy},
                               want=want)


def config_overrides(items: list[str]) -> dict:
    """``["short_rib_rate=1", "arch_of_cortex=0.4", ...]`` -> ``{"short_rib_rate": 1.0,
    "arch_of_cortex": (0.4, 0.4)}``: numeric SynthConfig fields, and (min, max) ranges given as
    ``min,max`` or one number for both (a ValueError names the bad item)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        current = getattr(PRESETS["default"], key, None)
        is_range = isinstance(current, tuple) and len(current) == 2 and all(
            isinstance(v, (int, float)) for v in current)
        if not value or isinstance(current, bool) or not (is_range or isinstance(current, (int, float))):
            raise ValueError(f"--set {item}: want FIELD=NUMBER with FIELD a numeric SynthConfig field "
                             "(or FIELD=MIN,MAX for a range)")
        numbers = tuple(float(v) for v in value.split(","))
        if is_range:
            if len(numbers) not in (1, 2):
                raise ValueError(f"--set {item}: {key} takes MIN,MAX or one number")
            out[key] = (numbers[0], numbers[-1])
            continue
        if len(numbers) != 1 or (isinstance(current, int) and not numbers[0].is_integer()):
            want = "a whole number" if isinstance(current, int) else "one number"
            raise ValueError(f"--set {item}: {key} takes {want}")
        out[key] = int(numbers[0]) if isinstance(current, int) else numbers[0]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a folder with labels.csv (real scans)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=10, help="phantoms per real scan")
    ap.add_argument("--seed", type=int, default=100, help="seed of the first phantom")
    ap.add_argument("--thick-mm", type=float, default=5.0, help="also write each phantom as slabs this thick")
    ap.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                    help="numeric SynthConfig fields for every phantom, e.g. short_rib_rate=1 (every last rib a stub), "
                         "arch_of_cortex=0.4 (every arch that bright; a range as MIN,MAX)")
    ap.add_argument("--overwrite", action="store_true", help="replace the scans of a non-empty --out")
    args = ap.parse_args(argv)
    try:
        overrides = config_overrides(args.set)
    except ValueError as e:
        ap.error(str(e))

    def derive(ct, r):
        for plan, hu in matched_phantoms(ct, float(r["l3_z_mm"]), args.n, args.seed, overrides):
            l3, spacing = plan.vertebra("L3"), plan.acquired_spacing_mm
            labels = {"l3_z_mm": l3.z_centre, "l3_top_z_mm": l3.z_top, "l3_bottom_z_mm": l3.z_bottom}
            name = f"{r['name']}~{plan.name}_{plan.anatomy}"
            yield name, hu, spacing, float(plan.slice_z_mm[0]), labels
            if spacing[0] < args.thick_mm:
                yield (*thick_version(name, hu, spacing, plan.slice_z_mm, args.thick_mm), labels)

    write_derived_set(args.data, args.out, derive, args.overwrite)
    return 0


if __name__ == "__main__":
    script_main(main)
