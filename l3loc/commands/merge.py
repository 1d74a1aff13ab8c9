"""Merge l3_dataset.npz files into one, to train on several phantom families at once.

    l3loc merge --out work/data/synth_mix work/data/synth_g3/l3_dataset.npz work/data/synth_g4/l3_dataset.npz

A net trained on one generator learns its shortcuts; trained on several generators (or styles)
it has to learn what they share. Each case's name gets its dataset's folder name as a prefix
(``synth_g3_synth_s0_00001``); the annotators must be the same in every file; an extra array
(``level_rows``, ``sagittal_slab_mm``) is kept when every file has it, else dropped with a note.
Writes <out>/l3_dataset.npz, and <out>/ground_truth.json (every case's record under its new name)
when every source folder has one; refuses an existing dataset without --overwrite.
"""
import json
from pathlib import Path

from l3loc.atomic import write_text
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
    truth = merged_ground_truth(sources, [prefix for prefix, _ in parts])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_l3_npz(out, merged, overwrite=args.overwrite)
    if truth is None:
        log.warning("[MERGE] no ground_truth.json written: not every source folder has one")
    else:
        write_text(out.parent / "ground_truth.json", json.dumps(truth, indent=1), overwrite=True)
    log.info("[MERGE] %d cases from %d datasets -> %s", len(merged), len(parts), out)
    return 0


def merged_ground_truth(sources: list[Path], prefixes: list[str]) -> list[dict] | None:
    """The sources' ground_truth.json records in the merged order, each ``name`` prefixed as
    the npz names are (so per-case tables of the merge can be joined to the truth); None when a
    source folder has none (e.g. the paper's dataset)."""
    records = []
    for src, prefix in zip(sources, prefixes):
        path = src.parent / "ground_truth.json"
        if not path.is_file():
            return None
        try:
            part = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(path, f"unreadable ground truth ({exc})") from None
        records += [{**r, "name": f"{prefix}_{r['name']}"} for r in part]
    return records
