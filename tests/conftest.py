"""Shared fixtures: the small real CT files kept in tests/data (see tests/data/README.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l3loc.io.volume import write_volume

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the real test scans: ``totalseg_example_ct/`` and ``tptbox_l3_crop/``."""
    return DATA


@pytest.fixture(scope="session")
def example_ct(real_data) -> Path:
    """The TotalSegmentator example CT (3 mm, lower chest to thighs; L3 centre z 314.3 mm)."""
    return real_data / "totalseg_example_ct" / "ct.nii.gz"


# ----------------------------------------------------------------------------- marker phantoms
# Boxes of tissue with a spine and a bright 3-slice "L3 marker" across the body: a tiny net learns
# them in seconds, so prediction and evaluation can be tested end to end with a real trained model.

MARKER_SPACING = (2.0, 4.0, 4.0)
MARKER_Z_FIRST = 100.0


def marker_phantom(n=60, l3=37, seed=0, markers=None, rows=40, cols=48):
    """Canonical int16 HU [n, rows, cols]: air, an elliptic body (40 HU), a spine (400 HU), and a
    1500 HU marker over slices l3-1..l3+1 (``markers`` = several centres; () = none)."""
    rng = np.random.default_rng(seed)
    hu = np.full((n, rows, cols), -1000.0, np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = ((yy - rows / 2) / (rows * 0.45)) ** 2 + ((xx - cols / 2) / (cols * 0.46)) ** 2 <= 1
    hu[:, body] = 40.0
    hu[:, int(rows * 0.7):int(rows * 0.82), cols // 2 - 3:cols // 2 + 3] = 400.0
    for c in (l3,) if markers is None else markers:
        hu[c - 1:c + 2, body] = 1500.0
    return np.round(hu + rng.normal(0, 10, hu.shape)).astype(np.int16)


def marker_config(root, src, iters: int, opts=()) -> dict:
    """The tiny training config of the marker experiments (2 folds, 1 epoch of ``iters``)."""
    from l3loc.config import load_config

    return load_config(None, [
        f"work_dir={root / 'work'}", f"data.source={src}", f"data.cache_dir={root / 'cache'}",
        "preprocess.spacing_mm=2.0", "preprocess.canvas=[64,32]",
        "model.base_channels=8", "model.depth=2", "train.epochs=1",
        f"train.iters_per_epoch={iters}", "train.batch_size=4", "train.lr=0.01", "train.folds=2",
        "train.p_positive=1.0", "augment.p=0", "label.half_height_mm=2.0", *opts])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """An experiment trained here on MIPs of marker phantoms (2 views x 1 fold, ~15 s)."""
    from l3loc.engine import train_fold
    from l3loc.io.npz import L3Dataset, write_l3_npz
    from l3loc.mip import mip

    root = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(5)
    names, fr, sg, rows = [], [], [], []
    for i in range(10):
        n = int(rng.integers(50, 80))
        l3 = int(rng.integers(8, n - 8))
        hu = marker_phantom(n=n, l3=l3, seed=i)
        names.append(f"c{i}")
        fr.append(mip(hu, "frontal", MARKER_SPACING).astype(np.int16))
        sg.append(mip(hu, "sagittal", MARKER_SPACING).astype(np.int16))
        rows.append(float(l3))
    ds = L3Dataset(names, fr, sg, np.array([[4.0, 4.0, 2.0]] * len(names)), {"a1": np.array(rows)})
    cfg = marker_config(root, write_l3_npz(root / "d.npz", ds) or root / "d.npz", 80)
    cfg["experiment"] = "marker"
    for view in ("frontal", "sagittal"):
        train_fold(cfg, view, 1)
    return root / "work" / "marker"


def level_slices(l3: int) -> list[int]:
    """Canonical slices (2 mm) of every level (``l3loc.levels.LEVELS``) of a nominal spine whose
    L3 is at slice ``l3``."""
    from l3loc.levels import LEVELS, nominal_distance_mm

    return [int(round(l3 + nominal_distance_mm("L3", k) / MARKER_SPACING[0])) for k in LEVELS]


@pytest.fixture(scope="session")
def trained_levels_run(tmp_path_factory):
    """An experiment with one channel per level (``label.levels`` = every level), trained here
    on sagittal MIPs of marker phantoms with a marker at every level (1 fold, a few seconds).
    The markers look alike: the tiny net does not learn which is which, it exercises the
    multi-level code paths end to end with real checkpoints."""
    from l3loc.engine import train_fold
    from l3loc.io.npz import L3Dataset, write_l3_npz
    from l3loc.levels import LEVELS
    from l3loc.mip import mip

    root = tmp_path_factory.mktemp("trained_levels")
    rng = np.random.default_rng(6)
    names, fr, sg, rows = [], [], [], []
    for i in range(8):
        slices = level_slices(int(rng.integers(60, 75)))
        hu = marker_phantom(n=140, seed=i, markers=slices)
        names.append(f"c{i}")
        fr.append(mip(hu, "frontal", MARKER_SPACING).astype(np.int16))
        sg.append(mip(hu, "sagittal", MARKER_SPACING).astype(np.int16))
        rows.append([float(r) for r in slices])
    rows = np.array(rows)
    ds = L3Dataset(names, fr, sg, np.array([[4.0, 4.0, 2.0]] * len(names)),
                   {"a1": rows[:, LEVELS.index("L3")]}, extra={"level_rows": rows})
    cfg = marker_config(root, write_l3_npz(root / "d.npz", ds) or root / "d.npz", 40,
                        [f"label.levels=[{','.join(LEVELS)}]"])
    cfg["experiment"] = "levels"
    train_fold(cfg, "sagittal", 1)
    return root / "work" / "levels"


@pytest.fixture(scope="session")
def not_ct_scans(tmp_path_factory, example_ct) -> dict[Path, str]:
    """Files that are not a CT in HU, each made from the example CT the way users meet them, and
    the words the refusal must contain: {path: reason}. Shared by the tests of the check itself,
    inspect_data and predict."""
    from scipy import ndimage

    from l3loc.io.dicom import write_dicom_series
    from l3loc.io.volume import read_volume, write_volume

    folder = tmp_path_factory.mktemp("not_ct")
    ct = read_volume(example_ct)
    hu, sp, z0 = ct.hu.astype(np.float32), ct.spacing_mm, ct.geometry.z_first_mm
    rng = np.random.default_rng(0)
    body = ndimage.binary_fill_holes(hu > -500)
    # PET in SUV: ~1 in the body, more in bone, noisy; 4x coarser pixels (12 mm here), float
    suv = body * (1.0 + 0.5 * (hu > 200) + rng.gamma(2.0, 0.1, hu.shape))
    pet = ndimage.zoom(suv, (1, 0.25, 0.25), order=1).astype(np.float32)
    bones = ndimage.label(hu > 200)[0] % 40  # > 16 labels, stored as float
    window = np.clip((hu + 160.0) / 400.0, 0.0, 1.0)  # soft-tissue window W400/L40
    made = {
        "pet.nii.gz": (pet, (sp[0], 4 * sp[1], 4 * sp[2]), "a PET or SPECT series"),
        "scout.nii.gz": (hu[50:52], sp, "scout/localiser"),
        "labels_float.nii.gz": (bones.astype(np.float32), sp, "a label map"),
        "windowed_0_255.nii.gz": (np.round(window * 255).astype(np.uint8), sp,
                                  "an 8-bit image already windowed"),
        "windowed_0_1.nii.gz": (window.astype(np.float32), sp, "windowed or normalised to 0-1"),
        "offset_1024.nii.gz": ((hu + 1024).astype(np.int16), sp, "without its rescale intercept"),
    }
    scans = {}
    for name, (values, spacing, reason) in made.items():
        scans[write_volume(folder / name, values, spacing, z0)] = reason
    # the PET series of a PET/CT study in DICOM: its header says so, whatever its values
    write_dicom_series(folder / "pet_dicom", ct.hu[40:60], sp, z0, modality="PT")
    scans[folder / "pet_dicom"] = "DICOM modality PT: a PET series"
    return scans


def thin_and_thick_set(folder: Path, hu: np.ndarray) -> Path:
    """``folder`` holding ``hu`` as a 1 mm scan ``a`` and every 5th slice as a 5 mm scan ``b``
    (2 mm pixels, top slice at z 100), both labelled L3 at z 60, in a ``labels.csv``: the input
    of the benchmarks that derive sets from real scans."""
    folder.mkdir()
    write_volume(folder / "a.nii.gz", hu, (1.0, 2.0, 2.0), z_first_mm=100.0)
    write_volume(folder / "b.nii.gz", hu[::5], (5.0, 2.0, 2.0), z_first_mm=100.0)
    pd.DataFrame([{"name": n, "path": f"{n}.nii.gz", "l3_z_mm": 60.0, "l3_top_z_mm": 70.0,
                   "l3_bottom_z_mm": 50.0, "negative": 0} for n in ("a", "b")]).to_csv(folder / "labels.csv", index=False)
    return folder
