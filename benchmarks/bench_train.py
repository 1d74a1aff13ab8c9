"""Training throughput (images/s) and peak memory of a config's network at its canvas size.

    python benchmarks/bench_train.py --config cpu_fast --steps 10
    python benchmarks/bench_train.py --config unet_512 --steps 3 --batch 2
    python benchmarks/bench_train.py --config cpu_fast --opts model.base_channels=8

Times forward + backward + AdamW steps on random images of the config's canvas (data loading is
measured separately in the preprocessing benchmark); the first step (graph warm-up) is dropped.
"""
import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import l3loc  # noqa: E402,F401  (sets MKL_DEBUG_CPU_TYPE / OMP_NUM_THREADS before paddle)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from l3loc.config import load_config  # noqa: E402
from l3loc.losses import build_loss  # noqa: E402
from l3loc.models import build_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, help="default: train.batch_size of the config")
    parser.add_argument("--opts", nargs="*", default=[], help="config overrides key.sub=value")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    batch = args.batch or cfg["train"]["batch_size"]
    rows, cols = cfg["preprocess"]["canvas"]
    paddle.seed(0)
    model = build_model({**cfg["model"], "in_channels": 1})
    loss_fn = build_loss(cfg["loss"])
    opt = paddle.optimizer.AdamW(learning_rate=1e-3, parameters=model.parameters())
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.random((batch, 1, rows, cols), dtype=np.float32))
    y = paddle.to_tensor((rng.random((batch, 1, rows, cols)) > 0.99).astype(np.float32))
    times = []
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)
        times.append(time.perf_counter() - t0)
    step = statistics.median(times[1:])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"{Path(args.config).name}: canvas {rows}x{cols}, {cfg['model']['type']} base "
          f"{cfg['model'].get('base_channels')}, {n_params / 1e6:.2f} M params, batch {batch}: "
          f"step {step:.3f} s median of {args.steps}, {batch / step:.1f} images/s, "
          f"peak RSS {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
