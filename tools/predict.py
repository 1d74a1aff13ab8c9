"""Find the L3 slice in CT scans: one scan, a DICOM folder, a folder of many, or a CSV list.

    python tools/predict.py scan.nii.gz --experiment cpu_fast --out work/predict/one
    python tools/predict.py scans/ --experiment cpu_fast --view both --slab-mm 5 --out results/
    python tools/predict.py cohort.csv --model work/cpu_fast/export --resume --out results/

Outputs (see l3loc/predict.py): results.csv, index.html (sorted for review), run.json, and per
scan a folder with result.json, qc.png, l3_axial.png, l3_axial.nii.gz (and l3_slab.*,
l3_slice.dcm for DICOM input). A bad scan gives an `error` row and the cohort goes on.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without install

from l3loc.cli import run_tool  # noqa: E402
from l3loc.config import VIEWS  # noqa: E402
from l3loc.inference import BACKENDS  # noqa: E402
from l3loc.levels import LEVELS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="scan files, DICOM folders, folders of scans, CSV lists")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", help="trained run: work/<name> or a folder path")
    source.add_argument("--model", help="exported model folder (tools/export.py)")
    parser.add_argument("--view", choices=VIEWS, help="default: the best evaluated view, else "
                        "both when both are trained")
    parser.add_argument("--folds", help="comma-separated 1-based folds to average (default: all)")
    parser.add_argument("--out", help="output folder (default: work/predict/<experiment>)")
    parser.add_argument("--slab-mm", type=float, default=None,
                        help="also write the mean of the slices within +-N mm of L3")
    parser.add_argument("--level", default="L3", type=str.upper, choices=LEVELS,
                        help="whose axial slice to extract (a model trained with label.levels "
                             "locates every level; default L3)")
    parser.add_argument("--threshold", type=float, help="override the not-found threshold")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="auto: the exported predictor when present, else dygraph")
    parser.add_argument("--resume", action="store_true", help="skip scans already done in --out")
    parser.add_argument("--overwrite", action="store_true", help="redo scans already done in --out")
    parser.add_argument("--work-dir", default="work", help="where experiment names are looked up")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()

    from l3loc.cli import progress_enabled, resolve_device
    from l3loc.errors import InputError
    from l3loc.inference import load_localiser, resolve_run_dir
    from l3loc.predict import list_inputs, run_prediction

    if args.slab_mm is not None and not args.slab_mm > 0:
        raise InputError("--slab-mm", f"must be > 0 mm, got {args.slab_mm}")
    try:
        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    except ValueError:
        raise InputError("--folds", f"expected e.g. 1,2,3, got {args.folds!r}") from None
    root = resolve_run_dir(args.experiment or args.model, args.work_dir)
    scans = list_inputs(args.inputs)
    device = resolve_device(args.device)
    localiser = load_localiser(root, args.view, folds, args.backend, device, args.threshold)
    out = Path(args.out) if args.out else Path(args.work_dir) / "predict" / root.name
    records = run_prediction(scans, localiser, out, args.slab_mm, args.resume, args.overwrite,
                             progress_enabled(), " ".join(sys.argv), args.level)
    if len(records) == 1:
        r = records[0]
        print(f"{r['name']}: {r['status']}"
              + (f", L3 slice {r['l3_slice']} (z {r['l3_z_mm']:.1f} mm), confidence "
                 f"{r['confidence']:.2f}" if r["l3_slice"] is not None else "")
              + (f" - {r['message']}" if r["message"] else ""))
    return 1 if all(r["status"] == "error" for r in records) else 0


if __name__ == "__main__":
    run_tool(main)
