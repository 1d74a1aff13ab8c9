"""Phantom sets of one acquisition family, to ask whether a model's failure on a real scan is
its acquisition (voxel size, slice thickness) or its look.

    python benchmarks/acquisition_sets.py --family coarse --out work/data/probe_coarse --n 120 --seed 21
    python benchmarks/acquisition_sets.py --family standard --out work/data/probe_standard --n 120 --seed 21
    python tools/eval.py --experiment l3loc/shipped/<model> --data work/data/probe_coarse/l3_dataset.npz --out work/probe_coarse

Both families are the default generator with L3 and both counting anchors in the field (half
head-to-thigh, half chest-abdomen-pelvis fields; no chest-only or abdomen-only cases, no
negatives); only the acquisition differs:

- ``coarse``: a PET/CT's attenuation CT like ``gate_wholebody`` of the real validation set:
  4.4 mm slices and 4-5 mm pixels (every case low-resolution, the generator's 10 %: a draw of
  4.0-4.8 mm, rounded to a whole number of rendered 0.6-1.0 mm pixels).
- ``standard``: 2.5 or 3 mm slices, 0.6-1.0 mm pixels.

If a model finds L3 on both alike, a real scan of the coarse kind that it misses differs from the
phantoms in something other than its voxels.
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l3loc.synth.config import PRESETS  # noqa: E402
from l3loc.synth.writers import generate_dataset  # noqa: E402

_BOTH_ANCHORS = {"head_to_thigh": 0.5, "chest_abdomen_pelvis": 0.5}
FAMILIES = {
    "coarse": replace(PRESETS["default"], thickness_mm={4.4: 1.0}, lowres_rate=1.0, lowres_mm=(4.0, 4.8),
                      fov_rates=_BOTH_ANCHORS),
    "standard": replace(PRESETS["default"], thickness_mm={2.5: 0.5, 3.0: 0.5}, lowres_rate=0.0,
                        fov_rates=_BOTH_ANCHORS),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", choices=sorted(FAMILIES), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    generate_dataset(args.out, args.n, seed=args.seed, preset=FAMILIES[args.family], workers=args.workers,
                     overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
