"""Validation of a net during training: its maps of full-height images (padded to its stride),
the loss and decoded L3 error per case, each other level's error, and the selection set's
figures when the best epoch is chosen on one (``data.select_source``). ``predict_map`` is also
how inference runs a dygraph net."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from l3loc import distributed
from l3loc.cache import open_cache
from l3loc.decode import decode
from l3loc.errors import InputError
from l3loc.labels import level_targets
from l3loc.preprocess import band_col_range
from l3loc.preprocess_config import PreprocessConfig
from l3loc.row_windows import pad_rows_to_multiple
from l3loc.training_batches import cfg_levels


def _padded_logits(model, image: np.ndarray):
    """Logits [1, 1, H', W] of a full-height image [H, W], padded at the bottom to the stride."""
    import paddle

    padded = pad_rows_to_multiple(image, model.stride)
    return model(paddle.to_tensor(padded[None, None].astype(np.float32)))


def _to_maps(logits, height: int) -> np.ndarray:
    """Sigmoid of padded logits, cropped back to the image's ``height`` rows: [levels, H, W]."""
    import paddle

    return paddle.nn.functional.sigmoid(logits).numpy()[0, :, :height]


def predict_map(model, image: np.ndarray) -> np.ndarray:
    """Sigmoid confidence map [H, W] of a full-height image [H, W] (padded to the net's stride);
    [levels, H, W] for a net with one channel per level."""
    maps = _to_maps(_padded_logits(model, image), image.shape[0])
    return maps[0] if maps.shape[0] == 1 else maps


def validate(model, loss_fn, dataset, indices, cfg: dict, sigma_mm: float) -> tuple[float, list[dict]]:
    """Validation loss (mean over cases) and one prediction row per case, on full-height images."""
    import paddle

    from l3loc.models import target_col_range

    pp, lab = cfg["preprocess"], cfg["label"]
    spacing = float(pp["spacing_mm"])
    levels = cfg_levels(cfg)
    col_range = band_col_range(PreprocessConfig.from_dict(pp), dataset.view)
    target_cols = target_col_range(cfg, col_range)
    model.eval()
    losses, rows = [], []
    with paddle.no_grad():
        for i in indices:
            image, label_row, name = dataset[int(i)]
            logits = _padded_logits(model, image)
            target = level_targets(logits.shape[2], logits.shape[3],
                                   dataset.label_rows(int(i), levels), lab["half_height_mm"],
                                   spacing, target_cols, sigma_mm)
            losses.append(float(loss_fn(logits, paddle.to_tensor(target[None]))))
            # the L3 channel: model selection stays on the L3 error, comparable across targets
            maps = _to_maps(logits, image.shape[0])
            dec = decode(maps[levels.index("L3")], cfg["eval"]["decoder"], col_range, spacing,
                         cfg["eval"]["smooth_mm"])
            # the other channels each decoded alone (what each learns, for the log)
            level_errors = {}
            for level, m, true in zip(levels, maps, dataset.label_rows(int(i), levels)):
                if level != "L3":
                    d = decode(m, cfg["eval"]["decoder"], col_range, spacing, cfg["eval"]["smooth_mm"])
                    level_errors[f"error_mm_{level}"] = abs(d.row - true) * spacing

            geom = dataset.geometry(int(i))
            positive = math.isfinite(label_row)
            rows.append({
                "name": name, "negative": not positive, "true_row": label_row,
                "pred_row": dec.row, "confidence": dec.confidence,
                "error_mm": abs(dec.row - label_row) * spacing if positive else math.nan,
                "true_slice": float(geom.file_index(label_row)) if positive else math.nan,
                "pred_slice": float(geom.file_index(dec.row)),
                "true_z_mm": float(geom.z_mm(label_row)) if positive else math.nan,
                "pred_z_mm": float(geom.z_mm(dec.row)), **level_errors,
            })
    model.train()
    return float(np.mean(losses)) if losses else math.nan, rows


def open_select_dataset(cfg: dict, view: str):
    """The cached ``data.select_source``, the set on which the best epoch is chosen.

    Why: more epochs on one phantom generator can fit its look better while transferring worse
    (measured: a sagittal net's median error on another generator's phantoms went from 40 mm at
    epoch 3 to 104 mm at its best in-distribution epoch). Choosing the epoch on a family of phantoms
    held out of training (another style or generator; never the real validation set) picks the
    epoch that transfers best among those trained.
    """
    select_cfg = {**cfg, "data": {**cfg["data"], "source": cfg["data"]["select_source"]}}
    dataset = open_cache(select_cfg, view)
    # refused before the first epoch, not after it
    if not np.isfinite(dataset.label_rows_px).any():
        raise InputError(cfg["data"]["select_source"], "no case with L3 to choose an epoch on")
    return dataset


def positive_errors(preds: list[dict]) -> np.ndarray:
    """The L3 errors (mm) of the cases with L3 among :func:`validate`'s rows."""
    return np.array([p["error_mm"] for p in preds if not p["negative"]])


def select_scores(net, loss_fn, dataset, cfg: dict, sigma_mm: float, rank: int,
                  n_ranks: int) -> dict:
    """The L3 error on every positive case of the selection set (ranks share the cases)."""
    _, preds = validate(net, loss_fn, dataset, np.arange(len(dataset))[rank::n_ranks], cfg,
                        sigma_mm)
    errors = positive_errors(distributed.gather_interleaved(preds, n_ranks))
    return {"select_mean_error_mm": float(errors.mean()),
            "select_median_error_mm": float(np.median(errors)),
            "select_within_10mm": float((errors <= 10.0).mean())}


def level_medians(preds: list[dict], levels: Sequence[str]) -> dict:
    """Each level's (other than L3) median validation error over the cases that have it (NaN
    when none does)."""
    out = {}
    for k in levels:
        if k != "L3":
            err = np.array([p[f"error_mm_{k}"] for p in preds], dtype=np.float64)
            err = err[np.isfinite(err)]
            out[f"val_median_error_mm_{k}"] = float(np.median(err)) if err.size else math.nan
    return out
