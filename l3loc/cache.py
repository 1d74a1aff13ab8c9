"""Dataset cache: preprocess a dataset once, then read training samples from a memory-mapped file.

A cache folder ``<cache_root>/<source stem>_<view>_<key>/`` holds

- ``images.u8``: every processed full-height image (not cut to the canvas: training windows are
  sampled later), one after the other, row-major uint8, ``round(x * 255)`` of the [0, 1] window.
  uint8 rather than float16: one level is 1/255 of the 1400 HU window = 5.5 HU (rounding error
  at most 2.7 HU), below CT noise (about 10-20 HU) and far below the bone/soft-tissue contrast
  the net uses (hundreds of HU); float16 would be 0.7 HU and twice the size.
- ``cases.json``: per case ``name``, ``offset`` (bytes), ``height``, ``width``,
  ``label_row_px`` (processed row, null for none), ``negative``, ``geometry``
  (``CaseGeometry.to_dict()``), ``source_index``, and ``level_rows_px`` (processed row of each
  level of ``l3loc.levels.LEVELS``, null where absent; the L3 entry is ``label_row_px``) when
  the source has per-level labels (npz ``level_rows``, CSV level columns).
- ``meta.json`` (written last: its presence marks a complete cache): format version, view,
  preprocessing config, source and key.

``key`` is a hash of the preprocessing config, the view, ``skip_bad``, and the source's path,
size and modification time (for an annotation CSV also those of every scan it lists), so a
changed config or source gets a new folder and an unchanged one is reused.

Sources: the paper's ``l3_dataset.npz``, or an annotation CSV listing the user's scans
(``l3loc.io.annotations``); both go through ``l3loc.preprocess.preprocess_case``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from l3loc.errors import InputError
from l3loc.levels import LEVELS
from l3loc.case_geometry import CaseGeometry
from l3loc.mip import VIEWS
from l3loc.preprocess import preprocess_case, preprocess_volume
from l3loc.preprocess_config import PreprocessConfig

log = logging.getLogger("l3loc")

#: Bump when the on-disk layout or the meaning of the stored numbers changes.
CACHE_FORMAT = 2  # 2: sagittal canvas centred on the spine, bands in mm
_IMAGES = "images.u8"
_CASES = "cases.json"
_META = "meta.json"


# ----------------------------------------------------------------------------- keys


def _stat_record(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


#: How scans are read, part of a scan list's key: 2 = gantry-tilted and oblique scans resampled
#: onto axis-aligned slices (l3loc.io.deshear); their MIPs cached before that were sheared.
SCAN_READER = 2


def _source_kind(source: Path) -> str:
    if not source.exists():
        raise InputError(source, "dataset source not found")
    name = source.name.lower()
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".csv"):
        return "csv"
    raise InputError(source, "dataset source must be an l3_dataset.npz or an annotation .csv "
                             "listing scans")


def cache_key(source: str | os.PathLike, cfg: PreprocessConfig, view: str,
              skip_bad: bool = False) -> str:
    """16 hex digits identifying (source, config, view, skip_bad); see the module docstring."""
    source = Path(source)
    payload: dict[str, Any] = {"format": CACHE_FORMAT, "view": view, "skip_bad": bool(skip_bad),
                               "preprocess": cfg.to_dict(), "source": _stat_record(source)}
    if _source_kind(source) == "csv":
        from l3loc.io.annotations import read_annotations

        payload["scans"] = [_stat_record(Path(p)) for p in read_annotations(source)["path"]]
        payload["scan_reader"] = SCAN_READER
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def cache_dir_for(source: str | os.PathLike, cache_root: str | os.PathLike, cfg: PreprocessConfig,
                  view: str, skip_bad: bool = False) -> Path:
    """Folder of the cache of ``source`` under ``cache_root`` (whether or not it exists yet)."""
    source = Path(source)
    stem = source.name.split(".")[0]
    return Path(cache_root) / f"{stem}_{view}_{cache_key(source, cfg, view, skip_bad)}"


# ----------------------------------------------------------------------------- workers

# Set in each worker by _init_worker (and in the parent for workers=1): the job's cases.
_JOB: dict[str, Any] = {}


def _init_worker(job: dict[str, Any]) -> None:
    _JOB.clear()
    _JOB.update(job)


def _process_one(i: int) -> tuple:
    """Case ``i`` of the current job -> ("ok", uint8 image, geometry dict, label px, level px
    list or None, warnings) or ("error", path, problem) (InputError does not survive pickling
    between processes).

    A scan is read by ``read_ct``: one that is not a CT in HU is an error like an unreadable
    file; its warnings (a crop without air, a short scan) go back to the parent to be logged."""
    cfg, view = _JOB["cfg"], _JOB["view"]
    notes: list[str] = []
    try:
        if _JOB["kind"] == "npz":
            image, spacing_rc, label, levels = _JOB["cases"][i]
            case = preprocess_case(image, spacing_rc, view, label_row=label, cfg=cfg)
        else:
            from l3loc.io.annotations import annotation_to_canonical_row
            from l3loc.io.ct_checks import read_ct

            row = _JOB["cases"][i]
            ct, findings = read_ct(row["path"], series_uid=row.get("series_uid") or None)
            notes = [f.problem for f in findings]
            label = annotation_to_canonical_row(row, ct.geometry)
            levels = [label if k == "L3" else annotation_to_canonical_row(row, ct.geometry, k)
                      for k in LEVELS] if _JOB["has_levels"] else None
            case = preprocess_volume(ct, view, label_slice=label, cfg=cfg)
    except InputError as exc:
        return ("error", exc.path, exc.problem)
    u8 = np.round(case.image * 255.0).astype(np.uint8)
    # a native MIP row is a canonical slice: both map to processed rows the same way
    level_px = None if levels is None else \
        [float(case.geometry.processed_row(r)) if math.isfinite(r) else math.nan for r in levels]
    return ("ok", u8, case.geometry.to_dict(), case.label_row_px, level_px, notes)


def _npz_job(source: Path, skip_bad: bool, view: str,
             slab_mm: float | None = None) -> tuple[list, list[str], np.ndarray]:
    from l3loc.io.npz import read_l3_npz

    ds, problems = read_l3_npz(source, skip_bad=skip_bad)
    for p in problems:
        log.warning("[CACHE] skipped %s", p)
    if view == "sagittal":
        check_npz_slab(ds, slab_mm, source)
    labels = ds.label_rows()
    levels = ds.level_rows()
    images = ds.images(view)
    # spacings[:, 2] = slice thickness = row spacing; [:, 0] = in-plane = column spacing
    cases = [(np.asarray(images[i]), (float(ds.spacings[i, 2]), float(ds.spacings[i, 0])),
              float(labels[i]), None if levels is None else levels[i].tolist())
             for i in range(len(ds))]
    return cases, list(ds.names), np.asarray(ds.negative, dtype=bool)


def check_npz_slab(ds, slab_mm: float | None, source) -> None:
    """An npz made by l3loc records the sagittal MIP's slab half-width (``sagittal_slab_mm``,
    NaN = full width); a net trained on those images but predicting with another slab would see
    other images, so a mismatch with the config is refused. Other npz files record none.

    Raises:
        InputError: naming the npz and both widths.
    """
    if "sagittal_slab_mm" not in ds.extra:
        return
    stored = {None if not np.isfinite(v) else float(v)
              for v in np.asarray(ds.extra["sagittal_slab_mm"], dtype=np.float64)}
    if stored != {slab_mm} and stored:
        def say(v):
            return "the full width" if v is None else f"{v:g} mm"
        raise InputError(source, f"sagittal MIPs made with a slab of {', '.join(map(say, stored))}"
                                 f" but preprocess.sagittal_slab_mm is {say(slab_mm)}: set it "
                                 "to the npz's, or make the npz again")


def _csv_job(source: Path) -> tuple[list, list[str], np.ndarray]:
    from l3loc.io.annotations import read_annotations

    df = read_annotations(source)
    if "status" in df.columns:
        # the review page's "unsure" rows carry a line the reviewer did not vouch for: a
        # corrections.csv trains on accepted, corrected and negative rows only
        unsure = df["status"].str.lower() == "unsure"   # read_annotations strips the text
        if unsure.any():
            log.info("[CACHE] %s: %d row(s) marked unsure left out of training: %s", source,
                     int(unsure.sum()), ", ".join(map(str, df.loc[unsure, "name"][:10])))
        df = df[~unsure]
    cases = [row.to_dict() for _, row in df.iterrows()]
    return cases, [str(n) for n in df["name"]], df["negative"].to_numpy(dtype=bool)


def _csv_has_levels(source: Path) -> bool:
    from l3loc.io.annotations import level_columns, read_annotations

    df = read_annotations(source)
    return any(c in df.columns for c in level_columns(df.attrs["position"]).values())


# ----------------------------------------------------------------------------- build


def build_cache(
    source: str | os.PathLike,
    cache_root: str | os.PathLike,
    cfg: PreprocessConfig,
    view: str,
    workers: int = 2,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> Path:
    """Preprocess every case of ``source`` for ``view`` into a cache folder (reused if complete).

    Args:
        source: ``l3_dataset.npz`` or an annotation CSV (``l3loc.io.annotations``).
        cache_root: parent folder of cache folders.
        cfg: preprocessing parameters.
        view: "frontal" or "sagittal".
        workers: processes (1 = in this process).
        skip_bad: npz: drop invalid cases (logged) instead of failing.
        progress: show a tqdm bar; None = only at a terminal outside CI.

    Returns:
        The cache folder.

    Raises:
        InputError: unreadable source or an unreadable case (named).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    source = Path(source)
    kind = _source_kind(source)
    out = cache_dir_for(source, cache_root, cfg, view, skip_bad)
    if (out / _META).is_file():
        log.info("[CACHE] reusing %s", out)
        return out
    if kind == "npz":
        cases, names, negative = _npz_job(source, skip_bad, view, cfg.sagittal_slab_mm)
    else:
        cases, names, negative = _csv_job(source)
    if not cases:
        raise InputError(source, "no cases to preprocess")
    job = {"kind": kind, "cfg": cfg, "view": view, "cases": cases,
           "has_levels": kind == "csv" and _csv_has_levels(source)}
    if progress is None:
        from l3loc.cli import progress_enabled

        progress = progress_enabled()

    out.parent.mkdir(parents=True, exist_ok=True)
    # the folder is filled under a temporary name and renamed when complete (the atomic_path idea
    # for a folder): an interrupted build never looks like a cache
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        records = _write_images(tmp / _IMAGES, job, names, negative, workers, progress, view)
        (tmp / _CASES).write_text(json.dumps(records), encoding="utf-8")
        meta = {"format": CACHE_FORMAT, "view": view, "preprocess": cfg.to_dict(),
                "source": str(source.resolve()), "source_kind": kind, "skip_bad": bool(skip_bad),
                "key": out.name.rsplit("_", 1)[1], "n_cases": len(records),
                "bytes": sum(r["height"] * r["width"] for r in records)}
        (tmp / _META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / _META).is_file():  # not a concurrent build of the same cache
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("[CACHE] wrote %s: %d cases", out, len(names))
    return out


def _write_images(path: Path, job: dict, names: list[str], negative: np.ndarray, workers: int,
                  progress: bool, view: str) -> list[dict]:
    from tqdm import tqdm

    n = len(job["cases"])
    records, offset = [], 0
    with open(path, "wb") as fh:
        if workers <= 1:
            _init_worker(job)
            results = map(_process_one, range(n))
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(job,))
            # results come back in order, so the file is written sequentially
            results = pool.map(_process_one, range(n), chunksize=max(1, min(16, n // (4 * workers))))
        try:
            for i, res in enumerate(tqdm(results, total=n, desc=f"preprocess {view}",
                                         disable=not progress)):
                if res[0] == "error":
                    raise InputError(res[1], f"case '{names[i]}': {res[2]}")
                _, u8, geom, label_px, level_px, notes = res
                for note in notes:
                    log.warning("[CACHE] case '%s': %s", names[i], note)
                fh.write(u8.tobytes())
                records.append({"name": names[i], "source_index": i, "offset": offset,
                                "height": int(u8.shape[0]), "width": int(u8.shape[1]),
                                "label_row_px": label_px if math.isfinite(label_px) else None,
                                "negative": bool(negative[i]), "geometry": geom})
                if level_px is not None:
                    records[-1]["level_rows_px"] = [r if math.isfinite(r) else None for r in level_px]
                offset += u8.size
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            _JOB.clear()
    return records


# ----------------------------------------------------------------------------- read


class CachedDataset:
    """Random access to a cache folder; images are read from the memory map on demand.

    Memory does not grow with the number of cases: only the per-case table (a few hundred bytes
    a case) is held; pixels stay in the OS page cache. Picklable (the map is reopened lazily),
    so it can go to DataLoader worker processes.
    """

    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir)
        meta_path = self.cache_dir / _META
        if not meta_path.is_file():
            raise InputError(self.cache_dir, "not a complete dataset cache (no meta.json)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != CACHE_FORMAT:
            raise InputError(self.cache_dir, f"cache format {self.meta.get('format')} is not "
                                             f"{CACHE_FORMAT}: delete the folder to rebuild it")
        self._cases = json.loads((self.cache_dir / _CASES).read_text(encoding="utf-8"))
        self.names = [c["name"] for c in self._cases]
        self.label_rows_px = np.array([math.nan if c["label_row_px"] is None else c["label_row_px"]
                                       for c in self._cases], dtype=np.float64)
        self.negative = np.array([c["negative"] for c in self._cases], dtype=bool)
        #: (n, len(LEVELS)) processed row of every level, NaN = absent; None without level labels
        self.level_rows_px = None
        if self._cases and "level_rows_px" in self._cases[0]:
            self.level_rows_px = np.array([[math.nan if r is None else r for r in c["level_rows_px"]]
                                           for c in self._cases], dtype=np.float64)
        self.view = self.meta["view"]
        self.config = PreprocessConfig.from_dict(self.meta["preprocess"])
        self._mm: np.memmap | None = None

    def __len__(self) -> int:
        return len(self._cases)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mm"] = None
        return state

    def image_u8(self, i: int) -> np.ndarray:
        """Case ``i`` as stored: uint8 [height, width], a read-only view of the memory map."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"case index {i} out of range for {len(self)} cases")
        c = self._cases[i]
        if self._mm is None:
            self._mm = np.memmap(self.cache_dir / _IMAGES, dtype=np.uint8, mode="r")
        n = c["height"] * c["width"]
        return self._mm[c["offset"]:c["offset"] + n].reshape(c["height"], c["width"])

    def __getitem__(self, i: int) -> tuple[np.ndarray, float, str]:
        """(image float32 [H, W] in [0, 1], L3 processed row or NaN, name) of case ``i``."""
        img = self.image_u8(i).astype(np.float32)
        img *= np.float32(1.0 / 255.0)
        return img, float(self.label_rows_px[i]), self.names[i]

    def label_rows(self, i: int, levels: tuple[str, ...] = ("L3",)) -> np.ndarray:
        """(len(levels),) processed rows of case ``i`` at ``levels`` (NaN = absent); L3 is the
        annotated label row.

        Raises:
            InputError: levels other than L3 asked of a cache without level labels.
        """
        if tuple(levels) == ("L3",):
            return self.label_rows_px[i:i + 1].copy()
        if self.level_rows_px is None:
            raise InputError(self.meta["source"], f"label.levels {list(levels)} needs per-level "
                             "labels (npz 'level_rows' or the annotation CSV's level columns); "
                             "this source has L3 only")
        return self.level_rows_px[i, [LEVELS.index(k) for k in levels]].copy()

    def geometry(self, i: int) -> CaseGeometry:
        """The geometry of case ``i`` (processed row -> native row, file slice, z)."""
        return CaseGeometry.from_dict(self._cases[i]["geometry"])


def open_cache(cfg: dict, view: str, workers: int = 2, progress: bool | None = None,
               source: str | Path | None = None) -> CachedDataset:
    """The cache of a resolved experiment config (``l3loc.config.load_config``), built if missing.

    Uses ``cfg["data"]["source"]`` (or ``source``: another npz, preprocessed as this config
    preprocesses, e.g. data a trained model is evaluated on), ``["cache_dir"]``,
    ``["skip_bad"]`` and ``cfg["preprocess"]``.
    """
    data = cfg["data"]
    try:
        pp_cfg = PreprocessConfig.from_dict(cfg["preprocess"])
    except (TypeError, ValueError) as exc:
        raise InputError("config 'preprocess'", str(exc)) from None
    source = data["source"] if source is None else source
    out = build_cache(source, data["cache_dir"], pp_cfg, view, workers=workers,
                      skip_bad=bool(data.get("skip_bad", False)), progress=progress)
    return CachedDataset(out)
