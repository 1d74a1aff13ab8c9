"""What prediction is asked to read: scan files, DICOM series folders, folders of scans and CSV
lists, expanded into :class:`ScanInput` records with unique, file-safe case names."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from l3loc.errors import InputError
from l3loc.io.annotations import EXTENT_COLUMNS, POSITION_COLUMNS, default_name
from l3loc.io.volume import VOLUME_EXTENSIONS


@dataclass(frozen=True)
class ScanInput:
    """One scan to process: its case name, path, and optional DICOM series and truth."""

    name: str
    path: str
    series_uid: str | None = None
    truth: dict | None = None  # an annotation row (l3_slice or l3_z_mm, negative), if given


def _is_dicom_dir(folder: Path) -> bool:
    import SimpleITK as sitk

    if not any(p.is_file() and not p.name.lower().endswith(VOLUME_EXTENSIONS + (".csv",))
               for p in folder.iterdir()):
        return False
    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _safe_name(name: str) -> str:
    """A folder name from a case name: path separators and control characters replaced; spaces
    and non-ASCII letters kept (they are legal in file names and the user knows their cases)."""
    name = re.sub(r"[\\/\x00-\x1f]", "_", name).strip()
    return ("_" + name) if name.startswith(".") else (name or "scan")


def _csv_inputs(csv_path: Path) -> list[ScanInput]:
    """A CSV with a ``path`` column (optional ``name``, ``series_uid``; an annotation CSV with
    ``l3_slice``/``l3_z_mm`` adds the truth). Relative paths are relative to the CSV's folder."""
    import pandas as pd

    from l3loc.io.annotations import level_columns, read_annotations

    try:
        header = pd.read_csv(csv_path, nrows=0, encoding="utf-8-sig").columns
    except (OSError, ValueError) as exc:
        raise InputError(csv_path, f"not a readable CSV table ({exc})") from None
    if any(c in header for c in POSITION_COLUMNS):
        df = read_annotations(csv_path, check_paths=False)
        keep = [df.attrs["position"], "negative", "csv_line", *(c for c in EXTENT_COLUMNS if c in df),
                *(c for c in level_columns(df.attrs["position"]).values() if c in df and
                  c != df.attrs["position"])]
        return [ScanInput(r["name"], r["path"], r["series_uid"] or None, {k: r[k] for k in keep})
                for _, r in df.iterrows()]
    if "path" not in header:
        raise InputError(csv_path, f"no 'path' column (header: {list(header)})")
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    out = []
    for i, r in df.iterrows():
        text = r["path"].strip()
        if not text:
            raise InputError(csv_path, f"line {i + 2}: empty path")
        p = Path(text).expanduser()
        p = p if p.is_absolute() else csv_path.parent / p
        out.append(ScanInput(r.get("name", "").strip() or default_name(p), str(p),
                             r.get("series_uid", "").strip() or None))
    return out


def list_inputs(paths: Sequence[str | os.PathLike]) -> list[ScanInput]:
    """Expand the command line's inputs into scans.

    Each path may be a scan file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``, ... or a ``.dcm``
    of a series), a DICOM series folder, a folder holding many scans (volume files and DICOM
    series folders, searched recursively), or a ``.csv`` list. Case names are made unique by
    appending ``_2``, ``_3``... in input order.

    Raises:
        InputError: a path that does not exist, or a folder without any scan.
    """
    scans: list[ScanInput] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(p, "does not exist")
        if p.is_file() and p.name.lower().endswith(".csv"):
            scans += _csv_inputs(p)
        elif p.is_file():
            scans.append(ScanInput(default_name(p), str(p)))
        elif _is_dicom_dir(p):
            scans.append(ScanInput(p.name, str(p)))
        else:
            found = []
            for folder, dirs, files in os.walk(p):
                dirs.sort()
                folder = Path(folder)
                found += [ScanInput(default_name(folder / f), str(folder / f)) for f in sorted(files)
                          if f.lower().endswith(VOLUME_EXTENSIONS) and not f.startswith(".")]
                if folder != p and _is_dicom_dir(folder):
                    found.append(ScanInput(folder.name, str(folder)))
            if not found:
                raise InputError(p, "no scans found (looked for " + ", ".join(VOLUME_EXTENSIONS)
                                    + " files and DICOM series folders)")
            scans += found
    seen: dict[str, int] = {}
    unique = []
    for s in scans:
        base = _safe_name(s.name)
        n = seen.get(base.lower(), 0) + 1
        seen[base.lower()] = n
        unique.append(ScanInput(base if n == 1 else f"{base}_{n}", s.path, s.series_uid, s.truth))
    return unique
