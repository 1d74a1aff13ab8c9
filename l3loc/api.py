"""The Python API: what ``l3loc predict`` does, as two functions.

    import l3loc

    rec = l3loc.find_l3("scan.nii.gz")                  # the shipped model; nothing written
    rec["status"], rec["l3_slice"], rec["l3_z_mm"], rec["confidence"]

    model = l3loc.load_model()                          # load once, reuse for many calls
    recs = l3loc.predict_cohort(["scans/", "more.nii.gz"], "results/", model=model)

Both return the records of ``results.csv`` (:data:`l3loc.predict.RESULT_COLUMNS`): a bad scan
is a record with ``status == "error"`` and a ``message``, as in the command's table.
"""
from __future__ import annotations

import os
from typing import Sequence

from l3loc.errors import InputError
from l3loc.io.annotations import default_name
from l3loc.io.geometry import CTVolume
from l3loc.predict import predict_scan, run_prediction
from l3loc.scan_inputs import ScanInput, list_inputs
from l3loc.shipping import load_model

__all__ = ["find_l3", "predict_cohort", "load_model"]


def find_l3(path_or_volume: str | os.PathLike | CTVolume, model=None,
            out_dir: str | os.PathLike | None = None, slab_mm: float | None = None,
            view: str | None = None, device: str = "auto", threshold: float | None = None) -> dict:
    """Find the L3 slice in one CT scan.

    Args:
        path_or_volume: a scan file (NIfTI, NRRD, MHA/MHD, a DICOM file), a DICOM series folder,
            or a volume read with :func:`l3loc.io.volume.read_volume`.
        model: None = the shipped model; or a Localiser from :func:`load_model`, an experiment
            name under ``work/``, a run, export or shipped-model folder.
        out_dir: also write ``<out_dir>/<name>/`` (``result.json``, ``qc.png``, the L3 slice);
            None = return the record only.
        slab_mm: with ``out_dir``, also write the mean of the slices within +-slab_mm of L3.
        view, device, threshold: see :func:`load_model` (ignored when ``model`` is a Localiser).

    Returns:
        The record of one ``results.csv`` row: ``status`` (found / not_found / ambiguous /
        error), ``l3_slice`` (the file's own 0-based slice index), ``l3_z_mm``, ``confidence``, ...

    Raises:
        InputError: the path does not exist or holds several scans (use :func:`predict_cohort`),
            or the model cannot be loaded.
    """
    localiser = load_model(model, view=view, device=device, threshold=threshold)
    if isinstance(path_or_volume, CTVolume):
        ct = path_or_volume
        return predict_scan(ScanInput(default_name(ct.path), ct.path), localiser, out_dir,
                            slab_mm, ct=ct)
    scans = list_inputs([path_or_volume])
    if len(scans) != 1:
        raise InputError(path_or_volume, f"holds {len(scans)} scans; find_l3 takes one "
                                         "(predict_cohort takes many)")
    return predict_scan(scans[0], localiser, out_dir, slab_mm)


def predict_cohort(paths: str | os.PathLike | Sequence[str | os.PathLike],
                   out_dir: str | os.PathLike, model=None, slab_mm: float | None = None,
                   resume: bool = False, overwrite: bool = False, view: str | None = None,
                   device: str = "auto", threshold: float | None = None,
                   progress: bool = False) -> list[dict]:
    """Find L3 in many scans and write ``results.csv``, ``index.html``, ``run.json`` and one
    folder per scan into ``out_dir``, exactly as ``l3loc predict`` does.

    Args:
        paths: scan files, DICOM folders, folders of scans (searched recursively) or CSV lists.
        out_dir: output folder; an existing ``results.csv`` needs ``resume`` or ``overwrite``.
        model, view, device, threshold: as in :func:`find_l3`.
        slab_mm, resume, overwrite, progress: see :func:`l3loc.predict.run_prediction`.

    Returns:
        One record per scan (the rows of ``results.csv``), in input order.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    scans = list_inputs(paths)
    localiser = load_model(model, view=view, device=device, threshold=threshold)
    return run_prediction(scans, localiser, out_dir, slab_mm, resume, overwrite, progress,
                          command=f"l3loc.predict_cohort({[str(p) for p in paths]!r})")
