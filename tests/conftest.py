"""Shared fixtures: the small real CT files kept in tests/data (see tests/data/README.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the real test scans: ``totalseg_example_ct/`` and ``tptbox_l3_crop/``."""
    return DATA


@pytest.fixture(scope="session")
def example_ct(real_data) -> Path:
    """The TotalSegmentator example CT (3 mm, lower chest to thighs; L3 centre z 314.3 mm)."""
    return real_data / "totalseg_example_ct" / "ct.nii.gz"


@pytest.fixture(scope="session")
def not_ct_scans(tmp_path_factory, example_ct) -> dict[Path, str]:
    """Files that are not a CT in HU, each made from the example CT the way users meet them, and
    the words the refusal must contain: {path: reason}. Shared by the tests of the check itself,
    inspect_data and predict."""
    import numpy as np
    from scipy import ndimage

    from l3loc.io.volume import read_volume, write_dicom_series, write_volume

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
