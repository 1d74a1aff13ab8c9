"""Find the L3 slice in CT scans: one scan, a DICOM folder, a folder of many, or a CSV list.

    l3loc predict scan.nii.gz                                 # the shipped model
    l3loc predict scan.nii.gz --experiment cpu_fast --out work/predict/one
    l3loc predict scans/ --experiment cpu_fast --view fused --slab-mm 5 --out results/
    l3loc predict cohort.csv --model work/cpu_fast/export --resume --out results/
    l3loc predict --review-only results/                     # rebuild results/index.html
    l3loc predict cohort.csv --shard 2/4 --device gpu:1 --out res/2   # share 2 of 4 (SLURM, GPUs)
    l3loc predict --merge res/1 res/2 res/3 res/4 --out res/all      # one results.csv, index.html

Without --experiment or --model the model shipped with the package is used (`l3loc --version`
names it). Outputs (see l3loc/predict.py): results.csv, index.html (the review page, sorted
for review: confirm or move the L3 line per scan with the keyboard, export corrections.csv;
see l3loc/review.py),
run.json, and per scan a folder with result.json, qc.png, l3_axial.png, l3_axial.nii.gz (and
l3_slab.*, l3_slice.dcm for DICOM input). A bad scan gives an `error` row and the cohort goes on.
Status: found (L3 at l3_slice), not_found (no peak above the threshold: L3 probably not in the
scan), ambiguous (a second candidate of similar confidence a vertebra or more away; both
reported), error (message says why).
"""
from pathlib import Path

from l3loc.cli import add_device_argument, add_fold_argument
from l3loc.inference import BACKENDS
from l3loc.levels import LEVELS
from l3loc.runs import DECISION_VIEWS


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="*", help="scan files, DICOM folders, folders of scans, CSV lists")
    parser.add_argument("--review-only", metavar="OUT",
                        help="only rebuild OUT/index.html, the review page, from OUT/results.csv "
                             "and the per-scan files of an earlier run (no model, no inputs)")
    parser.add_argument("--shard", metavar="K/N", help="process only share K of N of the cohort "
                        "(every N-th scan from the K-th; see l3loc/shards.py)")
    parser.add_argument("--merge", nargs="+", metavar="SHARE_OUT", help="merge the --out folders "
                        "of every share K/N into --out instead of predicting")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--experiment", help="trained run: work/<name> or a folder path "
                                             "(default: the shipped model)")
    source.add_argument("--model", help="exported or shipped model folder (l3loc export)")
    parser.add_argument("--view", choices=DECISION_VIEWS, help="frontal, sagittal, fused (both "
                        "views' nets, profiles fused) or refined (the frontal nets decide, the "
                        "sagittal nets place the rows); default: the shipped model's view, else the "
                        "best evaluated view, else fused when both are trained")
    add_fold_argument(parser, default="every trained fold, maps averaged")
    parser.add_argument("--out", help="output folder (default: work/predict/<experiment or model id>)")
    parser.add_argument("--slab-mm", type=float, default=None,
                        help="also write the mean of the slices within +-N mm of L3")
    parser.add_argument("--level", default="L3", type=str.upper, choices=LEVELS,
                        help="whose axial slice to extract (a model trained with label.levels "
                             "locates every level; default L3)")
    parser.add_argument("--threshold", type=float, help="override the not-found threshold")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="auto: the exported predictor when present, else dygraph")
    parser.add_argument("--allow-stale-export", action="store_true",
                        help="use the run's export/ even if its folds were retrained since "
                             "(default: refuse; a warning is logged)")
    parser.add_argument("--resume", action="store_true", help="skip scans already done in --out")
    parser.add_argument("--overwrite", action="store_true", help="redo scans already done in --out")
    parser.add_argument("--work-dir", default="work", help="where experiment names are looked up")
    add_device_argument(parser)


def run(args) -> int:
    from l3loc.cli import parse_folds, progress_enabled
    from l3loc.errors import InputError
    from l3loc.predict import run_prediction
    from l3loc.scan_inputs import list_inputs
    from l3loc.review import rebuild_review_page
    from l3loc.shards import parse_shard, shard_of
    from l3loc.shipping import load_model

    if args.review_only:
        if args.inputs:
            raise InputError("--review-only", "takes an output folder and no inputs: "
                                              f"got {' '.join(args.inputs)}")
        print(f"review: {rebuild_review_page(args.review_only)}")
        return 0
    if args.merge:
        return _merge(args)
    if not args.inputs:
        raise InputError("predict", "no inputs: give scan files, folders or CSV lists "
                                    "(or --review-only OUT, or --merge share folders)")
    if args.slab_mm is not None and not args.slab_mm > 0:
        raise InputError("--slab-mm", f"must be > 0 mm, got {args.slab_mm}")
    folds = parse_folds(args.fold)
    scans = list_inputs(args.inputs)
    shard = None
    if args.shard:
        k, n = parse_shard(args.shard)
        shard = {"k": k, "n": n, "cohort_size": len(scans)}
        scans = shard_of(scans, k, n)
        print(f"share {k}/{n}: {len(scans)} of {shard['cohort_size']} scans")
    localiser = load_model(args.experiment or args.model, args.view, folds, args.backend,
                           args.device, args.threshold, args.work_dir, args.allow_stale_export)
    views = "+".join(localiser.views)
    if localiser.model_id:
        print(f"model: the shipped model {localiser.model_id} ({views}, threshold "
              f"{localiser.threshold:.2f}, {localiser.device}; {localiser.source})")
    else:
        print(f"model: {localiser.source} ({views}, threshold {localiser.threshold:.2f}, "
              f"{localiser.device})")
    name = localiser.model_id or Path(localiser.source).name
    out = Path(args.out) if args.out else Path(args.work_dir) / "predict" / name
    records = run_prediction(scans, localiser, out, args.slab_mm, args.resume, args.overwrite,
                             progress_enabled(), args.command_line, args.level, shard)
    if len(records) == 1:
        r = records[0]
        print(f"{r['name']}: {r['status']}"
              + (f", L3 slice {r['l3_slice']} (z {r['l3_z_mm']:.1f} mm), confidence "
                 f"{r['confidence']:.2f}" if r["l3_slice"] is not None else "")
              + (f" - {r['message']}" if r["message"] else ""))
    print(f"results: {out / 'results.csv'}, review: {out / 'index.html'}")
    return 1 if all(r["status"] == "error" for r in records) else 0


def _merge(args) -> int:
    from l3loc.errors import InputError
    from l3loc.shards import merge_predictions

    if args.inputs or args.shard or not args.out:
        raise InputError("--merge", "takes the shares' folders and --out, no scans or --shard")
    records = merge_predictions(args.merge, args.out, args.overwrite)
    print(f"merged {len(args.merge)} shares, {len(records)} scans: {Path(args.out) / 'results.csv'}"
          f", review: {Path(args.out) / 'index.html'}")
    return 0
