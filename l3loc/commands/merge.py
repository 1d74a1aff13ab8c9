"""Merge l3_dataset.npz files into one, to train on several phantom families at once.

    l3loc merge --out work/data/synth_mix work/data/synth_g3/l3_dataset.npz work/data/synth_g4/l3_dataset.npz

A net trained on one generator learns its shortcuts; trained on several generators (or styles)
it has to learn what they share. Each case's name gets its dataset's folder name as a prefix
(``synth_g3_synth_s0_00001``); the annotators must be the same in every file; an extra array
(``level_rows``, ``sagittal_slab_mm``) is kept when every file has it, else dropped with a note.
Writes <out>/l3_dataset.npz; refuses an existing one without --overwrite.
"""
from pathlib import Path

from l3loc.errors import InputError


def add_arguments(parser) -> None:
    parser.add_argument("sources", nargs="+", help="l3_dataset.npz files (two or more)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")


def run(args) -> int:
    import logging

    from l3loc.external import dataset_name
    from l3loc.io.npz import merge_datasets, read_l3_npz, write_l3_npz

    sources = [Path(s) for s in args.sources]
    if len(sources) < 2:
        raise InputError("sources", "give two or more l3_dataset.npz files to merge")
    out = Path(args.out) / "l3_dataset.npz"
    if out.exists() and not args.overwrite:
        raise InputError(out, "exists; pass --overwrite to replace it")
    parts = []
    for src in sources:
        ds, _ = read_l3_npz(src)   # an invalid case raises, naming the file and the case
        parts.append((dataset_name(src), ds))   # synth_g3/l3_dataset.npz -> synth_g3
    try:
        merged, notes = merge_datasets(parts)
    except ValueError as exc:
        raise InputError(", ".join(map(str, sources)), str(exc)) from None
    log = logging.getLogger("l3loc")
    for note in notes:
        log.warning("[MERGE] %s", note)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_l3_npz(out, merged, overwrite=args.overwrite)
    log.info("[MERGE] %d cases from %d datasets -> %s", len(merged), len(parts), out)
    return 0
