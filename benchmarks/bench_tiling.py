"""Whole-height inference vs overlapping canvas-sized tiles, on a trained fold's held-out cases.

    python benchmarks/bench_tiling.py --experiment work/cpu_fast --view sagittal --fold 1

The net is trained on windows of ``canvas`` rows; at inference the whole scan height can go
through the fully-convolutional net at once (padded to the stride), or be cut into windows of
``canvas`` rows overlapping by half, whose maps are averaged. Both go through the same
evaluation code (the ``model_loader`` seam of ``l3loc.evaluate``); this prints their errors and
seconds side by side.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from l3loc.validation import predict_map  # noqa: E402
from l3loc.evaluate import evaluate_experiment  # noqa: E402
from l3loc.fold_profiles import load_fold_model  # noqa: E402
from l3loc.inference import load_fold_net  # noqa: E402


def tiled_loader(fold_dir, cfg):
    import paddle

    net = load_fold_net(fold_dir, cfg)
    rows = int(cfg["preprocess"]["canvas"][0])
    step = rows // 2

    def map_fn(image):
        height = image.shape[0]
        if height <= rows:
            with paddle.no_grad():
                return predict_map(net, image)
        total = np.zeros(image.shape, np.float32)
        count = np.zeros((height, 1), np.float32)
        starts = list(range(0, height - rows, step)) + [height - rows]
        with paddle.no_grad():
            for s in starts:
                total[s:s + rows] += predict_map(net, image[s:s + rows])
                count[s:s + rows] += 1
        return total / count

    return map_fn


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--view", default="sagittal")
    parser.add_argument("--fold", type=int, default=1)
    args = parser.parse_args()
    # explicit loaders: the default one would reuse cached profiles and time nothing
    for name, loader in (("whole height", load_fold_model), ("tiles, 50 % overlap", tiled_loader)):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            summary = evaluate_experiment(args.experiment, views=[args.view], folds=[args.fold],
                                          out_dir=Path(out), model_loader=loader, plots=False)
            seconds = time.perf_counter() - t0
        row = summary.iloc[0]
        print(f"{name:22s} n={row['n_positive']}: mean {row['mean_mm']:.2f} mm, median "
              f"{row['median_mm']:.2f}, p90 {row['p90_mm']:.2f}, max {row['max_mm']:.1f}, "
              f"within 10 mm {row['within_10mm_pct']:.1f} %, negatives right "
              f"{row['negative_right']}/{row['n_negative']} | {seconds:.1f} s")


if __name__ == "__main__":
    main()
