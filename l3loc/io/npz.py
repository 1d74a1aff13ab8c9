"""The paper's ``l3_dataset.npz`` layout (Kanavati et al. 2018): safe reader, validator, writer.

Layout (keys of the npz):

- ``images_f``, ``images_s``: 1-D object arrays of 2-D MIPs (frontal, sagittal) in HU at the
  scan's native spacing, ``[rows, cols]``, rows = axial slices superior -> inferior; sizes differ
  per case.
- ``ydata``: a 0-d object array holding a dict annotator -> array (n,) of L3 positions, as native
  MIP rows (float). The label used for training is the mean over annotators.
- ``names``: (n,) case names; ``spacings``: (n, 3) mm, ``[0]`` = in-plane (column) spacing,
  ``[2]`` = slice thickness (row spacing); ``num_images``: n (optional on reading).
- l3loc additions, both optional: ``negative`` (n,) bool: L3 is not in the field of view (its
  labels are NaN); any other key is kept as-is in ``L3Dataset.extra`` (e.g. synthetic ground truth).
- optional ``level_rows`` (n, 7) float: the native MIP row of each level of
  ``l3loc.levels.LEVELS`` (T12, L1..L5, S1 top), NaN where the level is absent or not annotated;
  optional ``transitional`` (n,) int: the spine has not exactly 5 lumbar vertebrae. Checked on
  reading (shape); ``L3Dataset.level_rows()`` reads them with L3 taken from ``ydata``.

The object arrays need pickle, and a pickle can run arbitrary code. ``read_l3_npz`` therefore
never calls ``pickle.load``: it parses every ``.npy`` member itself and unpickles object arrays
with :class:`RestrictedUnpickler`, which only rebuilds numpy arrays/dtypes/scalars, dict, list,
tuple, str and numbers, and refuses anything else with an :class:`~l3loc.errors.InputError`.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Sequence
from pathlib import Path

import numpy as np

from l3loc.atomic import atomic_path
from l3loc.errors import InputError

REQUIRED_KEYS = ("images_f", "images_s", "ydata", "names", "spacings")
_KNOWN_KEYS = set(REQUIRED_KEYS) | {"num_images", "negative"}

# Everything an object array of arrays, a dict of label arrays or numpy scalars pickles to, in
# numpy 1.x (numpy.core) and 2.x (numpy._core) spelling. Nothing here can run user code.
NPZ_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("builtins", "float"),
    ("builtins", "bool"),
    ("builtins", "complex"),
})


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of an allow-list.

    Args:
        file: the pickle stream.
        source: the file named in the error.
        allowed: the ``(module, name)`` globals it may resolve; default what an
            ``l3_dataset.npz`` holds (:data:`NPZ_GLOBALS`).
        holds: what such a file holds, for the error message.
    """

    def __init__(self, file, source: str, allowed: frozenset = NPZ_GLOBALS,
                 holds: str = "an l3_dataset.npz holds only numpy arrays, dict, list, tuple, "
                              "str and numbers"):
        super().__init__(file)
        self._source = source
        self._allowed = allowed
        self._holds = holds

    def find_class(self, module: str, name: str):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise InputError(self._source, f"refusing to unpickle '{module}.{name}': {self._holds}")


@dataclass
class L3Dataset:
    """The cases of an ``l3_dataset.npz`` in memory (see the module docstring for units)."""

    names: list[str]
    images_f: list[np.ndarray]
    images_s: list[np.ndarray]
    spacings: np.ndarray
    ydata: dict[str, np.ndarray]
    negative: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        if self.negative is None:
            self.negative = np.zeros(len(self.names), dtype=bool)

    def __len__(self) -> int:
        return len(self.names)

    def images(self, view: str) -> list[np.ndarray]:
        """The MIPs of one view: ``'frontal'`` or ``'sagittal'``."""
        if view == "frontal":
            return self.images_f
        if view == "sagittal":
            return self.images_s
        raise ValueError(f"unknown view {view!r}: expected 'frontal' or 'sagittal'")

    def label_rows(self) -> np.ndarray:
        """(n,) float: L3 native MIP row averaged over annotators; NaN for negative cases."""
        stacked = np.stack([np.asarray(v, dtype=np.float64) for v in self.ydata.values()])
        rows = stacked.mean(axis=0)
        rows[self.negative] = np.nan
        return rows

    def level_rows(self) -> np.ndarray | None:
        """(n, len(LEVELS)) native rows of every level (NaN = absent), or None when the dataset
        has no ``level_rows``. The L3 column is :meth:`label_rows` (the annotated label, what
        the single-L3 model trains on), not the ground truth stored beside it."""
        if "level_rows" not in self.extra:
            return None
        from l3loc.levels import LEVELS

        rows = np.array(self.extra["level_rows"], dtype=np.float64)
        rows[:, LEVELS.index("L3")] = self.label_rows()
        return rows

    def subset(self, indices) -> "L3Dataset":
        """A new dataset with the cases at ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        return L3Dataset(
            names=[self.names[i] for i in idx],
            images_f=[self.images_f[i] for i in idx],
            images_s=[self.images_s[i] for i in idx],
            spacings=self.spacings[idx],
            ydata={k: np.asarray(v)[idx] for k, v in self.ydata.items()},
            negative=self.negative[idx],
            extra={k: np.asarray(v)[idx] for k, v in self.extra.items()},
        )


@dataclass(frozen=True)
class CaseProblem:
    """One invalid case: its position, name and what is wrong."""

    index: int
    name: str
    problem: str

    def __str__(self) -> str:
        return f"case {self.index} '{self.name}': {self.problem}"


def _read_member(zf: zipfile.ZipFile, member: str, source: str):
    """Read one ``.npy`` member; object arrays go through the restricted unpickler."""
    with zf.open(member) as raw:
        fp = io.BytesIO(raw.read())
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    if not dtype.hasobject:
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    return RestrictedUnpickler(fp, source).load()


def _load_members(path: Path) -> dict:
    source = str(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected an l3_dataset.npz file")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {}
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                members[member[: -len(".npy")]] = _read_member(zf, member, source)
    except InputError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, pickle.UnpicklingError) as exc:
        raise InputError(path, f"not a readable .npz file (corrupt or truncated?): {exc}") from None
    return members


def _as_list(value, key: str, path: Path) -> list:
    arr = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    if arr.ndim == 0:
        raise InputError(path, f"'{key}' must be a sequence, got a single value")
    return [arr[i] for i in range(arr.shape[0])]


def _unwrap_dict(value, path: Path) -> dict:
    obj = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    if not isinstance(obj, dict) or not obj:
        raise InputError(path, "'ydata' must be a non-empty dict annotator -> label array")
    return obj


def read_l3_npz(path, skip_bad: bool = False) -> tuple[L3Dataset, list[CaseProblem]]:
    """Read and validate an ``l3_dataset.npz`` without executing pickled code.

    Args:
        path: the npz file.
        skip_bad: False: any invalid case raises InputError listing every problem. True: invalid
            cases are dropped and returned as problems.

    Returns:
        (dataset, problems): the valid cases, and the problems of the cases that were dropped.

    Raises:
        InputError: unreadable file, forbidden pickle content, missing keys, unequal lengths, or
            (unless ``skip_bad``) any invalid case.
    """
    path = Path(path)
    m = _load_members(path)
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise InputError(path, f"missing required key(s) {missing}; found {sorted(m)}")

    images_f = _as_list(m["images_f"], "images_f", path)
    images_s = _as_list(m["images_s"], "images_s", path)
    names = [str(x) for x in _as_list(m["names"], "names", path)]
    ydata_raw = _unwrap_dict(m["ydata"], path)
    n = len(names)
    try:
        spacings = np.asarray(m["spacings"], dtype=np.float64)
        ydata = {str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in ydata_raw.items()}
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"'spacings' and 'ydata' must hold numbers: {exc}") from None
    lengths = {"images_f": len(images_f), "images_s": len(images_s), "names": n,
               "spacings": len(spacings)}
    lengths.update({f"ydata[{k}]": len(v) for k, v in ydata.items()})
    if "num_images" in m:
        lengths["num_images"] = int(np.asarray(m["num_images"]).reshape(-1)[0])
    negative = np.zeros(n, dtype=bool)
    if "negative" in m:
        negative = np.asarray(m["negative"]).astype(bool).reshape(-1)
        lengths["negative"] = len(negative)
    if len(set(lengths.values())) != 1:
        raise InputError(path, f"keys have unequal lengths: {lengths}")
    if spacings.ndim != 2 or spacings.shape[1] < 3:
        raise InputError(path, f"'spacings' must have shape (n, 3), got {spacings.shape}")
    extra = {k: v for k, v in m.items() if k not in _KNOWN_KEYS}
    if "level_rows" in extra:
        from l3loc.levels import LEVELS

        shape = np.shape(extra["level_rows"])
        if shape != (n, len(LEVELS)) or extra["level_rows"].dtype.kind != "f":
            raise InputError(path, f"'level_rows' must be float of shape ({n}, {len(LEVELS)}) "
                                   f"(one column per level {', '.join(LEVELS)}), got "
                                   f"{extra['level_rows'].dtype} {shape}")

    problems = []
    for i, name in enumerate(names):
        for problem in _case_problems(images_f[i], images_s[i], spacings[i],
                                      [y[i] for y in ydata.values()], bool(negative[i])):
            problems.append(CaseProblem(i, name, problem))
    if len(set(names)) != n:
        seen = set()
        for i, name in enumerate(names):
            if name in seen:
                problems.append(CaseProblem(i, name, "duplicate case name"))
            seen.add(name)

    ds = L3Dataset(names, images_f, images_s, spacings, ydata, negative, extra)
    if problems and not skip_bad:
        listed = "; ".join(str(p) for p in problems[:3])
        more = f"; ... and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise InputError(path, f"{len(problems)} invalid case(s): {listed}{more} (`l3loc inspect` "
                               "lists them all; training drops them with data.skip_bad: true in "
                               "the config, or --opts data.skip_bad=true)")
    bad = {p.index for p in problems}
    if bad:
        ds = ds.subset([i for i in range(n) if i not in bad])
    return ds, problems


def _case_problems(img_f, img_s, spacing, labels, negative: bool) -> list[str]:
    """Every problem of one case, as sentences (empty list = valid)."""
    out = []
    heights = []
    for view, img in (("frontal", img_f), ("sagittal", img_s)):
        try:
            a = np.asarray(img, dtype=np.float64)
        except (TypeError, ValueError):
            out.append(f"{view} image is not numeric")
            continue
        if a.ndim != 2:
            out.append(f"{view} image must be 2-D, got shape {a.shape}")
            continue
        if a.size == 0:
            out.append(f"{view} image is empty, shape {a.shape}")
            continue
        if not np.isfinite(a).all():
            out.append(f"{view} image has {int((~np.isfinite(a)).sum())} NaN/inf pixels")
        heights.append(a.shape[0])
    if len(heights) == 2 and heights[0] != heights[1]:
        out.append(f"frontal and sagittal images have different heights {heights} (rows = slices)")
    sp = spacing[:3]
    if not (np.isfinite(sp).all() and (sp > 0).all()):
        out.append(f"spacing must be positive and finite, got {list(map(float, sp))}")
    labels = np.asarray(labels, dtype=np.float64)
    if negative:
        if np.isfinite(labels).any():
            out.append("marked negative (no L3) but has a finite label")
    elif not np.isfinite(labels).all():
        out.append(f"label is not finite: {labels.tolist()}")
    elif heights and ((labels < 0) | (labels > min(heights) - 1)).any():
        out.append(f"label row {labels.tolist()} outside the image rows 0..{min(heights) - 1}")
    return out


def _object_array(items) -> np.ndarray:
    # element-wise fill: np.array(list_of_same_shape_arrays, dtype=object) would build a 3-D array
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    return arr


def write_l3_npz(path, ds: L3Dataset, overwrite: bool = False) -> None:
    """Write ``ds`` in the paper's layout (compressed, atomically); ``read_l3_npz`` reads it back
    exactly (same arrays, dtypes, names, labels and extra arrays).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    clash = _KNOWN_KEYS.intersection(ds.extra)
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} collide with the layout's own keys")
    arrays = {
        "images_f": _object_array(ds.images_f),
        "images_s": _object_array(ds.images_s),
        "ydata": np.array({k: np.asarray(v) for k, v in ds.ydata.items()}, dtype=object),
        "names": np.asarray(ds.names, dtype=str),
        "spacings": np.asarray(ds.spacings),
        "num_images": np.asarray(len(ds)),
        "negative": np.asarray(ds.negative, dtype=bool),
        **{k: np.asarray(v) for k, v in ds.extra.items()},
    }
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def describe_dataset(ds: L3Dataset, problems: list[CaseProblem]) -> str:
    """A multi-line summary for a person checking a dataset before training."""
    lines = [f"cases: {len(ds)} valid, {len(problems)} invalid"]
    if len(ds):
        rows = np.array([im.shape[0] for im in ds.images_f])
        for view in ("frontal", "sagittal"):
            cols = np.array([im.shape[1] for im in ds.images(view)])
            lines.append(f"{view:9s} images: rows {rows.min()}..{rows.max()} (median "
                         f"{int(np.median(rows))}), cols {cols.min()}..{cols.max()}")
        sp = ds.spacings
        lines.append(f"in-plane spacing mm: {sp[:, 0].min():.3g}..{sp[:, 0].max():.3g}; "
                     f"slice thickness mm: {sp[:, 2].min():.3g}..{sp[:, 2].max():.3g}")
        heights_mm = rows * sp[:, 2]
        lines.append(f"scan height mm: {heights_mm.min():.0f}..{heights_mm.max():.0f} "
                     f"({int((heights_mm > 512).sum())} taller than 512 mm)")
        lab = ds.label_rows()
        pos = ~ds.negative
        if pos.any():
            lab_mm = lab[pos] * sp[pos, 2]
            lines.append(f"L3 label row: {np.nanmin(lab[pos]):.1f}..{np.nanmax(lab[pos]):.1f}; "
                         f"in mm from the top: {lab_mm.min():.0f}..{lab_mm.max():.0f}")
        if len(ds.ydata) > 1:
            ys = np.stack([v[pos] for v in ds.ydata.values()])
            diff_mm = (ys.max(axis=0) - ys.min(axis=0)) * sp[pos, 2]
            lines.append(f"annotators {list(ds.ydata)}: disagreement median "
                         f"{np.median(diff_mm):.2f} mm, max {diff_mm.max():.2f} mm")
        lines.append(f"negative cases (no L3): {int(ds.negative.sum())}")
        if ds.extra:
            lines.append(f"extra keys: {sorted(ds.extra)}")
    for p in problems:
        lines.append(f"PROBLEM {p}")
    return "\n".join(lines)


#: Extra array of a merged dataset: each case's name in the dataset it came from (kept through
#: merges of merges). Cases of one group are one patient, e.g. the same phantom rendered by two
#: generators: k-fold splits keep a group in one fold (``l3loc.splits``), so no fold validates
#: on a patient it trained on.
CASE_GROUP = "case_group"


def read_case_groups(path) -> dict[str, str] | None:
    """``{name: group}`` of an ``l3_dataset.npz`` with a ``case_group`` array (a merged one);
    None for any other source (a CSV, an npz without groups). Reads only those two members."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    with zipfile.ZipFile(path) as zf:
        if f"{CASE_GROUP}.npy" not in zf.namelist():
            return None
        names = _read_member(zf, "names.npy", str(path))
        groups = _read_member(zf, f"{CASE_GROUP}.npy", str(path))
    return {str(n): str(g) for n, g in zip(np.asarray(names).tolist(), np.asarray(groups).tolist())}


def merge_datasets(parts: Sequence[tuple[str, L3Dataset]]) -> tuple[L3Dataset, list[str]]:
    """One dataset of several (e.g. phantom families from different generators or styles, to
    train on all of them): the cases in order, each name prefixed ``<prefix>_``.

    The annotators (``ydata`` keys) must be the same in every part. An extra array (``level_rows``,
    ``sagittal_slab_mm``, ...) is kept when every part has it, else dropped (and named in the
    returned notes: a merge without ``level_rows`` cannot train level channels). The merge
    records each case's group (:data:`CASE_GROUP`): its name in its part, or the part's own group.

    Args:
        parts: (prefix, dataset) pairs; prefixes distinct.

    Returns:
        (merged dataset, notes on dropped extra arrays).

    Raises:
        ValueError: no part, repeated prefixes, different annotators, or repeated names.
    """
    if not parts:
        raise ValueError("nothing to merge")
    prefixes = [p for p, _ in parts]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"prefixes must be distinct, got {prefixes}")
    annotators = {tuple(ds.ydata) for _, ds in parts}
    if len(annotators) != 1:
        raise ValueError(f"the datasets have different annotators: {sorted(annotators)}")
    shared = set.intersection(*(set(ds.extra) for _, ds in parts)) - {CASE_GROUP}
    notes = [f"{key!r} dropped: only in {', '.join(p for p, ds in parts if key in ds.extra)}"
             for key in sorted(set().union(*(ds.extra for _, ds in parts)) - shared - {CASE_GROUP})]
    groups = np.array([str(g) for _, ds in parts for g in ds.extra.get(CASE_GROUP, ds.names)], dtype=str)
    names = [f"{p}_{n}" for p, ds in parts for n in ds.names]
    if len(set(names)) != len(names):
        raise ValueError("merged case names repeat: give each dataset its own prefix")
    merged = L3Dataset(
        names=names,
        images_f=[im for _, ds in parts for im in ds.images_f],
        images_s=[im for _, ds in parts for im in ds.images_s],
        spacings=np.concatenate([ds.spacings for _, ds in parts]),
        ydata={k: np.concatenate([np.asarray(ds.ydata[k]) for _, ds in parts])
               for k in parts[0][1].ydata},
        negative=np.concatenate([ds.negative for _, ds in parts]),
        extra={**{k: np.concatenate([np.asarray(ds.extra[k]) for _, ds in parts]) for k in sorted(shared)},
               CASE_GROUP: groups})
    return merged, notes
