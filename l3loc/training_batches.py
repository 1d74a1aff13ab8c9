"""What a training step is given: a random window of canvas rows per case (containing L3 with
probability ``p_positive``), augmented, with one band target per level; drawn from generators
seeded by (seed, fold, epoch, step, position), so a run and its resumption, or its data-parallel
ranks, see the same batches."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from l3loc.augment import Augmenter
from l3loc.labels import annealed_sigma_mm, level_targets
from l3loc.preprocess import band_col_range
from l3loc.preprocess_config import PreprocessConfig
from l3loc.row_windows import row_window, sample_row_window


def epoch_sigma_mm(cfg: dict, epoch: int) -> float:
    lab = cfg["label"]
    if lab["sigma_start_mm"] <= 0 and lab["sigma_end_mm"] <= 0:
        return 0.0
    mode = "geometric" if min(lab["sigma_start_mm"], lab["sigma_end_mm"]) > 0 else "linear"
    return annealed_sigma_mm(epoch, cfg["train"]["epochs"], lab["sigma_start_mm"],
                             lab["sigma_end_mm"], mode=mode)


def cfg_levels(cfg: dict) -> tuple[str, ...]:
    return tuple(cfg["label"].get("levels", ["L3"]))


def sample_rngs(seed: int, fold: int, epoch: int, step: int, positions) -> list[np.random.Generator]:
    """One generator per position of a step's global batch: a sample's window and augmentation
    depend on where it sits in the batch, not on which process draws it, so the ranks of a
    data-parallel run together see exactly the batch of one process."""
    return [np.random.default_rng([seed, fold, epoch, step, j]) for j in positions]


def training_batch(dataset, indices, rngs: Sequence[np.random.Generator], cfg: dict,
                   sigma_mm: float, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 1, rows, cols]`` and band targets ``[N, levels, rows, cols]`` (one channel
    per level of ``label.levels``) for the cases at ``indices``, ``rngs[k]`` drawing case k's.

    Each image is a random window of ``canvas`` rows (containing L3 with probability
    ``p_positive``), then augmented (``augment``); the band targets follow the augmented label
    rows.
    """
    from l3loc.models import target_col_range

    pp = cfg["preprocess"]
    rows, spacing = int(pp["canvas"][0]), float(pp["spacing_mm"])
    levels = cfg_levels(cfg)
    # the band's columns; all of them for a row-profile net (l3loc.models.target_col_range)
    target_cols = target_col_range(cfg, band_col_range(PreprocessConfig.from_dict(pp),
                                                       dataset.view))
    images, targets = [], []
    for i, rng in zip(indices, rngs, strict=True):
        image, label_row, _ = dataset[int(i)]
        start = sample_row_window(image.shape[0], label_row, rows, rng, cfg["train"]["p_positive"])
        window = row_window(image, start, rows)
        labels = dataset.label_rows(int(i), levels) - start
        if augment:
            window, labels = Augmenter(cfg["augment"], dataset.view, rng, spacing,
                                       pp["hu_window"])(window, labels)
        images.append(window)
        targets.append(level_targets(rows, window.shape[1], labels, cfg["label"]["half_height_mm"],
                                     spacing, target_cols, sigma_mm))
    return np.stack(images)[:, None], np.stack(targets)
