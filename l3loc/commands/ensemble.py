"""Pool the folds of runs trained apart into one ensemble (see l3loc/run_ensemble.py).

    l3loc ensemble --out work/both26 --view frontal work/ft26 work/fresh26
    l3loc calibrate --experiment work/both26 --data work/data/cal26/l3_dataset.npz

The runs' nets must share network, preprocessing and labels (checked). Writes <out>/<view>/fold_N/
for every fold of every run, in the order given; refuses existing folds without --overwrite. The
pool has no k-fold of its own: choose its threshold with `l3loc calibrate` on fresh labelled data.
"""
from pathlib import Path


def add_arguments(parser) -> None:
    from l3loc.cli import add_runs_arguments

    add_runs_arguments(parser)


def run(args) -> int:
    import logging

    from l3loc.run_ensemble import ensemble_runs

    sources = ensemble_runs([Path(r) for r in args.runs], Path(args.out), args.view, args.overwrite)
    logging.getLogger("l3loc").info("[ENSEMBLE] %s: %d folds of %d runs -> %s; choose its "
                                    "threshold with `l3loc calibrate`", args.view, len(sources),
                                    len(args.runs), args.out)
    return 0
