"""Join two models by view into one `refined` model (see l3loc/run_ensemble.py, compose_refined).

    l3loc compose --counting l3loc/shipped/ft26e-sag27-refined-1 --placing work/sag29 --out work/place29
    l3loc eval --experiment work/place29 --data ../shared/data/real_val --per-fold
    l3loc export --experiment work/place29 --view refined --ship <model id>

The counting model's frontal folds and its evaluated frontal threshold decide (status, confidence,
which vertebra); the placing model's sagittal folds move each row to their peak of the same level
nearby. Either may be a run folder or an exported / shipped model. The composition has no k-fold
of its own: its statuses are the counting model's, so is its threshold.
"""
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--counting", required=True,
                        help="run or model folder whose frontal nets and threshold decide")
    parser.add_argument("--placing", required=True, help="run or model folder whose sagittal nets place")
    parser.add_argument("--out", required=True, help="output run folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing folds and decision")


def run(args) -> int:
    import logging

    from l3loc.run_ensemble import compose_refined

    record = compose_refined(Path(args.counting), Path(args.placing), Path(args.out), args.overwrite)
    logging.getLogger("l3loc").info("[COMPOSE] %d folds (frontal from %s, sagittal from %s) -> %s, "
                                    "view refined", len(record["folds"]), args.counting, args.placing,
                                    args.out)
    return 0
