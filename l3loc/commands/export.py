"""Export a trained experiment as Paddle inference models (one per fold and view), or as the
model shipped with the package.

    l3loc export --experiment cpu_fast
    l3loc export --experiment work/cpu_fast --view sagittal --fold 1,2 --out export_dir
    l3loc export --experiment cpu_fast --view fused --fold 1 --ship synth-v1 \
        --reference-scan tests/data/totalseg_example_ct/ct.nii.gz           # the shipped model

Writes <out>/<view>/fold_<K>/{model.json, model.pdiparams, config.yaml} and <out>/export.json
(default <out>: work/<experiment>/export, which `l3loc predict` then uses by itself).
With --ship ID: <out or the package's l3loc/shipped>/<ID>/ holds the export plus metadata.json
(view, folds, the threshold evaluation chose, the training commands) and a MODEL_CARD.md whose
real-CT figures are left for a person to measure and fill in (see l3loc/shipping.py).
"""
from l3loc.cli import add_fold_argument
from l3loc.runs import DECISION_VIEWS


def add_arguments(parser) -> None:
    parser.add_argument("--experiment", required=True, help="work/<name> or a run folder path")
    parser.add_argument("--view", choices=DECISION_VIEWS, help="frontal, sagittal, fused or refined "
                        "(both views' nets); default: every trained view (with --ship: the best "
                        "evaluated view)")
    add_fold_argument(parser, default="every trained fold")
    parser.add_argument("--out", help="default: <run folder>/export (with --ship: the package's "
                                      "folder of shipped models)")
    parser.add_argument("--ship", metavar="MODEL_ID",
                        help="export as the package's shipped model with this id")
    parser.add_argument("--reference-scan", metavar="SCAN",
                        help="with --ship: run the shipped model on this scan and record its "
                             "result (the tests check the installed weights still give it)")
    parser.add_argument("--dynamic-width", action="store_true",
                        help="InputSpec [1,1,None,None] instead of a fixed canvas width")
    parser.add_argument("--overwrite", action="store_true", help="replace existing exports")
    parser.add_argument("--work-dir", default="work", help="where experiment names are looked up")


def run(args) -> int:
    from l3loc.cli import parse_folds
    from l3loc.errors import InputError
    from l3loc.export import export_experiment
    from l3loc.runs import nets_of, resolve_run_dir

    folds = parse_folds(args.fold)
    root = resolve_run_dir(args.experiment, args.work_dir)
    if args.ship:
        from l3loc.shipping import MODEL_CARD, ship_model

        if args.dynamic_width:
            raise InputError("--dynamic-width", "not with --ship (the shipped model keeps the "
                                                "canvas width it was trained on)")
        dest = ship_model(root, args.ship, args.view, folds, args.out, args.overwrite,
                          args.reference_scan)
        print(f"shipped model {args.ship} -> {dest}; fill in the TO FILL parts of "
              f"{dest / MODEL_CARD}")
        return 0
    manifest = export_experiment(root, args.out, nets_of(args.view) if args.view else None, folds,
                                 args.dynamic_width, args.overwrite)
    print(f"exported {', '.join(f'{v} folds {f}' for v, f in manifest['views'].items())} -> "
          f"{args.out or root / 'export'}")
    return 0
