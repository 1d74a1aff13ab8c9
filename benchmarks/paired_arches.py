"""The same phantoms with every vertebral arch at one brightness: do a model's levels follow the
arches' look?

    python benchmarks/paired_arches.py --out work/data/pair_arch --arch 0.55 1.1 --n 300 --seed 21
    python tools/eval.py --experiment <run> --data work/data/pair_arch/arch_0.55/l3_dataset.npz   # and arch_1.1

Generation 22 draws each case's arch (laminae, articular and spinous processes) at 0.55-1.1 of
solid cortical bone (``SynthConfig.arch_of_cortex``). For each ``--arch`` value this writes
``<out>/arch_<value>/``: the ``--n`` cases of ``--seed`` with that range narrowed to the one value.
The draw still takes its place in the case's random stream, so every other feature of a case
(anatomy, scene, acquisition, noise) is the same in every folder: only the arches differ, and a
model's difference between the folders is what the arches' brightness alone does to it.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l3loc.cli import script_main  # noqa: E402
from l3loc.synth.config import PRESETS  # noqa: E402
from l3loc.synth.writers import generate_dataset  # noqa: E402


def with_arch(preset: str, arch: float):
    """The preset's config with every arch at ``arch`` of cortical bone."""
    return dataclasses.replace(PRESETS[preset], arch_of_cortex=(arch, arch))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="one folder arch_<value>/ per --arch value in it")
    ap.add_argument("--arch", type=float, nargs="+", default=list(PRESETS["default"].arch_of_cortex),
                    help="arch brightness(es), fractions of solid cortical bone (default: the ends of the drawn range)")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overwrite", action="store_true", help="replace the datasets of non-empty folders")
    args = ap.parse_args()
    try:                                      # every value checked before any dataset is written
        configs = {arch: with_arch(args.preset, arch) for arch in args.arch}
    except ValueError as exc:
        ap.error(f"--arch: {exc}")
    for arch, config in configs.items():
        generate_dataset(args.out / f"arch_{arch:g}", args.n, seed=args.seed, preset=config,
                         workers=args.workers, overwrite=args.overwrite, progress=True)
    return 0


if __name__ == "__main__":
    script_main(main)
