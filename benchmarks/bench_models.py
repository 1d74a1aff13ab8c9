"""The UNet family and the 1-D row head side by side, at the cpu_fast scale, in one run.

Usage:
    python benchmarks/bench_models.py                       # every model config, 3 repeats
    python benchmarks/bench_models.py --configs cpu_fast row_head --repeats 5
    python benchmarks/bench_models.py --accuracy acc.csv    # + accuracy columns and the plot
    python benchmarks/bench_models.py --save-speed speed.json          # measure once, then
    python benchmarks/bench_models.py --speed speed.json --accuracy acc.csv --plot acc.png

Per config (a packaged config, built exactly as training builds it): trainable parameters; the
median train step (forward, deep-supervised loss, backward, AdamW) on a batch of ``batch_size``
canvas windows with their band targets; the median prediction time of one scan image of
``--height`` rows at the canvas width (padded to the net's stride) through the eager net
(``DygraphMaps``) and through its export run by ``paddle.inference`` (``PredictorMaps``), and
the largest difference between the two maps. One warm-up call before each timing. Prints a
Markdown table; the machine may be shared, so the load average is printed too.

``--accuracy``: a CSV with a ``config`` column and one column per accuracy figure (mean L3
error in mm: ``synth_fold1_mm``, ``synth2_mm``, ``synth_style_mm``, ``real_val_mm``, as
``benchmarks/models_accuracy.py`` writes them from ``l3loc eval`` runs); they join the table, and
``--plot`` draws accuracy against the predictor's CPU time per scan.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# run from a checkout without installing: the repository root holds the l3loc package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import l3loc  # noqa: E402,F401  (before paddle: MKL_DEBUG_CPU_TYPE / OMP_NUM_THREADS)
from l3loc.atomic import write_text  # noqa: E402

MODEL_CONFIGS = ("cpu_fast", "attention_unet", "unet_pp", "unet3p", "u2net", "row_head")


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN plans its kernels on the first call of a shape
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_config(name: str, repeats: int, height: int, opts: list[str]) -> dict:
    import numpy as np
    import paddle

    from l3loc.config import load_config, save_config
    from l3loc.export import export_fold
    from l3loc.inference import DygraphMaps, PredictorMaps
    from l3loc.labels import level_targets
    from l3loc.losses import build_loss, supervised_loss
    from l3loc.models import build_net, net_stride, target_col_range

    cfg = load_config(name, opts)
    rows, cols = (int(v) for v in cfg["preprocess"]["canvas"])
    batch = int(cfg["train"]["batch_size"])
    paddle.seed(0)
    net = build_net(cfg)
    params = sum(int(p.size) for p in net.parameters() if not p.stop_gradient)
    loss_fn = build_loss(cfg["loss"])
    opt = paddle.optimizer.AdamW(learning_rate=1e-3, parameters=net.parameters())
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.random((batch, 1, rows, cols), dtype=np.float32))
    cols_kept = target_col_range(cfg, (0.35, 0.65))
    t = paddle.to_tensor(np.stack([
        level_targets(rows, cols, [rows / 2], 4.0, 2.0, cols_kept, 2.0) for _ in range(batch)]))

    def train_step():
        loss = supervised_loss(loss_fn, net(x), t)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)  # waits for the result

    net.train()
    train_s = _median_seconds(train_step, repeats)
    net.eval()
    image = rng.random((height, cols), dtype=np.float32)
    dygraph = DygraphMaps([net])
    dygraph_s = _median_seconds(lambda: dygraph.confidence_map(image), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        fold = Path(tmp) / "fold_1"
        fold.mkdir()
        paddle.save(net.state_dict(), str(fold / "best.pdparams"))
        save_config(cfg, fold / "config.yaml")
        export_fold(fold, Path(tmp) / "export")
        predictor = PredictorMaps([Path(tmp) / "export"], net_stride(cfg))
        predictor_s = _median_seconds(lambda: predictor.confidence_map(image), repeats)
        diff = float(np.abs(predictor.confidence_map(image) - dygraph.confidence_map(image)).max())
    return {"config": name, "model": cfg["model"]["type"], "params": params,
            "train_step_s": train_s, "dygraph_s": dygraph_s, "predictor_s": predictor_s,
            "max_diff": diff, "batch": batch, "canvas": f"{rows}x{cols}"}


def read_accuracy(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["config"]: row for row in csv.DictReader(fh)}


#: accuracy column -> its heading (mean L3 error, mm); other columns of the CSV are ignored here.
ACCURACY_COLUMNS = {
    "synth_fold1_mm": "synthetic fold 1 (mm)",
    "synth2_mm": "second synthetic set (mm)",
    "synth_style_mm": "held-out phantom style (mm)",
    "real_val_mm": "real_val (mm)",
}


def table(results: list[dict], accuracy: dict[str, dict[str, str]]) -> str:
    head = ("| config | model | parameters | train step (s) | predict dygraph (s) | "
            "predict paddle.inference (s) | " + " | ".join(ACCURACY_COLUMNS.values()) + " |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        acc = accuracy.get(r["config"], {})
        cells = [acc.get(c) or "to measure" for c in ACCURACY_COLUMNS]
        lines.append(f"| {r['config']} | {r['model']} | {r['params']:,} | {r['train_step_s']:.2f} | "
                     f"{r['dygraph_s']:.3f} | {r['predictor_s']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict], accuracy: dict[str, dict[str, str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from l3loc.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5))
    named = set()  # a config's x is the same for every set: its name is written once
    for column, marker in zip(ACCURACY_COLUMNS, "osd^"):
        pts = [(r["predictor_s"], float(accuracy[r["config"]][column]), r["config"])
               for r in results if accuracy.get(r["config"], {}).get(column)]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=column)
            for px, py, label in pts:
                if label not in named:
                    ax.annotate(label, (px, py), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
                    named.add(label)
    # log scale: synthetic errors are ~1 mm, real CT errors tens of mm
    ax.set(xlabel="CPU seconds per scan (paddle.inference)", ylabel="mean L3 error (mm, log)",
           title="accuracy vs CPU time", yscale="log")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=list(MODEL_CONFIGS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--height", type=int, default=300,
                    help="rows of the scan image predicted (300 = 600 mm at 2 mm)")
    ap.add_argument("--opts", nargs="*", default=[], help="config overrides for every config")
    ap.add_argument("--accuracy", type=Path, help="CSV: config + accuracy columns (mm)")
    ap.add_argument("--plot", type=Path, help="write accuracy vs CPU time here (needs --accuracy)")
    ap.add_argument("--save-speed", type=Path, help="also write the speed figures here (JSON)")
    ap.add_argument("--speed", type=Path,
                    help="speed figures of an earlier --save-speed run instead of measuring "
                         "(accuracy is usually measured hours after speed)")
    args = ap.parse_args(argv)
    accuracy = read_accuracy(args.accuracy) if args.accuracy else {}
    if args.plot and not accuracy:
        ap.error("--plot needs --accuracy")
    if args.save_speed and args.save_speed.exists():
        ap.error(f"{args.save_speed} exists (measured figures are never overwritten)")
    if args.speed:
        results = json.loads(args.speed.read_text(encoding="utf-8"))
        results = [r for r in results if r["config"] in args.configs]
    else:
        results = measure(args)
    if args.save_speed:
        write_text(args.save_speed, json.dumps(results, indent=1) + "\n", overwrite=False)
    print(table(results, accuracy))
    if args.plot:
        plot(results, accuracy, args.plot)


def measure(args) -> list[dict]:
    print(f"load average {os.getloadavg()[0]:.1f}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; "
          f"{args.repeats} repeats, medians", flush=True)
    # the process's first net pays one-off costs (oneDNN, the first predictor) that one warm-up
    # call does not absorb: measured first, cpu_fast's train step read 2-6x its time measured
    # after another config. A discarded run of the first config takes them.
    bench_config(args.configs[0], 1, args.height, args.opts)
    results = []
    for name in args.configs:
        start = time.perf_counter()
        results.append(bench_config(name, args.repeats, args.height, args.opts))
        r = results[-1]
        print(f"{name}: {r['params']:,} parameters, train {r['train_step_s']:.2f} s "
              f"(batch {r['batch']}, {r['canvas']}), predict {r['dygraph_s']:.3f} / "
              f"{r['predictor_s']:.3f} s, max |predictor - dygraph| {r['max_diff']:.1e} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return results


if __name__ == "__main__":
    main()
