"""A cohort split into N deterministic shares, predicted without coordination (a SLURM array, N
GPUs, N machines), and the shares merged back into one results folder.

    l3loc predict cohort.csv --shard 1/3 --out res/1 --device gpu:0     # ... 2/3, 3/3
    l3loc predict --merge res/1 res/2 res/3 --out res/all

Share K of N holds the scans at positions K-1, K-1+N, K-1+2N, ... of the cohort as
:func:`l3loc.scan_inputs.list_inputs` orders it (deterministic: the same inputs give the same list),
so the shares are as even as can be and the merge restores the cohort's order by taking one scan
of each share in turn. The merged folder is what one run would have written: ``results.csv``,
``index.html``, ``run.json`` and every scan's folder (hard links when the file system allows,
else copies).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Sequence, TypeVar

from l3loc.atomic import write_table, write_text
from l3loc.errors import InputError

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N), 1 <= K <= N.

    Raises:
        InputError: anything else.
    """
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError("--shard", f"expected K/N such as 2/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise InputError("--shard", f"K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def shard_of(items: Sequence[T], k: int, n: int) -> list[T]:
    """Share ``k`` (1-based) of ``n``: every n-th item from position k-1."""
    return list(items[k - 1::n])


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _read_shard(folder: Path) -> tuple[dict, list[dict]]:
    """run.json and the records (from each scan's result.json, in results.csv's order)."""
    from l3loc.predict import read_record

    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        with open(folder / "results.csv", newline="", encoding="utf-8") as fh:
            names = [row["name"] for row in csv.DictReader(fh)]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(folder, f"not a finished prediction folder ({exc})") from None
    if not isinstance(run.get("shard"), dict):
        raise InputError(folder, "not a share of a cohort (made without --shard K/N)")
    records = []
    for name in names:
        rec = read_record(folder / name / "result.json")
        if rec is None:
            raise InputError(folder / name / "result.json", "missing or unreadable")
        records.append(rec)
    return run, records


def merge_predictions(folders: Sequence[str | os.PathLike], out: str | os.PathLike,
                      overwrite: bool = False) -> list[dict]:
    """Merge the shares ``folders`` (every K of one N, any order) into ``out``; the records.

    Raises:
        InputError: a folder that is not a finished share, shares of different cohorts, models
            or thresholds, a share missing or given twice, an incomplete share, ``out`` among
            the shares, or ``out`` already holding results (without ``overwrite``).
    """
    from l3loc.predict import OUT_STATUSES, RESULT_COLUMNS, _jsonable
    from l3loc.review import write_index_html

    out = Path(out)
    folders = [Path(f) for f in folders]
    if out.resolve() in {f.resolve() for f in folders}:
        raise InputError(out, "--out must be a new folder, not one of the shares")
    if (out / "results.csv").exists() and not overwrite:
        raise InputError(out, "holds results of an earlier run; use --overwrite or another --out")
    shares = {}
    for folder in folders:
        run, records = _read_shard(folder)
        k = run["shard"]["k"]
        if k in shares:
            raise InputError(folder, f"share {k}/{run['shard']['n']} given twice "
                                     f"(also {shares[k][0]})")
        shares[k] = (folder, run, records)
    first = shares[min(shares)][1]
    for folder, run, records in shares.values():
        for key in ("models", "model_id", "threshold", "views", "backend"):
            if run.get(key) != first.get(key):
                raise InputError(folder, f"{key} {run.get(key)!r} differs from the other shares' "
                                         f"{first.get(key)!r}: not one prediction of one cohort")
        if (run["shard"]["n"], run["shard"]["cohort_size"]) != (
                first["shard"]["n"], first["shard"]["cohort_size"]):
            raise InputError(folder, "a share of another split or cohort than the other shares")
        k, n, size = run["shard"]["k"], run["shard"]["n"], run["shard"]["cohort_size"]
        if len(records) != len(range(k - 1, size, n)):
            raise InputError(folder, f"share {k}/{n} holds {len(records)} of its "
                                     f"{len(range(k - 1, size, n))} scans: finish it (--resume)")
    n = first["shard"]["n"]
    missing = sorted(set(range(1, n + 1)) - set(shares))
    if missing:
        raise InputError("--merge", f"share(s) {', '.join(f'{k}/{n}' for k in missing)} missing")
    ordered = [shares[k] for k in range(1, n + 1)]
    merged = []
    for i in range(max(len(s[2]) for s in ordered)):
        for folder, _, records in ordered:
            if i < len(records):
                merged.append((folder, records[i]))
    out.mkdir(parents=True, exist_ok=True)
    for folder, rec in merged:
        if (folder / rec["name"]).is_dir():
            shutil.copytree(folder / rec["name"], out / rec["name"], copy_function=_link_or_copy,
                            dirs_exist_ok=overwrite)
    records = [rec for _, rec in merged]
    counts = {s: sum(r["status"] == s for r in records) for s in OUT_STATUSES}
    run = {k: v for k, v in first.items() if k not in ("shard", "command", "started", "seconds",
                                                        "skipped", "counts", "n_scans")}
    run.update(n_scans=len(records), counts=counts,
               merged_from=[{"folder": str(f), "command": r.get("command"),
                             "started": r.get("started"), "seconds": r.get("seconds")}
                            for f, r, _ in ordered])
    write_text(out / "run.json", json.dumps(run, indent=1, ensure_ascii=False))
    write_table(out / "results.csv", [_jsonable(r) for r in records], RESULT_COLUMNS)
    write_index_html(out / "index.html", records, first["threshold"])
    return records
