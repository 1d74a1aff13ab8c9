"""Choose an ensemble's not_found threshold on fresh labelled data (see l3loc/calibration.py).

    l3loc calibrate --experiment work/both26 --data work/data/cal26/l3_dataset.npz

The data needs positive and negative cases none of the nets was trained or selected on (fresh
phantoms of another seed); never the set the model is judged on. Writes the threshold of every
view into <experiment>/eval/decision.json (refuses to replace thresholds without --overwrite) and
the evaluation behind it into <experiment>/calibration_<dataset name>/.
"""


def add_arguments(parser) -> None:
    from l3loc.cli import add_device_argument

    parser.add_argument("--experiment", required=True, help="name under --work-dir or a path")
    parser.add_argument("--data", required=True, help="labelled dataset: an npz, an annotation "
                                                      "CSV, or a folder with labels.csv")
    parser.add_argument("--work-dir", default="work", help="folder of the experiments")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run's thresholds and an earlier calibration")
    add_device_argument(parser)


def run(args) -> int:
    import logging

    from l3loc.calibration import calibrate
    from l3loc.cli import progress_enabled, resolve_device
    from l3loc.runs import resolve_run_dir

    exp = resolve_run_dir(args.experiment, args.work_dir)
    decision = calibrate(exp, args.data, args.overwrite, resolve_device(args.device),
                         progress_enabled())
    for view, entry in decision["views"].items():
        logging.getLogger("l3loc").info("[CALIBRATE] %s %s: threshold %.3f (%s)", exp.name, view,
                                        entry["threshold"], entry["threshold_method"])
    return 0
