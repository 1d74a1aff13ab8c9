"""The ``preprocess:`` section of an experiment's config as a checked, frozen dataclass: pixel
size, HU window, canvas, the band of columns per view (mm from the canvas centre), the side mask
and the sagittal slab. :mod:`l3loc.preprocess` applies it."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing parameters: the ``preprocess:`` section of an experiment's YAML.

    Attributes:
        spacing_mm: target pixel size (mm) of rows and columns after resampling.
        hu_window: (lo, hi) HU mapped linearly to [0, 1] after clipping.
        canvas: (rows, cols) of the network input; columns are fitted to ``canvas[1]``, rows are
            the size of a training window (the full height is kept for inference).
        frontal_band_mm: (lo, hi) mm from the frontal canvas centre (the body centre, patient's
            right negative): the columns of the band target and of the decoded row profile, and
            the columns the side mask keeps. The card's 35 %..65 % of a 512 mm canvas is about
            +-77 mm: the spine with the rib heads and transverse processes, without the arms.
        sagittal_band_mm: (lo, hi) mm from the sagittal canvas centre (the spine,
            ``spine_ap_centre_px``, which lies at the back of the vertebral body; anterior
            negative): the band's columns in the sagittal view. Measured at L3 on four real scans
            (benchmarks/sagittal_band.py) the body's centre lies 20..33 mm and its front
            40..57 mm anterior of that centre, the spinous processes end 33..47 mm behind it
            (phantoms: body centre 21..31 mm, front 37..46 mm anterior), so (-60, 50) covers
            the vertebra from front to back.
        side_mask: zero the frontal columns outside ``frontal_band_mm`` (the card's side mask).
        sagittal_slab_mm: half-width (mm) of the sagittal MIP slab around the spine centre;
            None = the full width.
    """

    spacing_mm: float = 1.0
    hu_window: tuple[float, float] = (100.0, 1500.0)
    canvas: tuple[int, int] = (512, 512)
    frontal_band_mm: tuple[float, float] = (-77.0, 77.0)
    sagittal_band_mm: tuple[float, float] = (-60.0, 50.0)
    side_mask: bool = True
    sagittal_slab_mm: float | None = 20.0

    def __post_init__(self):
        # normalise YAML lists to tuples so configs compare and hash the same way
        object.__setattr__(self, "spacing_mm", float(self.spacing_mm))
        object.__setattr__(self, "hu_window", tuple(float(v) for v in self.hu_window))
        object.__setattr__(self, "canvas", tuple(int(v) for v in self.canvas))
        for name in ("frontal_band_mm", "sagittal_band_mm"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.sagittal_slab_mm is not None:
            object.__setattr__(self, "sagittal_slab_mm", float(self.sagittal_slab_mm))
        problems = []
        if not (math.isfinite(self.spacing_mm) and self.spacing_mm > 0):
            problems.append(f"spacing_mm must be > 0, got {self.spacing_mm}")
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            problems.append(f"hu_window must be [lo, hi] with lo < hi, got {list(self.hu_window)}")
        if len(self.canvas) != 2 or min(self.canvas) < 1:
            problems.append(f"canvas must be [rows, cols] >= 1, got {list(self.canvas)}")
        for name in ("frontal_band_mm", "sagittal_band_mm"):
            band = getattr(self, name)
            if len(band) != 2 or not band[0] < band[1]:
                problems.append(f"{name} must be [lo, hi] in mm with lo < hi, got {list(band)}")
        if not isinstance(self.side_mask, bool):
            problems.append(f"side_mask must be true or false, got {self.side_mask!r}")
        if self.sagittal_slab_mm is not None and not self.sagittal_slab_mm >= 0:
            problems.append(f"sagittal_slab_mm must be >= 0 or null, got {self.sagittal_slab_mm}")
        if problems:
            raise ValueError("preprocess config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        """Build from the YAML ``preprocess:`` mapping; missing keys take the defaults.

        Raises:
            ValueError: an unknown key (named) or an invalid value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"preprocess config: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict (tuples as lists); ``from_dict(to_dict())`` round-trips."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}
