"""Evaluate trained folds: L3 errors in mm and slices per case, per fold and per view
(frontal, sagittal, and the two fused), with plots.

    python tools/eval.py                                   # every fold and view of the latest experiment
    python tools/eval.py --experiment cpu_fast --view sagittal --fold 5 --decoder argmax

Fold K is evaluated with fold K's best.pdparams on fold K's held-out cases (splits.json).
Outputs: work/<experiment>/eval/ (a narrowed run: eval/<view>_fold<K>_<decoder>/):
per_case.csv, per_fold.csv, summary.csv, summary.md and PNG plots; see l3loc/evaluate.py.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without install

from l3loc.cli import progress_enabled, run_tool  # noqa: E402
from l3loc.decode import DECODERS  # noqa: E402
from l3loc.evaluate import EVAL_VIEWS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", help="name under --work-dir or a path (default: the "
                                             "latest trained experiment)")
    parser.add_argument("--view", choices=EVAL_VIEWS, action="append",
                        help="report only this view (repeatable; default: all)")
    parser.add_argument("--fold", type=int, action="append", help="only this 1-based fold (repeatable)")
    parser.add_argument("--decoder", choices=DECODERS, help="default: eval.decoder of the config")
    parser.add_argument("--threshold", type=float,
                        help="not_found threshold (default: chosen on the held-out folds)")
    parser.add_argument("--work-dir", default="work", help="folder of the experiments")
    parser.add_argument("--out", help="output folder (default: <experiment>/eval)")
    parser.add_argument("--no-plots", action="store_true", help="CSV and Markdown only")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()

    from l3loc.evaluate import evaluate_experiment, latest_experiment
    from l3loc.inference import resolve_run_dir

    if args.experiment:
        exp = resolve_run_dir(args.experiment, args.work_dir)
    else:
        exp = latest_experiment(args.work_dir)
    out = Path(args.out) if args.out else exp / "eval"
    if not args.out and (args.view or args.fold or args.decoder or args.threshold is not None):
        # a narrowed run must not replace the full evaluation
        parts = ["-".join(args.view or ["all"]),
                 "fold" + "-".join(map(str, args.fold)) if args.fold else "allfolds",
                 args.decoder or "cfgdecoder"]
        if args.threshold is not None:
            parts.append(f"t{args.threshold:g}")
        out = out / "_".join(parts)

    from l3loc.cli import resolve_device

    resolve_device(args.device)
    summary = evaluate_experiment(exp, views=args.view, folds=args.fold, decoder=args.decoder,
                                  threshold=args.threshold, out_dir=out, plots=not args.no_plots,
                                  progress=progress_enabled())
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"per-case, per-fold and summary files: {out}")
    return 0 if len(summary) else 1


if __name__ == "__main__":
    run_tool(main)
