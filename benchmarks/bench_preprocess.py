"""Benchmark: preprocessing 1000 paper-layout cases into the cache, and reading training samples.

    python benchmarks/bench_preprocess.py [--n 1000] [--workers 2] [--out work/bench_preprocess]

Targets (issue 4): 1000 cases preprocessed in <= 2 min on 2 cores; one training sample read from
the cache in < 5 ms.

The fake dataset: per case a slice thickness uniform in 0.6..5 mm and a scan length uniform in
300..1000 mm, rows = length / thickness clipped to 100..1500 (so 100..1500 rows at 0.6..5 mm, as
the brief asks, with lengths a CT can have); 512 columns at 0.6..1.0 mm; int16 HU with a body
ellipse, a spine of vertebrae and noise. It is written once with ``write_l3_npz`` (both views)
and reused. The cache is rebuilt on every run (``--keep-cache`` to reuse).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l3loc.cache import CachedDataset, build_cache  # noqa: E402
from l3loc.io.npz import L3Dataset, write_l3_npz  # noqa: E402
from l3loc.preprocess import preprocess_case  # noqa: E402
from l3loc.preprocess_config import PreprocessConfig  # noqa: E402
from l3loc.row_windows import row_window, sample_row_window  # noqa: E402


def fake_mip(rng: np.random.Generator, rows: int, row_mm: float, col_mm: float, cols: int = 512):
    """One int16 HU MIP: air, a body ellipse (40 HU), vertebrae every 30 mm (700 HU), noise."""
    y_mm = np.arange(rows)[:, None] * row_mm
    x_mm = (np.arange(cols)[None, :] - cols / 2) * col_mm
    half_width = rng.uniform(120, 180)
    img = np.where(np.abs(x_mm) < half_width, 40.0, -1000.0) + np.zeros((rows, 1))
    spine = (np.abs(x_mm) < 22) & ((y_mm % 30.0) < 24.0)
    img = np.where(spine, 700.0, img)
    img += rng.normal(0, 20, size=img.shape)
    return img.astype(np.int16)


def make_dataset(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    names, images_f, images_s, spacings, labels = [], [], [], [], []
    for i in range(n):
        row_mm = float(rng.uniform(0.6, 5.0))
        rows = int(np.clip(rng.uniform(300, 1000) / row_mm, 100, 1500))
        col_mm = float(rng.uniform(0.6, 1.0))
        images_f.append(fake_mip(rng, rows, row_mm, col_mm))
        images_s.append(fake_mip(rng, rows, row_mm, col_mm))
        spacings.append([col_mm, col_mm, row_mm])
        labels.append(float(rng.uniform(0.1, 0.9) * (rows - 1)))
        names.append(f"case{i:04d}")
    ds = L3Dataset(names=names, images_f=images_f, images_s=images_s, spacings=np.array(spacings),
                   ydata={"a": np.array(labels)})
    write_l3_npz(path, ds, overwrite=True)


def rss_anon_kib() -> int:
    """Anonymous resident memory of this process (the memory map's file pages are not counted)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="work/bench_preprocess")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--view", default="sagittal", choices=("frontal", "sagittal"))
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()

    out = Path(args.out)
    src = out / f"fake_{args.n}_seed{args.seed}.npz"
    if not src.exists():
        t = time.perf_counter()
        make_dataset(src, args.n, args.seed)
        print(f"made {src} ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    cfg = PreprocessConfig()
    results: dict = {"n": args.n, "workers": args.workers, "view": args.view}

    cache_root = out / "cache"
    if cache_root.exists():
        shutil.rmtree(cache_root)
    t = time.perf_counter()
    cache_dir = build_cache(src, cache_root, cfg, args.view, workers=args.workers, progress=False)
    results["build_cache_s"] = round(time.perf_counter() - t, 1)

    data = CachedDataset(cache_dir)
    heights = [data.image_u8(i).shape[0] for i in range(len(data))]
    results["cache_mb"] = round((cache_dir / "images.u8").stat().st_size / 1e6)
    results["height_px_median_max"] = [int(np.median(heights)), int(max(heights))]

    # one training sample = read from the memory map + sample a row window + cut it
    rng = np.random.default_rng(1)
    anon_before = rss_anon_kib()
    times = []
    for _ in range(args.reads):
        i = int(rng.integers(len(data)))
        t = time.perf_counter()
        image, label, _ = data[i]
        start = sample_row_window(image.shape[0], label, cfg.canvas[0], rng)
        row_window(image, start, cfg.canvas[0])
        times.append((time.perf_counter() - t) * 1e3)
    results["sample_ms_median_p95"] = [round(statistics.median(times), 2),
                                       round(float(np.percentile(times, 95)), 2)]
    results["rss_anon_growth_mb_after_reads"] = round((rss_anon_kib() - anon_before) / 1024, 1)

    # preprocess_case alone, single process, on the first 50 cases (reading the npz excluded)
    from l3loc.io.npz import read_l3_npz

    ds, _ = read_l3_npz(src)
    per_case = []
    for i in range(min(50, len(ds))):
        s = ds.spacings[i]
        t = time.perf_counter()
        preprocess_case(ds.images(args.view)[i], (s[2], s[0]), args.view, cfg=cfg)
        per_case.append((time.perf_counter() - t) * 1e3)
    results["preprocess_case_ms_median"] = round(statistics.median(per_case), 1)
    t = time.perf_counter()
    read_l3_npz(src)
    results["read_npz_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
