"""Evaluate trained folds: L3 errors in mm and slices per case, per fold and per view
(frontal, sagittal, fused: the two views' profiles fused, and refined: the frontal decision
with its rows placed by the sagittal nets), with plots.

    l3loc eval                                   # every fold and view of the latest experiment
    l3loc eval --experiment cpu_fast --view sagittal --fold 5 --decoder argmax
    l3loc eval --experiment cpu_fast --data real_val/      # external data: a folder with labels.csv
    python tools/eval.py                         # the same, from a clone

Fold K is evaluated with fold K's best.pdparams on fold K's held-out cases (splits.json).
Outputs: work/<experiment>/eval/ (a narrowed run: eval/<view>_fold<K>_<decoder>/):
per_case.csv, per_fold.csv, summary.csv, summary.md and PNG plots; see l3loc/evaluate.py.

--data PATH evaluates on a dataset the experiment was not trained on, every case a test case:
an l3_dataset.npz, an annotation CSV of scans (optional l3_top_z_mm/l3_bottom_z_mm: the L3
body's extent), or a folder holding labels.csv. Scans go through prediction's own code. Outputs:
work/<experiment>/eval_<dataset name>/ (per_case.csv, summary.csv, summary.md, montage_*.png);
see l3loc/external.py. With --fold K,L it scores the ensemble of those folds only (into
eval_<dataset name>_foldK-L/), e.g. to compare ensembles of 2 and 3 folds.
"""
from pathlib import Path

from l3loc.cli import add_device_argument, add_fold_argument
from l3loc.decode import DECODERS
from l3loc.evaluate import EVAL_VIEWS


def add_arguments(parser) -> None:
    parser.add_argument("--experiment", help="name under --work-dir or a path (default: the "
                                             "latest trained experiment)")
    parser.add_argument("--view", choices=EVAL_VIEWS, action="append",
                        help="report only this view (repeatable; default: all)")
    add_fold_argument(parser)
    parser.add_argument("--decoder", choices=DECODERS, help="default: eval.decoder of the config")
    parser.add_argument("--threshold", type=float,
                        help="not_found threshold (default: chosen on the held-out folds)")
    parser.add_argument("--data", help="external dataset: an npz, an annotation CSV, or a folder "
                                       "with labels.csv (every case a test case)")
    parser.add_argument("--per-fold", action="store_true",
                        help="with --data: also score each fold alone (default: the ensemble)")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --data: replace an earlier evaluation in the output folder; "
                             "k-fold: replace thresholds set by l3loc calibrate")
    parser.add_argument("--work-dir", default="work", help="folder of the experiments")
    parser.add_argument("--out", help="output folder (default: <experiment>/eval)")
    parser.add_argument("--no-plots", action="store_true", help="CSV and Markdown only")
    add_device_argument(parser)


def run(args) -> int:
    from l3loc.cli import parse_folds, progress_enabled, resolve_device
    from l3loc.evaluate import evaluate_experiment
    from l3loc.runs import latest_experiment, resolve_run_dir

    folds = parse_folds(args.fold)
    if args.experiment:
        exp = resolve_run_dir(args.experiment, args.work_dir)
    else:
        exp = latest_experiment(args.work_dir)
    device = resolve_device(args.device)
    if args.data:
        from l3loc.errors import InputError
        from l3loc.external import evaluate_external, external_out_dir

        if args.view or args.decoder:
            raise InputError("--data", "--view and --decoder apply to the k-fold evaluation; "
                                       "--data scores every view (--fold: an ensemble of those "
                                       "folds; --per-fold: each fold alone)")
        summary = evaluate_external(exp, args.data, args.per_fold, args.out, args.threshold,
                                    plots=not args.no_plots, overwrite=args.overwrite,
                                    device=device, progress=progress_enabled(), folds=folds)
        out = Path(args.out) if args.out else external_out_dir(exp, args.data, folds)
        print((out / "summary.md").read_text(encoding="utf-8"))
        print(f"per-case table and montages: {out}")
        return 0 if len(summary) else 1
    out = Path(args.out) if args.out else kfold_out_dir(exp, args.view, folds, args.decoder,
                                                          args.threshold)
    summary = evaluate_experiment(exp, views=args.view, folds=folds, decoder=args.decoder,
                                  threshold=args.threshold, out_dir=out, plots=not args.no_plots,
                                  progress=progress_enabled(), overwrite=args.overwrite)
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"per-case, per-fold and summary files: {out}")
    return 0 if len(summary) else 1


def kfold_out_dir(exp: Path, views, folds, decoder, threshold) -> Path:
    """Where a k-fold evaluation writes: ``eval/`` (whose decision.json prediction, export and
    ``--data`` read) for the whole run, a subfolder for a narrowed one, which must not replace
    it. Naming every view the run has (``--view sagittal`` of a sagittal-only run) narrows
    nothing."""
    from l3loc.runs import FUSED, trained_folds

    nets = {view for view, _, _ in trained_folds(exp)}   # what evaluation itself can score
    every = nets | ({FUSED} if len(nets) == 2 else set())
    if not (folds or decoder or threshold is not None or (views and set(views) != every)):
        return exp / "eval"
    parts = ["-".join(views or ["all"]), "fold" + "-".join(map(str, folds)) if folds else "allfolds",
             decoder or "cfgdecoder"]
    if threshold is not None:
        parts.append(f"t{threshold:g}")
    return exp / "eval" / "_".join(parts)
