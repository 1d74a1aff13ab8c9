"""What de-shearing a gantry-tilted series costs when it is read.

    python benchmarks/bench_deshear.py --data work/data/tilted40/dicom --n 10

For each of the first ``--n`` DICOM series of the folder (e.g. ``benchmarks/tilted_series.py``'s):
the series read into memory (SimpleITK, every file), then side by side on the same image, three
times each in turn: the upright reading l3loc made before (the voxel array stacked as it is:
``to_canonical``) and the de-sheared one (``axis_aligned`` resampling, ``to_canonical``, the cut
to the spine's coverage). Prints medians per series and over all, and the ratio.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from l3loc.io.deshear import FileGrid, axis_aligned, through_the_spine
from l3loc.io.dicom import read_dicom_series
from l3loc.io.geometry import to_canonical


def _upright(image, path):
    return to_canonical(image, path)


def _desheared(image, path):
    grid = FileGrid.of(image)
    aligned = axis_aligned(image, grid)
    hu, spacing, geometry, _ = to_canonical(aligned, path)
    return through_the_spine(hu, spacing, geometry, aligned, grid)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of DICOM series folders")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for folder in sorted(p for p in Path(args.data).iterdir() if p.is_dir())[:args.n]:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = read_dicom_series(folder, None)[0]
        read_s = time.perf_counter() - t0
        times = {"upright": [], "desheared": []}
        for _ in range(args.repeats):
            for name, fn in (("upright", _upright), ("desheared", _desheared)):
                t0 = time.perf_counter()
                fn(image, folder)
                times[name].append(time.perf_counter() - t0)
        up, de = np.median(times["upright"]), np.median(times["desheared"])
        rows.append((read_s, up, de))
        print(f"{folder.name}: {image.GetSize()} read {read_s:.2f} s, upright {up:.2f} s, "
              f"de-sheared {de:.2f} s")
    read_s, up, de = (np.median([r[i] for r in rows]) for i in range(3))
    print(f"median over {len(rows)} series: read {read_s:.2f} s, upright {up:.2f} s, de-sheared "
          f"{de:.2f} s ({de / up:.1f}x; +{de - up:.2f} s a scan)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
