"""Generate synthetic CT phantoms with exact L3 ground truth, in the paper's l3_dataset.npz layout.

    l3loc synth --n 1000 --out work/data/synth1000 --seed 0
    l3loc synth --preset tiny --out work/data/synth_tiny --preview 8
    l3loc synth --preset demo --out work/data/synth_demo --volumes 4
    l3loc synth --n 1000 --out work/data/synth1000_smooth --style smooth
    l3loc synth --n 300 --out work/data/synth300_varied --seed 21 --anatomy varied
    l3loc synth --n 1000 --out work/data/synth1000_unusual --seed 34 --unusual-spines 0.3

--style picks a rendering family (l3loc.synth.config.STYLES): the same seed gives the same
cases (skeleton, fields of view, ground truth) in every style; kernels, noise grain and level,
bone texture, soft-tissue and contrast values, table and habitus differ. Train on one family and
evaluate on another to measure transfer rather than memory of one look:
  default  mixed soft/standard/sharp kernels, 0.9 px noise grain, curved table
  smooth   mostly soft kernel, blotchy 1.8 px grain, coarse bone grain, weak contrast,
           flat table, heavier patients
  sharp    mostly sharp (edge-enhancing) kernel, fine strong noise, fine bone grain, strong
           contrast, stronger metal streaks, thinner patients

--anatomy picks the spines' family (l3loc.synth.config.ANATOMIES): the same seed gives the same
scans (fields of view, acquisition, scene) with other lumbar spines. Hold one out to see whether
a net counts the levels or names a vertebra by the look one family gives each level:
  default  the literature's mean schedule: bodies and discs grow from L1 down, two thirds of
           the lordosis at L4-S1, per-level sizes scattered by 3.5 %
  varied   per-level sizes scattered by 8 %, growth from none to twice the mean, lordosis
           20-85 degrees, each level's share of it 0.1-1.9 times the mean; the arches turn
           lumbar a vertebra above or below the last rib in half the cases, lumbar pedicles
           widen 0.4-1.6 times the mean, each level's processes scattered by 12 %,
           the thoracic arches grade into lumbar ones over 0-2.5 levels above the turn

Writes l3_dataset.npz, ground_truth.json, and optionally preview.png (--preview N), NIfTI
volumes + DICOM series + annotations.csv (--volumes K, --dicom M). Case i depends only on the
seed and the preset, not on --workers. Refuses to write into a non-empty folder without
--overwrite.

--unusual-spines F makes a share F of the spines transitional (4 or 6 lumbar vertebrae) and,
independently, a share F with 11 or 13 rib pairs: training data for counting them from the last
rib (the ground truth's convention, l3loc.synth.anatomy) rather than from the sacrum.
"""
from l3loc.errors import InputError
from l3loc.synth.config import ANATOMIES, PRESET_CASES, PRESETS, STYLES, with_unusual_spines


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="rates and resolution; tiny = 8 small cases for tests")
    parser.add_argument("--style", choices=sorted(STYLES), default="default",
                        help="rendering family (same cases, another look; see above)")
    parser.add_argument("--anatomy", choices=sorted(ANATOMIES), default="default",
                        help="the spines' family (same scans, other spines; see above)")
    parser.add_argument("--unusual-spines", type=float, metavar="F",
                        help="share of spines without 5 lumbar vertebrae (4 or 6, half each) and, "
                             "drawn apart, of 11 or 13 rib pairs (default: the preset's, 10 %% and 9 %%)")
    parser.add_argument("--n", type=int, help=f"number of cases (default per preset: {PRESET_CASES})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--preview", type=int, default=0, metavar="N", help="PNG montage of the first N cases")
    parser.add_argument("--volumes", type=int, default=0, metavar="K",
                        help="also write the first K cases as NIfTI and annotations.csv")
    parser.add_argument("--dicom", type=int, default=2, metavar="M",
                        help="of those, also write the first M as DICOM series (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")


def run(args) -> int:
    from l3loc.cli import progress_enabled
    from l3loc.synth.writers import generate_dataset

    n = PRESET_CASES[args.preset] if args.n is None else args.n
    for flag, value in (("--n", n), ("--workers", args.workers)):
        if value < 1:
            raise InputError(flag, f"must be >= 1, got {value}")
    for flag, value in (("--preview", args.preview), ("--volumes", args.volumes), ("--dicom", args.dicom)):
        if value < 0:
            raise InputError(flag, f"must be >= 0, got {value}")
    from dataclasses import replace

    config = replace(PRESETS[args.preset], style=args.style, anatomy=args.anatomy)
    if args.unusual_spines is not None:
        if not 0 <= args.unusual_spines <= 1:
            raise InputError("--unusual-spines", f"must be between 0 and 1, got {args.unusual_spines}")
        config = with_unusual_spines(config, args.unusual_spines)
    generate_dataset(args.out, n, seed=args.seed, preset=config, workers=args.workers,
                     n_preview=args.preview, n_volumes=args.volumes, n_dicom=args.dicom,
                     overwrite=args.overwrite, progress=progress_enabled())
    return 0
