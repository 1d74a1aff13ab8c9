"""Draw the sagittal band on real scans: where the target band lies on the vertebra, old vs new.

    python benchmarks/sagittal_band.py --data ../shared/data/real_val [--scan PATH ...]
        [--config cpu_fast] [--out work/sagittal_band]

For each positive scan of the annotation CSV (``labels.csv``) and each extra ``--scan``, the
sagittal slab MIP around L3 (HU, anterior left) with: the band of the current config (columns
``sagittal_band_mm`` from the spine centre, ``spine_ap_centre_px``), the band before the spine
centring (the same canvas fraction as the frontal band, around the body centre,
``body_centre_col_px``), and the L3 row. Writes one PNG per scan and prints the band edges in mm
from the front of the MIP, to compare with the vertebral body read off the picture.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.config import load_config  # noqa: E402
from l3loc.io.volume import read_volume  # noqa: E402
from l3loc.mip import mip  # noqa: E402
from l3loc.preprocess import (band_col_range, body_centre_col_px, side_mask_cols,  # noqa: E402
                              spine_ap_centre_px)
from l3loc.preprocess_config import PreprocessConfig  # noqa: E402


def band_mm(cfg: PreprocessConfig, view: str, centre_mm: float) -> tuple[float, float]:
    """The band's first and last column centres in mm from the front of the MIP."""
    first, last = side_mask_cols(cfg.canvas[1], band_col_range(cfg, view))
    half = cfg.canvas[1] // 2
    return (centre_mm + (first - half) * cfg.spacing_mm,
            centre_mm + (last - 1 - half) * cfg.spacing_mm)


def draw(path: Path, name: str, image_hu: np.ndarray, spacing: tuple, l3_row: float,
         bands: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s_r, s_c = spacing
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(np.clip(image_hu, -200, 1200), cmap="gray", interpolation="nearest",
              extent=[-0.5 * s_c, (image_hu.shape[1] - 0.5) * s_c,
                      (image_hu.shape[0] - 0.5) * s_r, -0.5 * s_r])
    for (label, (lo, hi)), colour in zip(bands.items(), ("tab:red", "tab:cyan")):
        ax.axvspan(lo, hi, color=colour, alpha=0.18, label=label)
        ax.axvline(lo, color=colour, lw=0.8)
        ax.axvline(hi, color=colour, lw=0.8)
    if math.isfinite(l3_row):
        ax.axhline(l3_row * s_r, color="yellow", lw=0.8, label="L3 centre")
        ax.set_ylim(l3_row * s_r + 80, l3_row * s_r - 80)
    ax.set_xlabel("mm, anterior -> posterior")
    ax.set_title(name)
    ax.legend(loc="lower left", fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="folder with labels.csv (real validation set)")
    ap.add_argument("--scan", type=Path, action="append", default=[], help="extra scan (no label)")
    ap.add_argument("--config", default="cpu_fast")
    ap.add_argument("--out", type=Path, default=Path("work/sagittal_band"))
    args = ap.parse_args(argv)
    cfg = PreprocessConfig.from_dict(load_config(args.config)["preprocess"])
    # before the spine centring the band was the frontal side mask's fraction of the canvas,
    # around the body centre
    old_first, old_last = side_mask_cols(cfg.canvas[1], band_col_range(cfg, "frontal"))
    cases = []
    if args.data is not None:
        # pandas, not read_annotations: the real set's extra endplate columns are not needed here
        table = pd.read_csv(args.data / "labels.csv")
        for _, row in table[table["negative"] == 0].iterrows():
            cases.append((row["name"], args.data / row["path"], float(row["l3_z_mm"])))
    cases += [(p.parent.name, p, math.nan) for p in args.scan]
    args.out.mkdir(parents=True, exist_ok=True)
    print("scan | old band mm | new band mm | spine centre mm | body centre (old canvas) mm")
    for name, path, z in cases:
        ct = read_volume(path)
        img = mip(ct.hu, "sagittal", ct.spacing_mm, cfg.sagittal_slab_mm)
        s_c = ct.spacing_mm[1]
        spine, body = spine_ap_centre_px(img, s_c) * s_c, body_centre_col_px(img) * s_c
        new = band_mm(cfg, "sagittal", spine)
        half = cfg.canvas[1] // 2
        old = (body + (old_first - half) * cfg.spacing_mm, body + (old_last - 1 - half) * cfg.spacing_mm)
        l3_row = float(ct.geometry.canonical_from_z(z)) if math.isfinite(z) else math.nan
        draw(args.out / f"{name}.png", name, img, (ct.spacing_mm[0], s_c), l3_row,
             {f"before: body centre {old[0]:.0f}..{old[1]:.0f} mm": old,
              f"after: spine {new[0]:.0f}..{new[1]:.0f} mm": new})
        print(f"{name} | {old[0]:.0f}..{old[1]:.0f} | {new[0]:.0f}..{new[1]:.0f} | {spine:.1f} | "
              f"{body:.1f}")


if __name__ == "__main__":
    main()
