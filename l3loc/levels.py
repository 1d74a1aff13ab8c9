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
the sequence. Levels may be absent at the ends (field of view). An absent level in the middle,
or a step that only fits with one vertebra more, marks the case transitional.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

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
