"""Is this volume a CT in Hounsfield units? One check for every tool that reads scans.

Users point l3loc at the wrong series of a study all the time: a segmentation mask, a scout, the
PET of a PET/CT, a volume exported already windowed, a CT whose rescale intercept was never
applied. :func:`check_ct` finds these from the voxel values, the shape and (DICOM) the header;
:func:`read_ct` is ``read_volume`` plus that check, used by ``tools/inspect_data.py``, predict
(and so the evaluation of external data, which goes through predict) and the cache build from an
annotation CSV.

A finding is *refused* when the volume is not a CT in HU: l3loc windows HU [100, 1500] to see
bone, so on anything else its answer would be noise (predict writes an error row, the cache build
stops naming the case). Odd but usable CTs (a crop without air, a short scan) give a warning.

The value checks look at a subsample (every 2nd slice, every 4th row and column): value ranges
and histograms need no more, and it keeps the check to tens of milliseconds on a 512 x 512 x 300
scan.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from l3loc.errors import InputError
from l3loc.io.geometry import CTVolume
from l3loc.io.volume import read_volume

#: At most this many distinct values (in the subsample) is a label map or mask, whatever the range
#: (a real CT has hundreds to thousands: 864 in a 110 mm spine crop, 1580 in a 3 mm abdomen).
MASK_MAX_VALUES = 16
#: A volume whose lowest value is above this has neither air (-1000 HU) nor fat (-100 HU): its
#: values are not HU. -200 leaves room below fat for a crop inside the body (a 110 mm spine crop
#: reaches -964; soft-tissue windows clip at -160 or so, which is then rightly refused).
NOT_CT_MIN_HU = -200.0
#: A CT in HU stored with the +1024 offset of its raw pixel values (rescale intercept -1024 not
#: applied) has its fat and soft tissue (-200..200 HU) at 824..1224. In real CTs that band holds
#: only dense bone: 0.05-0.7 % of the voxels in the six real scans measured; the body's soft tissue
#: is 17-90 %. 10 % in the band and (next constant) no air at -1000 is the offset.
OFFSET_TISSUE_FRACTION = 0.10
#: ... and less than this fraction of air in HU (-1100..-900). Real scans: 1.7 % in a crop around
#: the heart (lung), 35-50 % in whole scans, 0.01 % in a spine crop (whose soft tissue is at
#: -200..200, not at +1024, so it is not taken for an offset).
OFFSET_MAX_AIR_FRACTION = 0.01
#: Fraction of neighbouring voxel pairs (along a row, both off the lowest and highest value) with
#: exactly equal values above which a volume is piecewise constant, i.e. a label map (only used to
#: name the problem of a volume refused as not HU). Real CTs: at most 0.39 even counting their
#: air capped at -1024 or -3024 padding.
LABEL_EQUAL_FRACTION = 0.8
#: A volume at most this many voxels thick along any axis is a scout/localiser (a projection
#: radiograph, one or two images) or a couple of axial images, not a 3-D CT. (One slice is already
#: refused by ``read_volume``.)
SCOUT_MAX_SLICES = 2
#: In-plane pixels at least this coarse are typical of PET (2-5 mm) and SPECT (4-5 mm); diagnostic
#: CT is 0.5-1 mm. Only used to name the problem of a volume already refused as not HU: real CTs
#: can be coarse too (a 4.4 mm whole-body CT reads fine).
PET_MIN_PIXEL_MM = 2.0
#: DICOM modalities that are not CT: the series is refused whatever its values.
NOT_CT_MODALITIES = {"PT": "a PET series", "NM": "a nuclear-medicine (SPECT) series",
                     "MR": "an MR series", "US": "an ultrasound series", "SEG": "a segmentation",
                     "RTSTRUCT": "an RT structure set", "RTDOSE": "an RT dose grid",
                     "CR": "a radiograph", "DX": "a radiograph"}
#: No voxel at least this dense: no bone in the scan (a warning: L3 cannot be seen).
MIN_BONE_HU = 150.0
#: Lowest value above this: no air at all (a warning: probably a crop inside the body).
NO_AIR_HU = -500.0
#: z coverage below this (mm) is short: a vertebra with its neighbours needs about 100 mm, and the
#: MIP of less than 60 mm rarely shows enough of the spine to count (a warning).
SHORT_SCAN_MM = 60.0


@dataclass(frozen=True)
class Finding:
    """One thing found about a scan: ``problem`` (a sentence without the path) and whether it is
    ``refused`` (not a CT in HU: no result is computed) or a warning."""

    problem: str
    refused: bool


def check_ct(ct: CTVolume) -> list[Finding]:
    """What is wrong or odd about ``ct`` as a CT in HU: one refused finding, or the warnings.

    Refused: a non-CT DICOM modality (PET, SPECT, MR, ...) or a localiser image; a scout (at most
    2 voxels along an axis); a label map (at most 16 distinct values); no voxel below -200
    (values not HU: named as a label map, a 0-1 or 0-255 windowed image, a PET/SPECT series, a
    CT with the +1024 offset, or MR, as far as the values tell); soft tissue at +1024 without air
    (the offset, even when padding gives the volume negative values). A refused volume gets no
    warnings: warnings about HU values mean nothing for values that are not HU.

    Warnings: no air in the scan, no bone, a short scan.
    """
    refusal = _refusal(ct)
    if refusal:
        return [Finding(refusal, True)]
    return [Finding(p, False) for p in _warnings(ct)]


def checked_ct(ct: CTVolume) -> list[Finding]:
    """:func:`check_ct` that raises on a volume that is not a CT in HU; returns the warnings.

    Raises:
        InputError: naming the file and the reason.
    """
    findings = check_ct(ct)
    if findings and findings[0].refused:
        raise InputError(ct.path, findings[0].problem)
    return findings


def read_ct(path: str | os.PathLike, series_uid: str | None = None,
            refuse: bool = True) -> tuple[CTVolume, list[Finding]]:
    """``read_volume`` and :func:`check_ct`: the way every tool reads a scan it will use as CT.

    Returns:
        The volume and the findings: ``read_volume``'s own warnings (several DICOM series, an
        oblique scan, very many slices; without the path) and :func:`check_ct`'s.

    Raises:
        InputError: whatever ``read_volume`` refuses, and (with ``refuse``) a volume that is not
            a CT in HU, naming the file and the reason.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ct = read_volume(path, series_uid=series_uid)
    findings = checked_ct(ct) if refuse else check_ct(ct)
    return ct, findings + [Finding(str(w.message).replace(f"{ct.path}: ", ""), False)
                           for w in caught if issubclass(w.category, UserWarning)]


def _refusal(ct: CTVolume) -> str | None:
    modality = (ct.meta.get("modality") or "").upper()
    if modality in NOT_CT_MODALITIES:
        return (f"DICOM modality {modality}: {NOT_CT_MODALITIES[modality]}, not a CT; l3loc needs "
                "the study's CT series (pass series_uid to choose it)")
    if "LOCALIZER" in (ct.meta.get("image_type") or "").upper():
        return ("a CT localiser (scout) image, not an axial CT volume; l3loc needs the study's "
                "axial CT series")
    thin = [(n, axis) for n, axis in zip(ct.hu.shape, ("slices", "rows", "columns"))
            if n <= SCOUT_MAX_SLICES]
    if thin:
        n, axis = thin[0]
        return (f"only {n} {axis} ({'x'.join(map(str, ct.hu.shape))} voxels): a scout/localiser "
                "or a couple of images, not a CT volume")
    s = _sample(ct)
    lo, hi = float(s.min()), float(s.max())
    flat = s.reshape(-1)
    values = np.unique(flat[:: max(1, flat.size // 200_000)])  # 200k voxels: ~10 ms
    if values.size <= MASK_MAX_VALUES:
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (" ..." if values.size > 8 else "")
        return (f"only {values.size} distinct value{'s' * (values.size > 1)} ({shown}): a label map or segmentation mask, "
                "not a CT")
    offset = (np.mean((s >= 824) & (s <= 1224)) >= OFFSET_TISSUE_FRACTION
              and np.mean((s >= -1100) & (s <= -900)) < OFFSET_MAX_AIR_FRACTION)
    if lo <= NOT_CT_MIN_HU and not offset:
        return None
    return (f"values {lo:g}..{hi:g}, " + ("soft tissue near +1024 and no air near -1000"
                                         if lo <= NOT_CT_MIN_HU else
                                         f"no voxel below {NOT_CT_MIN_HU:g} (no air or fat)")
            + ": not a CT in Hounsfield units; " + _what_instead(ct, s, lo, hi, offset))


def _what_instead(ct: CTVolume, s: np.ndarray, lo: float, hi: float, offset: bool) -> str:
    """The likeliest kind of volume, from its values, for a volume refused as not in HU."""
    integer = bool(np.array_equal(s, np.round(s)))
    pixel_mm = min(ct.spacing_mm[1:])
    if integer and _equal_neighbours(s, lo, hi) >= LABEL_EQUAL_FRACTION:
        return "piecewise-constant integer values: a label map or segmentation"
    if offset and integer:
        return ("air near 0 and soft tissue near 1024: a CT stored without its rescale intercept "
                "(-1024)? subtract 1024 to get HU")
    if lo < 0:
        return (f"clipped at {lo:g}: exported with a display window? l3loc needs the full HU range")
    if lo >= 0 and hi <= 1:
        return "already windowed or normalised to 0-1 (l3loc needs the original HU)"
    if lo >= 0 and hi <= 255 and integer:
        return "an 8-bit image already windowed for display (l3loc needs the original HU)"
    coarse = pixel_mm >= PET_MIN_PIXEL_MM
    if not integer or coarse:
        evidence = ", ".join(e for e, found in (("non-integer values", not integer),
                                                 (f"{pixel_mm:g} mm pixels", coarse)) if found)
        return (f"{evidence}, {ct.geometry.n_slices} slices: a PET or SPECT series (of a PET/CT "
                "study)? l3loc needs the CT series")
    return "an MR scan, or a CT stored without its rescale intercept?"


def _equal_neighbours(s: np.ndarray, lo: float, hi: float) -> float:
    """Fraction of row-neighbour pairs with equal values, among pairs off the extremes: a windowed
    image has large regions saturated at its lowest and highest value (air, bone, padding), which
    are constant like a label map's; what lies between is noisy in an image, constant in labels."""
    a, b = s[:, :, 1:], s[:, :, :-1]
    inside = (a > lo) & (a < hi) & (b > lo) & (b < hi)
    return float(np.mean(a[inside] == b[inside])) if inside.any() else 1.0


def _warnings(ct: CTVolume) -> list[str]:
    s = _sample(ct)
    lo, hi = float(s.min()), float(s.max())
    notes = []
    if lo > NO_AIR_HU:
        notes.append(f"no air in the scan (lowest value {lo:g} HU); is it cropped to the body?")
    if hi < MIN_BONE_HU:
        notes.append(f"no bone-density voxels (highest value {hi:g} HU)")
    n, dz = ct.geometry.n_slices, ct.geometry.slice_spacing_mm
    if (n - 1) * dz < SHORT_SCAN_MM:
        notes.append(f"the scan covers only {(n - 1) * dz:.0f} mm of z; a vertebra with its "
                     "neighbours needs about 100 mm")
    return notes


def _sample(ct: CTVolume) -> np.ndarray:
    return ct.hu[::2, ::4, ::4]
