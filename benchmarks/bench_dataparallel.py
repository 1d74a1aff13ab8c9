"""Data-parallel training on Paddle's launcher against one process: seconds per epoch and the
final validation error of one fold, same config, same global batch.

    python benchmarks/bench_dataparallel.py --cases 16 --epochs 2 --steps 6

Writes tiny phantoms (l3loc.synth, preset tiny) and a small config under work/bench_dp/, then
trains fold 1 (sagittal) with ``tools/train.py`` and with ``python -m paddle.distributed.launch
--nproc_per_node 2 tools/train.py``. On a 2-core machine the two processes share the cores, so
no speed-up is expected; the point is what the launcher costs and that the result is the same.
"""
import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="steps per epoch")
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--out", default="work/bench_dp")
    args = parser.parse_args()
    from l3loc.synth.writers import generate_dataset

    out = Path(args.out).resolve()
    src = out / "synth" / "l3_dataset.npz"
    if not src.is_file():
        src = generate_dataset(out / "synth", args.cases, seed=1, preset="tiny", workers=1, n_dicom=0)
    cfg = out / "bench.yml"
    cfg.write_text(yaml.safe_dump({
        "_base_": str(ROOT / "l3loc" / "configs" / "cpu_fast.yml"), "work_dir": str(out / "work"),
        "data": {"source": str(src), "cache_dir": str(out / "cache")},
        "train": {"epochs": args.epochs, "iters_per_epoch": args.steps, "batch_size": args.batch,
                  "folds": 4}}))
    train = [str(ROOT / "tools" / "train.py"), "--config", str(cfg), "--fold", "1",
             "--view", "sagittal", "--device", "cpu", "--overwrite"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLE_")}
    runs = {"1 process": [sys.executable, *train, "--experiment", "one"],
            "2 processes (launcher)": [sys.executable, "-m", "paddle.distributed.launch",
                                       "--nproc_per_node", "2", "--log_dir", str(out / "log"),
                                       *train, "--experiment", "two"]}
    print(f"| run | wall s | s/epoch (each) | final val mean error mm |\n|---|---|---|---|")
    for (name, cmd), exp in zip(runs.items(), ("one", "two")):
        t0 = time.time()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.time() - t0
        with open(out / "work" / exp / "sagittal" / "fold_1" / "train_log.csv") as fh:
            log = list(csv.DictReader(fh))
        epochs = ", ".join(f"{float(r['seconds']):.1f}" for r in log)
        print(f"| {name} | {wall:.0f} | {epochs} | {float(log[-1]['val_mean_error_mm']):.2f} |")


if __name__ == "__main__":
    main()
