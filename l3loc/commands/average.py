"""Average the weights of fine-tuning rounds fold by fold (see l3loc/weight_average.py).

    l3loc average --out work/soup3 --view frontal work/ft25b work/ft26 work/ft26b
    l3loc eval --experiment work/soup3 --view frontal      # its k-fold and threshold, as any run

The rounds must be fine-tuned from the same starting weights (same network, preprocessing and
labels; checked). Writes <out>/<view>/fold_K/ for every fold all rounds have; refuses an existing
fold without --overwrite.
"""
from pathlib import Path


def add_arguments(parser) -> None:
    from l3loc.cli import add_runs_arguments

    add_runs_arguments(parser)


def run(args) -> int:
    import logging

    from l3loc.weight_average import average_runs

    folds = average_runs([Path(r) for r in args.runs], Path(args.out), args.view, args.overwrite)
    logging.getLogger("l3loc").info("[AVERAGE] %s folds %s: the mean of %d rounds -> %s",
                                    args.view, folds, len(args.runs), args.out)
    return 0
