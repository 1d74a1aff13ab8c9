"""CaseGeometry: a processed image's rows and columns mapped back to the native MIP, the scan
file's own slice index and world z, and forward again (pixel-centre convention: see
:mod:`l3loc.preprocess`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class CTVolumeLike(Protocol):
    """What ``preprocess_volume`` needs of ``l3loc.io.geometry.CTVolume``."""

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    geometry: "VolumeGeometryLike"


class VolumeGeometryLike(Protocol):
    """What ``CaseGeometry`` needs of ``l3loc.io.geometry.VolumeGeometry`` (canonical slice index
    <-> the file's own slice index <-> world z in mm)."""

    def file_index(self, c): ...
    def canonical_index(self, f): ...
    def z_mm(self, c): ...
    def canonical_from_z(self, z): ...
    def to_dict(self) -> dict: ...


@dataclass
class CaseGeometry:
    """Maps a processed image's rows (and columns) back to the scan, and forward again.

    Chain: processed row ``p`` <-> native MIP row ``r = p * target_mm / row_spacing_mm``
    (== canonical slice index) <-> the scan file's own slice index <-> world z (mm, +superior).
    All methods accept scalars or arrays and are exact inverses of each other (floats, no
    rounding).

    For the 3-D path the file index and z come from ``volume`` (a ``VolumeGeometry``). For the
    paper's npz (no file geometry) the file index is the native MIP row and
    ``z = -row * row_spacing_mm`` (row 0 at z = 0, inferior = more negative), so a z difference
    is still a distance in mm.

    Attributes:
        n_native_rows, n_native_cols: native MIP shape.
        row_spacing_mm, col_spacing_mm: native pixel size (mm).
        target_mm: processed pixel size (mm).
        n_rows: processed height (full, not cropped).
        col_offset: processed column ``j`` is resampled column ``j + col_offset``.
        volume: the scan's VolumeGeometry, or None for an npz case.
    """

    n_native_rows: int
    n_native_cols: int
    row_spacing_mm: float
    col_spacing_mm: float
    target_mm: float
    n_rows: int
    col_offset: int
    volume: VolumeGeometryLike | None = None

    # rows
    def native_row(self, processed_row):
        """Processed row(s) -> native MIP row(s) (== canonical slice index)."""
        return np.asarray(processed_row, dtype=np.float64) * (self.target_mm / self.row_spacing_mm)

    def processed_row(self, native_row):
        """Native MIP row(s) -> processed row(s)."""
        return np.asarray(native_row, dtype=np.float64) * (self.row_spacing_mm / self.target_mm)

    def file_index(self, processed_row):
        """Processed row(s) -> the scan file's own slice index (fractional)."""
        c = self.native_row(processed_row)
        return c if self.volume is None else np.asarray(self.volume.file_index(c), dtype=np.float64)

    def processed_row_from_file_index(self, file_index):
        """The scan file's slice index(es) -> processed row(s)."""
        f = np.asarray(file_index, dtype=np.float64)
        c = f if self.volume is None else np.asarray(self.volume.canonical_index(f), dtype=np.float64)
        return self.processed_row(c)

    def z_mm(self, processed_row):
        """Processed row(s) -> world z in mm (+superior)."""
        c = self.native_row(processed_row)
        if self.volume is None:
            return -c * self.row_spacing_mm
        return np.asarray(self.volume.z_mm(c), dtype=np.float64)

    def processed_row_from_z(self, z_mm):
        """World z (mm) -> processed row(s)."""
        z = np.asarray(z_mm, dtype=np.float64)
        if self.volume is None:
            c = -z / self.row_spacing_mm
        else:
            c = np.asarray(self.volume.canonical_from_z(z), dtype=np.float64)
        return self.processed_row(c)

    # columns (for drawing on the native MIP)
    def native_col(self, processed_col):
        """Processed column(s) -> native MIP column(s)."""
        q = np.asarray(processed_col, dtype=np.float64) + self.col_offset
        return q * (self.target_mm / self.col_spacing_mm)

    def processed_col(self, native_col):
        """Native MIP column(s) -> processed column(s)."""
        q = np.asarray(native_col, dtype=np.float64) * (self.col_spacing_mm / self.target_mm)
        return q - self.col_offset

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``from_dict`` restores it (the volume via VolumeGeometry.from_dict)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "volume"}
        d["volume"] = None if self.volume is None else self.volume.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CaseGeometry":
        """Inverse of ``to_dict``."""
        d = dict(d)
        vol = d.pop("volume", None)
        if vol is not None:
            from l3loc.io.geometry import VolumeGeometry  # only 3-D cases need the reader module
            vol = VolumeGeometry.from_dict(vol)
        return cls(**d, volume=vol)
