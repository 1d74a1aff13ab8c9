"""Prediction speed and memory: a 512 x 512 x 400 scan, a cpu_fast-like model, one fold and five.

    python benchmarks/bench_predict.py [--repeats 5] [--config cpu_fast]

Weights are random (timing does not depend on them). Makes under work/bench_predict/ a 5-fold
run folder for both views, its export, and the scan as .nii.gz and as a DICOM series (once).
Prints medians; the machine's 2 cores are shared, so compare medians, not single runs.
"""
import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import l3loc  # noqa: E402,F401  (sets the thread variables before paddle)
from l3loc.config import load_config, save_config  # noqa: E402
from l3loc.io.dicom import write_dicom_series  # noqa: E402
from l3loc.io.geometry import CTVolume, VolumeGeometry  # noqa: E402
from l3loc.io.volume import read_volume, write_volume  # noqa: E402

SPACING = (1.25, 0.8, 0.8)


def scan(n=400, size=512, seed=0) -> np.ndarray:
    """A 400 x 512 x 512 int16 body: air, tissue, fat rim, spine column, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((yy - 256) / 170.0) ** 2 + ((xx - 256) / 220.0) ** 2 <= 1
    spine = ((yy - 360) / 25.0) ** 2 + ((xx - 256) / 25.0) ** 2 <= 1
    base = np.where(body, 40, -1000).astype(np.int16)
    base[spine] = 500
    hu = np.repeat(base[None], n, axis=0)
    hu += rng.integers(-15, 16, size=(1, size, size), dtype=np.int16)  # cheap texture
    return hu


def make_run(root: Path, cfg: dict, folds=5) -> None:
    import paddle

    from l3loc.models import build_net

    for view in ("frontal", "sagittal"):
        for k in range(1, folds + 1):
            d = root / view / f"fold_{k}"
            if (d / "best.pdparams").exists():
                continue
            d.mkdir(parents=True, exist_ok=True)
            paddle.seed(k)
            paddle.save(build_net(cfg).state_dict(), str(d / "best.pdparams"))
            save_config(cfg, d / "config.yaml")


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN plans kernels for this height on the first call)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--config", default="cpu_fast", help="packaged config name or YAML path")
    args = ap.parse_args()

    from l3loc.export import export_experiment
    from l3loc.inference import load_localiser
    from l3loc.localisation import localise
    from l3loc.predict import predict_volume

    work = Path("work/bench_predict")
    cfg = load_config(args.config,
                      ["preprocess.spacing_mm=2.0", "preprocess.canvas=[256,128]",
                       "model.base_channels=16", "model.depth=4"])
    run = work / "run"
    make_run(run, cfg)
    if not (run / "export" / "export.json").exists():
        export_experiment(run, overwrite=True)
    hu = scan()
    geom = VolumeGeometry(n_slices=hu.shape[0], file_si_axis=2, file_si_reversed=True,
                          z_first_mm=0.0, slice_spacing_mm=SPACING[0])
    ct = CTVolume(hu, SPACING, geom, "memory", {"format": "memory", "dicom_files": []})
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []

    def timed(label, view, folds, backend, outputs=False):
        loc = load_localiser(run, view, folds, backend, threshold=0.5)
        out = work / "out" if outputs else None
        fn = (lambda: predict_volume(ct, loc, out)) if outputs else (lambda: localise(ct, loc))
        t = median_time(fn, args.repeats)
        rows.append((label, t))
        print(f"{label:62s} {t:7.3f} s", flush=True)
        return t

    t_pred = timed("sagittal, 1 fold, predictor: localise (MIP..decision)", "sagittal", [1], "predictor")
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_dy = timed("sagittal, 1 fold, dygraph: localise", "sagittal", [1], "dygraph")
    timed("sagittal, 1 fold, predictor: + QC png, axial png/nii", "sagittal", [1], "predictor", True)
    timed("frontal, 1 fold, predictor: localise", "frontal", [1], "predictor")
    timed("both views fused, 1 fold each, predictor: localise", "fused", [1], "predictor")
    timed("sagittal, 5 folds, predictor: localise", "sagittal", None, "predictor")
    timed("both views fused, 5 folds each, predictor: localise", "fused", None, "predictor")
    timed("frontal, 5 folds, predictor: localise", "frontal", None, "predictor")
    timed("refined (frontal decides, sagittal places), 5 folds each, predictor: localise", "refined",
          None, "predictor")
    timed("both views fused, 5 folds each, dygraph: localise", "fused", None, "dygraph")
    print(f"dygraph / predictor (sagittal, 1 fold): {t_dy / t_pred:.2f}")
    print(f"peak RSS: {rss0:.0f} MB with the scan in memory, {rss1:.0f} MB after 1-fold prediction")

    nii, dcm = work / "scan.nii.gz", work / "dicom"
    if not nii.exists():
        write_volume(nii, hu, SPACING)
    if not dcm.exists():
        write_dicom_series(dcm, hu, SPACING)
    for label, path in (("read .nii.gz (400 x 512 x 512 int16)", nii), ("read DICOM folder (400 files)", dcm)):
        t = median_time(lambda: read_volume(path), max(1, args.repeats // 2))
        print(f"{label:62s} {t:7.3f} s", flush=True)
    print(f"peak RSS at the end: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
