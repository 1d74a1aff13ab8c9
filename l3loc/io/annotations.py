"""Annotation tables: where L3 is in the user's own scans.

Format: a CSV file with a header row and one scan per row.

==============  ========  ==============================================================
column          needed    meaning
==============  ========  ==============================================================
``path``        yes       scan file (.nii, .nii.gz, .nrrd, .mha, .mhd) or DICOM series
                          folder; a relative path is relative to the CSV's folder
``l3_slice``    one of    the L3 slice as the file's own 0-based index along its
                these     superior–inferior voxel axis (k for an axial RAS/LPS file, j for
                two       PIR), as a viewer shows it; fractions allowed (e.g. 73.5)
``l3_z_mm``               the L3 level as world z in mm (+superior; DICOM/LPS and NIfTI/RAS
                          z agree)
``name``        no        case name; default: the file or folder name without extension
``series_uid``  no        which DICOM series of a folder holding several
``negative``    no        1 = L3 is not in the scan (leave the position empty), 0 or empty
                          = L3 is annotated (true/false and yes/no are accepted too)
``l3_top_z_mm``  no       the extent of the L3 body in world z (superior and inferior
``l3_bottom_z_mm``        endplates, mm): both or neither; evaluation then counts a
                          prediction inside the body +-5 mm as the right level
``t12_z_mm``,   no        the other levels (``l3loc.levels``: T12 = last rib-bearing
``l1_z_mm``,              vertebra, L1.. counted below it, S1 = top of the sacrum), in the
... ``s1_z_mm``           unit of the position column (``<level>_slice`` with ``l3_slice``,
                          ``<level>_z_mm`` with ``l3_z_mm``); empty = absent or not
                          annotated; for training every level and for per-level evaluation
``transitional``  no      1 = not 5 lumbar vertebrae (counting from the ribs and from the
                          sacrum disagree), 0 or empty = normal
``status``      no        free text kept with the row, not used for positions: the review
``reviewer_note``         page's decision (accepted, corrected, negative, unsure) and note
==============  ========  ==============================================================

A table uses one position column, ``l3_slice`` or ``l3_z_mm``, not both. Any other column is
an error (it is most likely a misspelling). Example::

    name,path,l3_slice,negative
    case01,scans/case01.nii.gz,73.5,
    case02,dicom/case02,,1

:func:`read_annotations` returns a DataFrame with absolute paths, ``negative`` as bool, the
position as float (NaN for negative rows), and ``csv_line`` (the row's line number in the
file, for messages). :func:`annotation_to_canonical_row` turns one row into the canonical slice
index of a volume read by :func:`l3loc.io.volume.read_volume`.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from l3loc.atomic import atomic_path
from l3loc.errors import InputError
from l3loc.io.geometry import VolumeGeometry
from l3loc.levels import LEVELS, column_name

#: The two ways to give the L3 position; a table uses exactly one.
POSITION_COLUMNS = ("l3_slice", "l3_z_mm")
#: The L3 body's extent in world z (superior and inferior endplate), optional, both or neither.
EXTENT_COLUMNS = ("l3_top_z_mm", "l3_bottom_z_mm")
#: Text kept with a row and never read as a position: the review page's decision and note
#: (``corrections.csv``, see ``l3loc.review``).
REVIEW_COLUMNS = ("status", "reviewer_note")
OPTIONAL_COLUMNS = ("name", "series_uid", "negative", "transitional") + EXTENT_COLUMNS + REVIEW_COLUMNS


def level_columns(position: str) -> dict[str, str]:
    """Level -> its column in a table whose L3 column is ``position`` (L3 itself included)."""
    return {k: column_name(k, position) for k in LEVELS}


_ALL_LEVEL_COLUMNS = tuple(c for p in POSITION_COLUMNS for k, c in level_columns(p).items()
                           if k != "L3")
_SCAN_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def default_name(path: str | os.PathLike) -> str:
    """Case name from a scan path: the file name without its scan extension, or the folder name."""
    name = Path(path).name
    for suffix in _SCAN_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_annotations(csv_path: str | os.PathLike, check_paths: bool = True) -> pd.DataFrame:
    """Read and validate an annotation CSV (format in the module docstring).

    Args:
        csv_path: the CSV file.
        check_paths: also require every scan path to exist.

    Returns:
        One row per scan with columns ``name``, ``path`` (absolute, str), ``series_uid`` (str,
        '' when not given), the table's position column (float, NaN when negative),
        ``negative`` (bool), ``csv_line`` (int) and, when the table gives them, the L3 body's
        extent ``l3_top_z_mm``/``l3_bottom_z_mm`` (float, NaN when negative). ``df.attrs["csv_path"]`` and
        ``df.attrs["position"]`` ('l3_slice' or 'l3_z_mm') record the source. ``status`` and
        ``reviewer_note`` (str) when the table has them.

    Raises:
        InputError: naming the CSV, and the line for a bad row.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "does not exist" if not csv_path.exists() else "is not a file")
    try:
        # the csv module, not pandas: pandas would quietly turn surplus fields into an index
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            table = [(n, r) for n, r in enumerate(csv.reader(f), start=1) if any(x.strip() for x in r)]
    except (csv.Error, UnicodeDecodeError) as e:
        raise InputError(csv_path, f"not a readable CSV table ({e})") from None
    if not table:
        raise InputError(csv_path, "not a readable CSV table (the file is empty)")
    columns = [c.strip() for c in table[0][1]]
    if len(set(columns)) != len(columns):
        raise InputError(csv_path, f"repeated column names in the header: {columns}")
    if "path" not in columns:
        raise InputError(csv_path, f"no 'path' column (header: {columns})")
    allowed = ("path",) + POSITION_COLUMNS + OPTIONAL_COLUMNS
    unknown = [c for c in columns if c not in allowed + _ALL_LEVEL_COLUMNS]
    if unknown:
        raise InputError(csv_path, f"unknown column(s) {unknown}; allowed: {', '.join(allowed)} "
                                   "and the other levels' t12_..., l1_..., s1_...")
    given = [c for c in POSITION_COLUMNS if c in columns]
    if len(given) != 1:
        raise InputError(csv_path, "needs exactly one position column, 'l3_slice' (file slice index) "
                                   f"or 'l3_z_mm' (world z); found {given or 'none'}")
    position = given[0]
    extent = [c for c in EXTENT_COLUMNS if c in columns]
    if len(extent) == 1:
        raise InputError(csv_path, f"gives {extent[0]} without "
                                   f"{(set(EXTENT_COLUMNS) - set(extent)).pop()}: the L3 body's "
                                   "extent needs both endplates")
    others = [c for k, c in level_columns(position).items() if k != "L3"]
    mixed = [c for c in columns if c in _ALL_LEVEL_COLUMNS and c not in others]
    if mixed:
        raise InputError(csv_path, f"level column(s) {mixed} do not match the position column "
                                   f"{position!r}: use {', '.join(others)}")
    level_cols = [c for c in others if c in columns]
    review_cols = [c for c in REVIEW_COLUMNS if c in columns]
    if len(table) == 1:
        raise InputError(csv_path, "has a header but no rows")

    rows, seen = [], {}
    for line, fields in table[1:]:
        if len(fields) != len(columns):
            raise InputError(csv_path, f"line {line}: {len(fields)} fields, the header has "
                                       f"{len(columns)}")
        rec = dict(zip(columns, fields))
        where = f"line {line}"
        path_text = rec["path"].strip()
        if not path_text:
            raise InputError(csv_path, f"{where}: empty path")
        scan = Path(path_text).expanduser()
        scan = scan if scan.is_absolute() else (csv_path.parent / scan)
        scan = Path(os.path.normpath(scan.absolute()))
        if check_paths and not scan.exists():
            raise InputError(csv_path, f"{where}: scan {path_text} not found (looked for {scan})")
        negative = _parse_negative(rec.get("negative", ""), csv_path, where)
        value_text = rec[position].strip()
        value = _number(value_text, negative, csv_path, where, position, required=True)
        if not negative:
            if position == "l3_slice" and value < 0:
                raise InputError(csv_path, f"{where}: l3_slice {value_text} is negative; slice "
                                           "indices start at 0")
        # an extent may be left empty on a positive row: evaluation then scores by distance
        ends = {c: _number(rec[c].strip(), negative, csv_path, where, c, required=False)
                for c in extent}
        if extent and not negative and ends["l3_top_z_mm"] <= ends["l3_bottom_z_mm"]:
            raise InputError(csv_path, f"{where}: l3_top_z_mm {ends['l3_top_z_mm']} must be above "
                                       f"(greater than) l3_bottom_z_mm {ends['l3_bottom_z_mm']}")
        levels = {c: _parse_level(rec[c], c, csv_path, where) for c in level_cols}
        transitional = _parse_flag(rec.get("transitional", ""), "transitional",
                                   "not 5 lumbar vertebrae", csv_path, where)
        series_uid = rec.get("series_uid", "").strip()
        key = (str(scan), series_uid)
        if key in seen:
            raise InputError(csv_path, f"{where}: scan {path_text} is already annotated on line {seen[key]}")
        seen[key] = line
        rows.append({"name": rec.get("name", "").strip() or default_name(scan), "path": str(scan),
                     "series_uid": series_uid, position: value, "negative": negative,
                     "csv_line": line, **ends, **levels,
                     **({"transitional": transitional} if "transitional" in columns else {}),
                     **{c: rec[c].strip() for c in review_cols}})
    extra_cols = level_cols + (["transitional"] if "transitional" in columns else []) + review_cols
    df = pd.DataFrame(rows, columns=["name", "path", "series_uid", position, "negative", "csv_line",
                                     *extent] + extra_cols)
    for c in (position, *extent, *level_cols):
        df[c] = df[c].astype(np.float64)
    df["negative"] = df["negative"].astype(bool)
    if "transitional" in columns:
        df["transitional"] = df["transitional"].astype(bool)
    df.attrs["csv_path"] = str(csv_path)
    df.attrs["position"] = position
    return df


def _number(text: str, negative: bool, csv_path: Path, where: str, column: str,
            required: bool) -> float:
    """A position field: empty on a negative row (NaN); on a positive row a finite number (or
    empty, NaN, when not ``required``)."""
    if negative:
        if text:
            raise InputError(csv_path, f"{where}: negative=1 (no L3 in the scan) but {column} "
                                       f"is {text!r}; leave it empty")
        return math.nan
    if not text:
        if not required:
            return math.nan
        raise InputError(csv_path, f"{where}: {column} is empty; give the L3 position or "
                                   "set negative=1")
    try:
        value = float(text)
    except ValueError:
        raise InputError(csv_path, f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(csv_path, f"{where}: {column} {text!r} is not a finite number")
    return value


def _parse_negative(text: str, csv_path: Path, where: str) -> bool:
    return _parse_flag(text, "negative", "no L3 in the scan", csv_path, where)


def _parse_flag(text: str, column: str, meaning: str, csv_path: Path, where: str) -> bool:
    text = (text or "").strip().lower()
    if text in ("", "0", "0.0", "false", "no"):
        return False
    if text in ("1", "1.0", "true", "yes"):
        return True
    raise InputError(csv_path, f"{where}: {column} must be 1 ({meaning}), 0 or empty, got {text!r}")


def _parse_level(text: str, column: str, csv_path: Path, where: str) -> float:
    """A level column's value: NaN when empty (absent or not annotated), else a finite number."""
    text = text.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise InputError(csv_path, f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or (column.endswith("_slice") and value < 0):
        raise InputError(csv_path, f"{where}: {column} {text!r} must be a finite number"
                                   + (" >= 0" if column.endswith("_slice") else ""))
    return value


def write_annotations(csv_path: str | os.PathLike, df: pd.DataFrame, overwrite: bool = True) -> Path:
    """Write an annotation table that :func:`read_annotations` reads back to the same rows.

    Paths inside the CSV's folder are written relative to it (so the folder can be moved);
    others stay absolute. ``csv_line`` is dropped.

    Args:
        csv_path: destination CSV.
        df: columns ``path``, exactly one of ``l3_slice``/``l3_z_mm``, optionally ``name``,
            ``series_uid``, ``negative``, the other levels' columns, ``transitional``,
            ``status`` and ``reviewer_note``.
        overwrite: if False, refuse to replace an existing file.
    """
    csv_path = Path(csv_path)
    given = [c for c in POSITION_COLUMNS if c in df.columns]
    if "path" not in df.columns or len(given) != 1:
        raise ValueError("df needs a 'path' column and exactly one of 'l3_slice', 'l3_z_mm'")
    position = given[0]
    base = Path(os.path.normpath(csv_path.parent.absolute()))
    out = pd.DataFrame()
    out["name"] = df["name"] if "name" in df.columns else [default_name(p) for p in df["path"]]
    out["path"] = [_relative_if_inside(Path(p), base) for p in df["path"]]
    out["series_uid"] = df["series_uid"].fillna("") if "series_uid" in df.columns else ""
    negative = df["negative"].fillna(False).astype(bool) if "negative" in df.columns else \
        pd.Series(False, index=df.index)
    out[position] = [("" if neg else repr(float(v))) for v, neg in zip(df[position], negative)]
    out["negative"] = [1 if neg else 0 for neg in negative]
    for level, col in level_columns(position).items():
        if level != "L3" and col in df.columns:
            out[col] = ["" if pd.isna(v) else repr(float(v)) for v in df[col]]
    if "transitional" in df.columns:
        out["transitional"] = [1 if t else 0 for t in df["transitional"].fillna(False).astype(bool)]
    for col in REVIEW_COLUMNS:
        if col in df.columns:
            out[col] = df[col].fillna("")
    with atomic_path(csv_path, overwrite=overwrite) as tmp:
        out.to_csv(tmp, index=False)
    return csv_path


def _relative_if_inside(path: Path, base: Path) -> str:
    path = Path(os.path.normpath(path.absolute()))
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def annotation_to_canonical_row(row, geometry: VolumeGeometry, level: str = "L3") -> float:
    """Canonical slice index (axis 0 of ``read_volume(...).hu``) of one level of one row.

    Args:
        row: a row of :func:`read_annotations` (pandas Series or dict) with ``l3_slice`` or
            ``l3_z_mm`` and optionally ``negative`` and the other levels' columns.
        geometry: the geometry of the annotated scan.
        level: which level (``l3loc.levels.LEVELS``); ``negative`` concerns L3 only.

    Returns:
        The canonical slice index (float); NaN for a negative row (L3) or an empty or missing
        level column (other levels).

    Raises:
        InputError: naming the scan, when the position lies outside the scan.
    """
    if level == "L3":
        negative = row.get("negative", False)
        if not pd.isna(negative) and bool(negative):
            return math.nan
    slice_col, z_col = column_name(level, "l3_slice"), column_name(level, "l3_z_mm")
    has_slice = slice_col in row and not pd.isna(row[slice_col])
    has_z = z_col in row and not pd.isna(row[z_col])
    if has_slice and has_z:
        raise ValueError(f"annotation row has both {slice_col} and {z_col}")
    if not has_slice and not has_z:
        if level == "L3":
            raise ValueError("annotation row needs exactly one of l3_slice, l3_z_mm")
        return math.nan
    c = geometry.canonical_index(float(row[slice_col])) if has_slice else \
        geometry.canonical_from_z(float(row[z_col]))
    # half a slice of tolerance: a position on the outer edge of the first or last slice is inside
    if not -0.5 <= c <= geometry.n_slices - 0.5:
        given = f"{slice_col} {row[slice_col]}" if has_slice else f"{z_col} {row[z_col]}"
        z_lo, z_hi = geometry.z_mm(geometry.n_slices - 1), geometry.z_mm(0)
        line = f" (annotation line {row['csv_line']})" if "csv_line" in row else ""
        raise InputError(row.get("path"), f"{given}{line} lies outside the scan: it has slices "
                                          f"0..{geometry.n_slices - 1}, z {z_lo:.1f}..{z_hi:.1f} mm")
    return float(c)
