"""The review page: ``index.html`` of a prediction folder, where a person confirms or moves the L3
line of every scan with the keyboard and exports the decisions as an annotation CSV.

The page works opened as a file (no server). ``index.html`` holds only the list of scans (one
short record each, so a cohort of thousands stays a small page); each scan's folder holds what
its viewer needs, loaded when the scan is shown:

    <name>/frontal_mip.png, <name>/sagittal_mip.png   native MIPs, one picture row per slice
                                                       (canonical order: row 0 = most superior)
    <name>/review.js                                   ``l3review({...})``: geometry, profiles,
                                                       second candidate and level z

``review.js`` is JSON wrapped in a function call because a page opened from disk may load a
script from its folder but may not ``fetch`` a JSON file there.

Picture row r (0-based) is canonical slice r; the page maps it to the file's own slice index with
``n_slices`` and ``file_si_reversed`` (:class:`l3loc.io.geometry.VolumeGeometry`) and to world z
with ``z_first_mm`` and ``slice_spacing_mm``. Decisions stay in the browser's local storage
(key: the page's path) and are exported as ``corrections.csv`` in the annotation format of
:mod:`l3loc.io.annotations`: ``name``, ``path`` (absolute), ``l3_slice`` (file index),
``negative``, ``status`` (accepted / corrected / negative / unsure) and ``reviewer_note``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from l3loc.atomic import atomic_path, write_text
from l3loc.errors import InputError
from l3loc.io.geometry import VolumeGeometry
from l3loc.report import QC_MIP_WINDOW_HU, REVIEW_ORDER, low_confidence, pyplot, review_key, \
    window_to_uint8

REVIEW_JS = "review.js"
_TEXT_COLUMNS = ("name", "input", "status", "message", "warnings", "qc_png")
_CALLBACK = "l3review"
#: The page's template (package data): ``__TITLE__`` and ``__DATA__`` are filled in.
_TEMPLATE = Path(__file__).with_name("review_page.html")


def mip_png_name(view: str) -> str:
    return f"{view}_mip.png"


def write_review_data(folder: str | os.PathLike, name: str, scan_path: str, series_uid: str | None,
                      geometry: VolumeGeometry, mips: dict, profiles: dict, z_rows_mm: np.ndarray,
                      second_z_mm: float | None, levels_z_mm: dict | None) -> Path:
    """Write a scan's MIP pictures and ``review.js`` into its folder.

    Args:
        folder: the scan's output folder (``out/<name>``).
        name: the case name (the page finds the scan's record by it).
        scan_path: the scan's path; written absolute (the exported CSV must find the scan from
            wherever it is saved).
        series_uid: the DICOM series read (the CSV names it: a folder may hold several), or None.
        geometry: the scan's slice geometry.
        mips: view -> (native MIP [n_slices, cols] HU, column spacing mm).
        profiles: label -> confidence profile on the processed rows.
        z_rows_mm: world z of the processed rows (evenly spaced).
        second_z_mm: the second candidate of an ambiguous scan, else None.
        levels_z_mm: level -> z of every level found (labelled lines on the MIPs).
    """
    folder = Path(folder)
    plt = pyplot()
    views = {}
    for view, (image, col_mm) in mips.items():
        if image.shape[0] != geometry.n_slices:
            raise ValueError(f"{view} MIP has {image.shape[0]} rows, the scan {geometry.n_slices} slices")
        with atomic_path(folder / mip_png_name(view)) as tmp:
            plt.imsave(tmp, window_to_uint8(image, *QC_MIP_WINDOW_HU), cmap="gray", vmin=0, vmax=255)
        views[view] = {"png": mip_png_name(view), "cols": int(image.shape[1]), "col_mm": float(col_mm)}
    z = np.asarray(z_rows_mm, dtype=np.float64)
    data = {
        "name": name, "path": os.path.abspath(scan_path) if scan_path else "",
        "series_uid": series_uid or "", **geometry.to_dict(), "views": views,
        "profile": {"z0_mm": float(z[0]), "dz_mm": float(z[1] - z[0]) if len(z) > 1 else 0.0,
                    # 3 decimals: a pixel of the drawn profile, and a tenth of the file size
                    "curves": {k: np.round(np.asarray(v, dtype=np.float64), 3).tolist()
                               for k, v in profiles.items()}},
        "second_z_mm": second_z_mm if second_z_mm is not None and math.isfinite(second_z_mm) else None,
        "levels_z_mm": {k: float(v) for k, v in (levels_z_mm or {}).items() if math.isfinite(v)},
    }
    path = folder / REVIEW_JS
    write_text(path, f"{_CALLBACK}({json.dumps(data, ensure_ascii=False)});\n")
    return path


def read_review_data(folder: str | os.PathLike) -> dict:
    """The data :func:`write_review_data` wrote into ``folder`` (for tests and tools)."""
    text = (Path(folder) / REVIEW_JS).read_text(encoding="utf-8").strip()
    head, tail = f"{_CALLBACK}(", ");"
    if not (text.startswith(head) and text.endswith(tail)):
        raise InputError(Path(folder) / REVIEW_JS, f"not a review file (expected {head}...{tail})")
    return json.loads(text[len(head):-len(tail)])


def _number(value, digits: int):
    """A finite number rounded for the page, else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, digits) if math.isfinite(value) else None


def page_record(r: dict, threshold: float) -> dict:
    """The short record of one scan in ``index.html``: what the list and the counter need."""
    note = r.get("message") or ""
    if isinstance(note, float):  # NaN from a CSV
        note = ""
    if low_confidence(r, threshold):
        note = ("low confidence. " + note).strip()
    warnings = r.get("warnings")
    if isinstance(warnings, str) and warnings:
        note = (note + " " + warnings).strip()
    qc = r.get("qc_png") if isinstance(r.get("qc_png"), str) else ""
    slice_ = _number(r.get("l3_slice"), 0)
    return {"n": str(r.get("name", "")), "i": str(r.get("input", "")),
            "s": r.get("status", "error"), "c": _number(r.get("confidence"), 3),
            "l": int(slice_) if slice_ is not None else None, "z": _number(r.get("l3_z_mm"), 1),
            # the scan's folder, relative to the page ("" for a scan without pictures)
            "f": qc.rsplit("/", 1)[0] if "/" in qc else "", "m": note}


def write_index_html(path: str | os.PathLike, records: Sequence[dict], threshold: float,
                     title: str = "l3loc review") -> Path:
    """``index.html``: the review page of the scans in ``records`` (rows of ``results.csv``),
    sorted for review (:func:`l3loc.report.review_key`)."""
    path = Path(path)
    ordered = sorted(records, key=lambda rec: review_key(rec, threshold))
    counts = {s: sum(1 for r in records if r.get("status") == s) for s in REVIEW_ORDER}
    data = {"title": title, "threshold": float(threshold),
            "summary": ", ".join(f"{n} {s}" for s, n in counts.items() if n),
            "records": [page_record(r, threshold) for r in ordered]}
    # "<" escaped: no text inside the JSON can close the <script> element that holds it
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    template = _TEMPLATE.read_text(encoding="utf-8")
    page = template.replace("__TITLE__", _html_text(title)).replace("__DATA__", blob)
    write_text(path, page)
    return path


def _html_text(text: str) -> str:
    import html

    return html.escape(text)


def rebuild_review_page(out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/index.html`` again from ``results.csv`` and ``run.json`` of an earlier
    ``predict`` (``l3loc predict --review-only OUT``); the per-scan files are used as they are.

    Raises:
        InputError: ``out_dir`` has no readable ``results.csv`` or ``run.json``.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    results, run_json = out_dir / "results.csv", out_dir / "run.json"
    for p in (results, run_json):
        if not p.is_file():
            raise InputError(p, "not found: --review-only needs the output folder of a finished "
                                "predict run (results.csv and run.json)")
    try:
        threshold = float(json.loads(run_json.read_text(encoding="utf-8"))["threshold"])
        # names and paths stay text ("007" is a case name, not 7)
        table = pd.read_csv(results, encoding="utf-8", dtype={c: str for c in _TEXT_COLUMNS})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(out_dir, f"cannot read results.csv / run.json ({exc})") from None
    for column in ("name", "status"):
        if column not in table.columns:
            raise InputError(results, f"no {column!r} column: not a results.csv of l3loc predict")
    records = [{k: (None if isinstance(v, float) and math.isnan(v) and k != "confidence" else v)
                for k, v in row.items()} for row in table.to_dict("records")]
    return write_index_html(out_dir / "index.html", records, threshold,
                            title=f"l3loc review: {out_dir.resolve().name}")
