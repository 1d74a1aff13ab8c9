"""Regenerate the golden preprocessing arrays of the real CT ``totalseg_example_ct``.

    python tests/golden/make_golden.py

Writes ``tests/golden/totalseg_example_ct.npz``: for each view the processed full-height image
quantised to uint8 (``round(x * 255)``, as the dataset cache stores it), the geometry as JSON and
the preprocessing config used. Run it only when a change to the preprocessing is intended, and
say why in the commit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.io.volume import read_volume  # noqa: E402
from l3loc.mip import VIEWS  # noqa: E402
from l3loc.preprocess import preprocess_volume  # noqa: E402
from l3loc.preprocess_config import PreprocessConfig  # noqa: E402

CT_PATH = HERE.parent / "data" / "totalseg_example_ct" / "ct.nii.gz"
GOLDEN_PATH = HERE / "totalseg_example_ct.npz"
# the defaults at the time of writing, spelled out so a later change of defaults does not
# silently change what the golden arrays mean
CONFIG = {"spacing_mm": 1.0, "hu_window": [100, 1500], "canvas": [512, 512],
          "frontal_band_mm": [-77, 77], "sagittal_band_mm": [-60, 50],
          "side_mask": True, "sagittal_slab_mm": 20.0}


def main() -> None:
    ct = read_volume(CT_PATH)
    cfg = PreprocessConfig.from_dict(CONFIG)
    arrays = {"config": np.array(json.dumps(cfg.to_dict()))}
    for view in VIEWS:
        case = preprocess_volume(ct, view, cfg=cfg)
        arrays[view] = np.round(case.image * 255).astype(np.uint8)
        arrays[f"{view}_geometry"] = np.array(json.dumps(case.geometry.to_dict()))
        print(f"{view}: {arrays[view].shape}, geometry {case.geometry.to_dict()}")
    with atomic_path(GOLDEN_PATH) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    print(f"wrote {GOLDEN_PATH} ({GOLDEN_PATH.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
