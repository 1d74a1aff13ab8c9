"""Every vertebral level, not only L3: what the levels are, and how a row profile per level is
decoded into one anatomically consistent sequence.

**The levels** (:data:`LEVELS`, cranial first): ``T12``, ``L1``..``L5`` (vertebral body centres)
and ``S1`` (the upper endplate of the sacrum, the "S1 top"). They are counted **down from the
last rib-bearing vertebra**, the convention of :mod:`l3loc.synth.anatomy` (vertebrae named by
what they carry, as VerSe does), so:

- ``T12`` is the last rib-bearing vertebra (T12 in ~91 % of people; with 11 or 13 rib pairs it is
  anatomically T11 or T13, but it is the vertebra a reader counts from, and the one the net
  sees carrying the last rib);
- ``L1``..``L5`` are the 1st..5th vertebrae below it; with only 4 lumbar vertebrae ``L5`` does not
  exist (``L4`` sits on the sacrum); with 6, ``L5`` is not the last one (an ``L6`` lies between
  it and the sacrum, and has no channel);
- ``S1`` is always the top of the sacrum.

A case is **transitional** when counting from the ribs and counting from the sacrum disagree,
i.e. when it has not exactly 5 lumbar vertebrae. The rib count alone never changes the names
(the count starts at the last rib, whatever its number).

TotalSegmentator counts the other way (from the sacrum, L5 = the vertebra on the sacrum); the
two conventions name the same vertebrae in every non-transitional case.

**Decoding** (:func:`decode_levels`): each level channel gives a row profile; the decoder finds
the best sequence of rows that comes in order and a plausible distance apart
(:data:`STEP_MM`, scaled per case), by dynamic programming, with a confidence per level and for
the sequence. Levels may be absent at the ends (field of view). A level absent between two found
ones is told apart by the distance between them: at the spacing of the whole span it is a level
the net missed (reported, the spine stays normal); shorter, a vertebra is missing (four lumbar
vertebrae), which, like a last step that only fits with one vertebra more, marks the case
transitional.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from l3loc.decode import (MAX_DISAGREEMENT_MM, Decision, claim_reasons, offset_words,
                          other_vertebra_claims, scan_end, scan_end_reason, surest)

#: The levels, cranial first.
LEVELS = ("T12", "L1", "L2", "L3", "L4", "L5", "S1")


def check_levels(levels: Sequence[str], source: str = "label.levels") -> tuple[str, ...]:
    """Validate a level list (a config's ``label.levels``): known names, in cranial-caudal
    order, no repeats, L3 included (it is the product's answer). Returns it as a tuple.

    Raises:
        ValueError: naming the problem.
    """
    levels = tuple(str(v).upper() for v in levels)
    unknown = [v for v in levels if v not in LEVELS]
    if unknown:
        raise ValueError(f"{source}: unknown level(s) {unknown}; known: {', '.join(LEVELS)}")
    order = [LEVELS.index(v) for v in levels]
    if order != sorted(set(order)):
        raise ValueError(f"{source}: levels must be distinct and in order "
                         f"{', '.join(LEVELS)}; got {list(levels)}")
    if "L3" not in levels:
        raise ValueError(f"{source}: must include L3, got {list(levels)}")
    return levels


def column_name(level: str, position: str) -> str:
    """Annotation column of ``level`` for a table whose L3 column is ``position``
    (``l3_slice`` -> ``l1_slice``, ``l3_z_mm`` -> ``l1_z_mm``)."""
    return level.lower() + position[2:]


# ----------------------------------------------------------------------------- anatomy prior

#: Nominal distance (mm) from each level to the next, for an average adult: half a body + the
#: disc + half the next body (to S1: half of L5 + the L5/S1 disc, S1 being the endplate). Adult
#: lumbar bodies are about 25-30 mm high and lumbar discs about 9-12 mm, growing caudally;
#: T12 is about 24 mm with a 7-8 mm disc. The phantoms (l3loc.synth.anatomy) are built from
#: the same figures. A case's spine is this times one scale (body size), each step within
#: ``STEP_TOLERANCE``.
STEP_MM = {("T12", "L1"): 32.5, ("L1", "L2"): 35.5, ("L2", "L3"): 37.0, ("L3", "L4"): 38.5,
           ("L4", "L5"): 40.0, ("L5", "S1"): 26.0}
#: Relative spread of one step around ``scale * nominal`` (vertebrae of one spine differ).
STEP_TOLERANCE = 0.15
#: Body-size scales searched per case (0.8 = a small adult, 1.25 = a tall one; as ranges of
#: lumbar spine length in adults).
SCALES = tuple(np.round(np.arange(0.8, 1.2501, 0.05), 3))
#: Score paid for each level missing between two found ones when the gap is shorter than the
#: levels' span (a vertebra less), and for a last lumbar-to-S1 step that only fits with one more
#: vertebra. A candidate scores log(value / min_value) (2.7 for a clear band, value ~0.8 after
#: smoothing, against min_value 0.05): a clear band is worth more than an anomaly, so it is kept
#: and the anomaly reported rather than the band dropped.
ANOMALY_COST = 1.5
#: Score paid for each level skipped where the gap fits the whole span (the vertebra is there,
#: its channel did not fire): less than an anomaly, so a weak channel is not read as four lumbar
#: vertebrae. Under domain shift one channel often stays silent: on generation-1 phantoms (an
#: unseen generator) the generation-4 nets skipped L5 in 38 five-lumbar cases, which the decoder
#: used to call "4 lumbar vertebrae?", against 2 real four-lumbar cases.
MISSED_COST = 0.5
_NOMINAL_POS = dict(zip(LEVELS, np.concatenate([[0.0], np.cumsum([STEP_MM[(a, b)] for a, b in
                                                                   zip(LEVELS[:-1], LEVELS[1:])])])))


def nominal_distance_mm(upper: str, lower: str) -> float:
    """Nominal distance from level ``upper`` down to level ``lower`` (mm, scale 1)."""
    return float(_NOMINAL_POS[lower] - _NOMINAL_POS[upper])


@dataclass(frozen=True)
class LevelSequence:
    """The decoded levels of one case (processed rows).

    Attributes:
        levels: the level names, cranial first (the model's channels).
        rows: row of each level (float, NaN = not found).
        confidence: each level's smoothed profile value at its row (0 when not found).
        sequence_confidence: the weakest found level's confidence (0 when none is found).
        scale: the body-size scale the sequence fits best.
        anomalies: why the sequence is not a normal spine (empty when it is): a vertebra
            missing between found levels, a last step that needs one more vertebra.
        missed: levels not found between found ones that lie a normal span apart (the vertebra
            is there, its channel did not fire); not an anomaly.
    """

    levels: tuple
    rows: np.ndarray
    confidence: np.ndarray
    sequence_confidence: float
    scale: float
    anomalies: tuple = field(default_factory=tuple)
    missed: tuple = field(default_factory=tuple)

    def row(self, level: str) -> float:
        return float(self.rows[self.levels.index(level)]) if level in self.levels else math.nan

    def found(self) -> dict:
        """Level -> row of the found levels."""
        return {k: float(r) for k, r in zip(self.levels, self.rows) if math.isfinite(r)}


#: At most this many candidate rows per level (its highest peaks): a real map has one or two,
#: and the decoder's cost grows with the square of the count.
MAX_CANDIDATES = 8


def _candidates(profile: np.ndarray, min_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel rows and values of the highest ``MAX_CANDIDATES`` local maxima of a smoothed
    profile above ``min_value``, in row order."""
    from l3loc.decode import _peak_rows, _subpixel_peak

    peaks = _peak_rows(profile)
    peaks = peaks[profile[peaks] >= min_value]
    peaks = np.sort(peaks[np.argsort(-profile[peaks], kind="stable")[:MAX_CANDIDATES]])
    return (np.array([_subpixel_peak(profile, int(p)) for p in peaks], dtype=np.float64),
            profile[peaks].astype(np.float64))


def _transition(upper: str, lower: str, skipped: int, d_mm: np.ndarray, scale: float,
                last_lumbar_to_s1: bool) -> tuple[np.ndarray, np.ndarray]:
    """Score and code (0 normal step, 1 a vertebra missing, 2 an extra vertebra, 3 levels missed
    by the net at a normal spacing, -1 impossible) of going down ``d_mm`` from ``upper`` to
    ``lower`` with ``skipped`` levels between not found."""
    nominal = nominal_distance_mm(upper, lower) * scale
    tol = STEP_TOLERANCE
    score = np.full(d_mm.shape, -np.inf)
    code = np.full(d_mm.shape, -1)
    if skipped == 0:
        rel = (d_mm / nominal - 1.0) / tol
        ok = np.abs(rel) <= 1.0
        score[ok], code[ok] = -rel[ok] ** 2, 0
        if last_lumbar_to_s1:
            # six lumbar vertebrae: one more body and disc (about an L5 step) before the sacrum
            extra = nominal + STEP_MM[("L4", "L5")] * scale
            rel = (d_mm / extra - 1.0) / tol
            ok = (np.abs(rel) <= 1.0) & (code < 0)
            score[ok], code[ok] = -rel[ok] ** 2 - ANOMALY_COST, 2
    else:
        # levels not found between two found ones. At the whole span's distance (every step
        # within the tolerance, so the span too) they are there and were missed; shorter, down
        # to one step, a vertebra is missing (four lumbar vertebrae: L4 on the sacrum)
        rel = (d_mm / nominal - 1.0) / tol
        missed = np.abs(rel) <= 1.0
        score[missed], code[missed] = -rel[missed] ** 2 - MISSED_COST * skipped, 3
        shortest = min(STEP_MM.values()) * scale * (1 - tol)
        fewer = (d_mm >= shortest) & (rel < -1.0)
        score[fewer], code[fewer] = -ANOMALY_COST * skipped, 1
    return score, code


def decode_levels(profiles: np.ndarray, levels: Sequence[str], spacing_mm: float,
                  smooth_mm: float = 2.0, min_value: float = 0.05) -> LevelSequence:
    """Best anatomically consistent sequence of levels from one row profile per level.

    Each level's profile (raw row score in [0, 1], ``l3loc.decode.row_profile`` of its channel)
    is smoothed like the ``profile`` decoder; its local maxima above ``min_value`` are the
    candidate rows, scored ``log(value / min_value)`` (> 0: any candidate beats no level). Dynamic programming then picks at most one candidate per level so that the
    found levels come in order, each step a plausible distance (``STEP_MM`` times one scale per
    case, searched over ``SCALES``, within ``STEP_TOLERANCE``, preferring the nominal). Levels
    may be missing at either end (the field of view) for free; missing between found ones at
    the span's distance costs ``MISSED_COST`` each (``missed``); a vertebra missing between
    found ones, or a last step to S1 one vertebra too long, costs ``ANOMALY_COST`` and is
    reported (``anomalies``).

    Args:
        profiles: [len(levels), H] raw row profiles.
        levels: the channels' level names (``check_levels`` order).
        spacing_mm: processed row spacing.
        smooth_mm: Gaussian smoothing (as ``eval.smooth_mm``).
        min_value: smoothed profile values below this are no candidate.

    Returns:
        LevelSequence.
    """
    from scipy.ndimage import gaussian_filter1d

    levels = check_levels(levels)
    profiles = np.asarray(profiles, dtype=np.float64)
    if profiles.ndim != 2 or profiles.shape[0] != len(levels) or profiles.shape[1] == 0:
        raise ValueError(f"profiles must be [{len(levels)}, H], got {profiles.shape}")
    smooth = gaussian_filter1d(profiles, smooth_mm / spacing_mm, axis=1, mode="constant")
    cands = [_candidates(p, min_value) for p in smooth]
    emit = [np.log(v / min_value) for _, v in cands]
    n = len(levels)
    best_total, best_path, best_scale = 0.0, [], SCALES[len(SCALES) // 2]
    for scale in SCALES:
        # score[k][c]: best path whose lowest found level is k at candidate c; back[k][c] its parent
        score = [e.copy() for e in emit]
        back: list[list] = [[None] * len(e) for e in emit]
        codes: list[list] = [[0] * len(e) for e in emit]
        for j in range(n):
            rows_j = cands[j][0]
            for i in range(j):
                if not len(cands[i][0]) or not len(rows_j):
                    continue
                d = (rows_j[None, :] - cands[i][0][:, None]) * spacing_mm   # [ci, cj]
                t, code = _transition(levels[i], levels[j], j - i - 1, d, scale,
                                      levels[j] == "S1" and j == i + 1)
                total = score[i][:, None] + t + emit[j][None, :]
                arg = np.argmax(total, axis=0)
                val = total[arg, np.arange(len(rows_j))]
                better = val > score[j]
                for c in np.flatnonzero(better):
                    score[j][c], back[j][c], codes[j][c] = val[c], (i, int(arg[c])), int(code[arg[c], c])
        for k in range(n):
            for c in range(len(score[k])):
                if score[k][c] > best_total:
                    best_total, best_scale = float(score[k][c]), float(scale)
                    path, node = [], (k, c)
                    while node is not None:
                        path.append((node, codes[node[0]][node[1]]))
                        node = back[node[0]][node[1]]
                    best_path = path[::-1]
    rows = np.full(n, np.nan)
    conf = np.zeros(n)
    anomalies, missed = [], []
    for idx, ((k, c), code) in enumerate(best_path):
        rows[k], conf[k] = cands[k][0][c], cands[k][1][c]
        prev = best_path[idx - 1][0][0] if idx else -1   # the level found above (codes 1-3 have one)
        if code == 3:
            missed.extend(levels[prev + 1:k])
        elif code == 1:
            anomalies.append(f"{', '.join(levels[prev + 1:k])} not found between {levels[prev]} "
                             f"and {levels[k]} (4 lumbar vertebrae?)")
        elif code == 2:
            anomalies.append(f"{levels[k]} lies one vertebra too far below {levels[prev]} "
                             "(6 lumbar vertebrae?)")
    found = conf[np.isfinite(rows)]
    return LevelSequence(levels, rows, conf, float(found.min()) if found.size else 0.0,
                         best_scale, tuple(anomalies), tuple(missed))


def decide_l3(seq: LevelSequence, l3_channel_row: float, spacing_mm: float, threshold: float,
              max_disagreement_mm: float = MAX_DISAGREEMENT_MM, l3_channel_confidence: float = 0.0,
              views: Sequence[tuple[str, float, float]] = (),
              folds: Sequence[tuple[str, float, float]] = (), n_rows: int = 0
              ) -> tuple[str, float, str]:
    """L3 from the sequence: (status, row, reason).

    ``ambiguous`` (reason given) when the sequence is not a normal spine (``seq.anomalies``:
    transitional anatomy or levels out of order/spacing), or when the L3 channel's own peak
    ``l3_channel_row`` lies more than ``max_disagreement_mm`` (less than half a vertebra) from
    the sequence's L3, or when a view that claims L3 on its own (``views``: each view's name,
    L3 row and confidence from its own sequence; a claim = at or above ``threshold``) puts it
    more than ``max_disagreement_mm`` from the decision's L3, on another vertebra (the views'
    mean leans to whichever view is surer, and a phantom-trained net can be sure and wrong: on
    real CT the sagittal view has named L2 "L3" where the frontal view counted right; a view
    below the threshold claims nothing and has no say), or when a fold of the ensemble claims
    L3 on another vertebra the same way (``folds``: each fold's name, e.g. "fold 2", and the L3
    row and confidence of its own sequence; the mean of the folds' maps can peak a vertebra
    from where any fold puts L3, and folds fine-tuned apart have counted differently on real
    CT), or when L3 lies at the scan's end (``n_rows``: the profiles' length, 0 = unknown;
    :func:`l3loc.decode.scan_end`), or when the sequence has no L3 at or
    above ``threshold`` while the L3 channel's peak is (``l3_channel_confidence``: a confident
    L3 that no consistent sequence holds, e.g. L2 and L3 swapped; the row is then the
    channel's); ``not_found`` when neither has L3 at or above ``threshold``; else ``found``.
    The row is the sequence's L3 (NaN when it has none and the channel is not confident either).
    """
    row = seq.row("L3")
    conf = float(seq.confidence[seq.levels.index("L3")])
    if not math.isfinite(row) or conf < threshold:
        if math.isfinite(l3_channel_row) and l3_channel_confidence >= threshold:
            return "ambiguous", l3_channel_row, "; ".join([
                *seq.anomalies, f"the L3 channel's peak ({l3_channel_confidence:.2f}) fits no "
                "consistent sequence"])
        return "not_found", row, "" if math.isfinite(row) else "no L3 in a consistent sequence"
    end = scan_end(row, n_rows, spacing_mm) if n_rows else ""
    reasons = list(seq.anomalies) + ([scan_end_reason(end)] if end else [])
    if math.isfinite(l3_channel_row) and abs(l3_channel_row - row) * spacing_mm > max_disagreement_mm:
        reasons.append(f"the L3 channel peaks {offset_words(l3_channel_row - row, spacing_mm)} than "
                       "the sequence's L3")
    claims = [(f"the {name} view", r, c) for name, r, c in views] + list(folds)
    reasons += claim_reasons(other_vertebra_claims(claims, row, spacing_mm, threshold,
                                                   max_disagreement_mm), row, spacing_mm)
    return ("ambiguous" if reasons else "found"), row, "; ".join(reasons)


@dataclass(frozen=True)
class LevelDecision(Decision):
    """The decision of a model with one channel per level: L3 from the level sequence, the
    sequence itself, why the status is ``ambiguous`` (empty when it is not) and the L3
    channel's own decision (what a single-L3 decoder would have said, for comparison)."""

    sequence: LevelSequence | None = None
    channel: Decision | None = None
    views: tuple = ()


def level_decision(profiles: np.ndarray, levels: Sequence[str], channel: Decision,
                   spacing_mm: float, smooth_mm: float, threshold: float,
                   view_profiles: Mapping[str, np.ndarray] | None = None,
                   fold_profiles: Mapping[str, np.ndarray] | None = None) -> LevelDecision:
    """What prediction decides for a model with level channels: :func:`decode_levels` on the
    raw row profiles [len(levels), H] (the views' mean for two views, of the folds' mean maps),
    L3 from the sequence (:func:`decide_l3`, against the L3 channel's decision ``channel``, for
    two views the L3 row and confidence of each view's own sequence decoded on
    ``view_profiles`` (view name -> its raw level profiles), kept in ``views``, and for an
    ensemble each fold's own, decoded on ``fold_profiles`` (e.g. "fold 2" -> that fold's raw
    level profiles, the views' mean), kept in ``folds``). The L3 channel's own peak is the
    second candidate when the two disagree. Row and confidence are the channel's when the
    sequence has no L3."""
    seq = decode_levels(profiles, levels, spacing_mm, smooth_mm)

    def own_l3(named_profiles):
        own = ((name, decode_levels(p, levels, spacing_mm, smooth_mm))
               for name, p in (named_profiles or {}).items())
        return tuple((name, v.row("L3"), float(v.confidence[v.levels.index("L3")])) for name, v in own)

    views, folds = own_l3(view_profiles), own_l3(fold_profiles)
    n_rows = int(np.shape(profiles)[-1])
    status, row, reason = decide_l3(seq, channel.row, spacing_mm, threshold,
                                    l3_channel_confidence=channel.confidence, views=views,
                                    folds=folds, n_rows=n_rows)
    in_seq = math.isfinite(seq.row("L3"))
    second = (math.nan, 0.0)
    if in_seq and "L3 channel" in reason:
        second = (channel.row, channel.confidence)
    elif in_seq and status == "ambiguous":   # the surest view or fold that counts differently
        others = other_vertebra_claims(views + folds, row, spacing_mm, threshold)
        if others:
            second = surest(others)
    l3_row = seq.row("L3") if in_seq else channel.row
    return LevelDecision(status, l3_row,
                         float(seq.confidence[seq.levels.index("L3")]) if in_seq else channel.confidence,
                         *second, reason=reason, folds=folds, scan_end=scan_end(l3_row, n_rows, spacing_mm),
                         sequence=seq, channel=channel, views=views)
