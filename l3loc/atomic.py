"""Crash-safe writes: everything goes to a temporary file in the target folder, then is renamed.

A reader therefore sees either the old complete file or the new complete file, never half of one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    Args:
        path: final destination.
        overwrite: if False and ``path`` exists, raise FileExistsError before writing anything.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: exists (refusing to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix(es) so libraries that pick a format by extension (.nii.gz, .png) still work
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); results should get the usual permissions
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds, it replaces ``path``
    (an existing folder is removed first: the caller decides whether that is allowed).

    A crash inside the block leaves ``path`` as it was and no temporary folder behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Atomically write a text file."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_table(path: str | os.PathLike, rows, columns=None, float_format: str | None = None) -> None:
    """Atomically write a CSV from a DataFrame or a list of dicts (only ``columns``, in order).

    ``float_format=None`` keeps full precision (a resumed run's log must compare equal).
    """
    import pandas as pd

    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=columns)
    if columns is not None:
        table = table.reindex(columns=list(columns))
    write_text(path, table.to_csv(index=False, float_format=float_format))
