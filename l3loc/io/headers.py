"""What ITK's readers let through silently, checked on a file's own bytes before it is read.

ITK's NIfTI reader fills a truncated file with zeros, turns NaN into 0 and a pixdim of 0 into
1 mm; its MetaImage reader makes a negative spacing positive. Each case is an InputError here.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from l3loc.errors import InputError

# ITK prints its own multi-line warnings to stderr (e.g. for a folder without DICOM); every such
# case is checked by the readers in l3loc.io and reported once, as an InputError or a Python
# warning, naming the file.
sitk.ProcessObject_SetGlobalWarningDisplay(False)


def itk_problem(e: RuntimeError) -> str:
    msg = str(e)
    if "Zero-valued spacing" in msg:
        return "voxel spacing is zero; spacing must be > 0 mm"
    if "Unable to determine ImageIO reader" in msg:
        return "cannot be read as an image (corrupt file, or not the format its name says)"
    # ITK messages start with the C++ source location; keep the last informative line
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    return "corrupt or truncated file (reader said: " + (lines[-1] if lines else "nothing") + ")"


def check_file_header(path: Path, fmt: str) -> None:
    """Catch what ITK lets through silently: NIfTI truncation (read as zeros) and spacing <= 0
    (ITK turns a NIfTI pixdim of 0 into 1 mm and a negative MetaImage spacing into a positive one).
    """
    if fmt == "nifti":
        _check_nifti(path)
        return
    # MetaImage: 'ElementSpacing = 1 1 2'; NRRD: 'spacings: 1 1 2' (space directions are vectors)
    keys, sep = ({"elementspacing", "elementsize"}, "=") if fmt == "metaimage" else ({"spacings"}, ":")
    with open(path, "rb") as f:
        head = f.read(65536)
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1")
        if not line.strip() or line.lower().startswith("elementdatafile"):
            break  # end of the header; binary data may follow
        if sep not in line:
            continue
        key, value = line.split(sep, 1)
        if key.strip().lower() not in keys:
            continue
        try:
            values = [float(t) for t in value.split()]
        except ValueError:
            continue  # not numbers: leave the verdict to ITK's reader
        # NRRD writes nan for non-spatial axes
        if any(not s > 0 for s in values if not math.isnan(s)):
            raise InputError(path, f"voxel spacing {value.strip()} is zero or negative; spacing "
                                   "must be > 0 mm")


def _check_nifti(path: Path) -> None:
    """Header sanity, full length, and (for float data) finite values, read straight from the file.

    ITK's NIfTI reader fills a truncated file with zeros and turns NaN into 0 without a word, so
    both are checked here on the raw bytes (one extra pass over the file).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(540)
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(path, f"corrupt NIfTI file ({e})") from None
    if len(head) < 348:
        raise InputError(path, "truncated NIfTI file (header shorter than 348 bytes)")
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size in (348, 540):
            break
    else:
        raise InputError(path, "not a NIfTI file (bad header size field)")
    if size == 348:
        dims = struct.unpack(endian + "8h", head[40:56])
        datatype, bitpix = struct.unpack(endian + "2h", head[70:74])
        pixdim = struct.unpack(endian + "8f", head[76:108])
        vox_offset = int(struct.unpack(endian + "f", head[108:112])[0])
    else:
        if len(head) < 540:
            raise InputError(path, "truncated NIfTI-2 file (header shorter than 540 bytes)")
        datatype, bitpix = struct.unpack(endian + "2h", head[12:16])
        dims = struct.unpack(endian + "8q", head[16:80])
        pixdim = struct.unpack(endian + "8d", head[104:168])
        vox_offset = struct.unpack(endian + "q", head[168:176])[0]
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0 or bitpix % 8:
        raise InputError(path, f"corrupt NIfTI header (dim[0] = {ndim}, bitpix = {bitpix})")
    spatial = pixdim[1:1 + min(ndim, 3)]
    if any(not (s > 0) for s in spatial):
        raise InputError(path, f"voxel spacing {tuple(round(s, 4) for s in spatial)} is zero or "
                               "negative; spacing must be > 0 mm")
    expected = vox_offset + int(np.prod(dims[1:ndim + 1], dtype=np.int64)) * (bitpix // 8)
    # NIfTI datatype codes 16 = float32, 64 = float64
    float_dtype = {16: np.dtype(endian + "f4"), 64: np.dtype(endian + "f8")}.get(datatype)
    if float_dtype is None and opener is gzip.open and _gzip_isize(path) == expected % 2**32:
        # integer data: the gzip trailer's length field (uncompressed size mod 2**32) matching is
        # enough, since a cut file ends in arbitrary bytes (a 2**-32 chance of a false match); this
        # skips a decompression pass that costs ~40 % of the read time. A mismatch (also from
        # multi-member gzip files) falls through to the exact count below.
        return
    actual, n_bad, carry = 0, 0, b""
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 22):
                start = max(0, vox_offset - actual)
                actual += len(chunk)
                if float_dtype is None or start >= len(chunk):
                    continue
                data = carry + chunk[start:]
                usable = len(data) - len(data) % float_dtype.itemsize
                values = np.frombuffer(data[:usable], dtype=float_dtype)
                n_bad += int(values.size - np.count_nonzero(np.isfinite(values)))
                carry = data[usable:]
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(path, f"corrupt or truncated gzip data ({e})") from None
    if actual < expected:
        raise InputError(path, f"truncated NIfTI file: {actual} bytes of header and image data, "
                               f"{expected} expected")
    if n_bad:
        raise InputError(path, f"{n_bad} voxel values are NaN or infinite")


def _gzip_isize(path: Path) -> int:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:  # 10-byte gzip header + 8-byte trailer
            return -1
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]
