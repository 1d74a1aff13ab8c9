"""Gantry-tilted phantoms written as a scanner writes them, to measure the reading of tilted scans.

    python benchmarks/tilted_series.py --n 40 --seed 31 --out work/data/tilted40
    l3loc eval --experiment l3loc/shipped/ft26e-frontal-1 --data work/data/tilted40 --out work/ft26e_tilted40

The default preset with every case tilted (5-25 degrees either way, about the L3 body's centre;
``l3loc.synth.acquisition.tilt``), everything else as drawn. Each case is written twice, and
``annotations.csv`` lists both: as a DICOM series that carries its tilt (ImageOrientationPatient
leans, ImagePositionPatient follows the table), which ``read_volume`` resamples onto
axis-aligned slices, and as a NIfTI that stacks the tilted slices upright (what a converter that
cannot store a shear leaves, and what l3loc read from any tilted scan before it de-sheared). One
evaluation of the folder therefore puts the two readings of the same scans side by side; split
its per_case.csv by the input's suffix (``.nii.gz`` or a folder).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from l3loc.synth.config import PRESETS
from l3loc.synth.writers import generate_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    config = replace(PRESETS["default"], tilt_rate=1.0)
    generate_dataset(args.out, args.n, seed=args.seed, preset=config, workers=args.workers,
                     n_volumes=args.n, n_dicom=args.n, overwrite=args.overwrite, progress=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
