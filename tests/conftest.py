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
