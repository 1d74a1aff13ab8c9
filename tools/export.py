"""Export a trained experiment as Paddle inference models (one per fold and view).

    python tools/export.py --experiment cpu_fast
    python tools/export.py --experiment work/cpu_fast --view sagittal --folds 1,2 --out export_dir

Writes <out>/<view>/fold_<K>/{model.json, model.pdiparams, config.yaml} and <out>/export.json
(default <out>: work/<experiment>/export, which tools/predict.py then uses by itself).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without install

from l3loc.cli import run_tool  # noqa: E402
from l3loc.preprocess import VIEWS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True, help="work/<name> or a run folder path")
    parser.add_argument("--view", choices=VIEWS, help="default: every trained view")
    parser.add_argument("--folds", help="comma-separated 1-based folds (default: all trained)")
    parser.add_argument("--out", help="default: <run folder>/export")
    parser.add_argument("--dynamic-width", action="store_true",
                        help="InputSpec [1,1,None,None] instead of a fixed canvas width")
    parser.add_argument("--overwrite", action="store_true", help="replace existing exports")
    parser.add_argument("--work-dir", default="work")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()

    from l3loc.errors import InputError
    from l3loc.export import export_experiment
    from l3loc.inference import resolve_run_dir

    try:
        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    except ValueError:
        raise InputError("--folds", f"expected e.g. 1,2,3, got {args.folds!r}") from None
    root = resolve_run_dir(args.experiment, args.work_dir)
    manifest = export_experiment(root, args.out, [args.view] if args.view else None, folds,
                                 args.dynamic_width, args.overwrite)
    print(f"exported {', '.join(f'{v} folds {f}' for v, f in manifest['views'].items())} -> "
          f"{args.out or root / 'export'}")
    return 0


if __name__ == "__main__":
    run_tool(main)
