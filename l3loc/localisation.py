"""Localisation of one scan: every view's model run on its preprocessed MIP, each view's profile
decoded and classified, the views fused, and for a model with level channels L3 taken from the
decoded level sequence. No files: :mod:`l3loc.predict` writes what this decides."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l3loc.case_geometry import CaseGeometry
from l3loc.decode import (Decision, classify, decode_profile, fuse_profiles, row_profile,
                          with_fold_claims)
from l3loc.inference import Localiser
from l3loc.io.geometry import CTVolume
from l3loc.levels import level_decision
from l3loc.placement import PLACING_WINDOW_MM, placed_decision
from l3loc.preprocess import preprocess_volume


@dataclass
class ViewOutput:
    """One view of one scan: native MIP, processed geometry, profile and decision."""

    geometry: CaseGeometry
    native_mip_hu: np.ndarray
    profile: np.ndarray   # decoded (smoothed) row profile [n_rows]
    decision: object      # l3loc.decode.Decision


def _classify(profile: np.ndarray, cfg: dict, threshold: float):
    ev = cfg["eval"]
    return classify(profile, float(cfg["preprocess"]["spacing_mm"]), threshold,
                    ev["ambiguity_ratio"], ev["min_separation_mm"],
                    subpixel=ev["decoder"] == "profile")


def model_levels(localiser: Localiser) -> tuple[str, ...]:
    """The levels the localiser's models locate (``label.levels``; ("L3",) for a single-L3 model)."""
    found = {tuple(vm.cfg["label"].get("levels", ["L3"])) for vm in localiser.views.values()}
    if len(found) != 1:
        raise ValueError(f"views trained with different label.levels cannot be fused: {found}")
    return found.pop()


def decide_maps(fold_maps: dict, localiser: Localiser) -> tuple[dict, Decision]:
    """From each view's confidence map(s) to the decision, as prediction makes it.

    Each view's L3 channel is decoded and classified; two views are fused (row-wise mean of the
    decoded profiles), unless one only places the other's rows (``localiser.placing``, the
    ``refined`` decision: :func:`l3loc.placement.placed_decision` on what the other decides).
    A model with one channel per level (``label.levels``) then decodes the level sequence on
    the views' mean raw row profiles and takes L3 from it (``l3loc.levels.level_decision``:
    ambiguous with a reason when the sequence is not a normal spine, the L3 channel disagrees,
    or a view or a fold whose own sequence claims L3 puts it on another vertebra). A single-L3
    ensemble is checked against its folds' own peaks the same way
    (``l3loc.decode.with_fold_claims``).

    Args:
        fold_maps: view -> the view model's ``fold_maps`` of its processed image (one map per
            net, [H, W] or [levels, H, W]; their mean is the ensemble's map, each one a fold's own
            claim when there are two or more); the views' processed rows are the same slices.
        localiser: whose view models made the maps.

    Returns:
        (view -> (decoded L3 profile, its Decision), the final Decision: fused when two views, a
        ``LevelDecision`` for a model with level channels).
    """
    levels = model_levels(localiser)
    placing = {v: np.mean(m, axis=0) for v, m in fold_maps.items() if v == localiser.placing}
    fold_maps = {v: m for v, m in fold_maps.items() if v != localiser.placing}
    maps = {v: np.mean(m, axis=0) for v, m in fold_maps.items()}
    per_view, decision, level_profiles = _l3_channel(maps, localiser, levels)
    cfg = localiser.views[next(iter(per_view))].cfg
    spacing_mm = float(cfg["preprocess"]["spacing_mm"])
    folds = {f"fold {k}": _l3_channel({v: m[i] for v, m in fold_maps.items()}, localiser, levels)
             for i, k in enumerate(_ensemble_folds(fold_maps, localiser))}
    if len(levels) > 1:
        decision = level_decision(np.mean(list(level_profiles.values()), axis=0), levels,
                                  decision, spacing_mm, cfg["eval"]["smooth_mm"], localiser.threshold,
                                  view_profiles=level_profiles if len(level_profiles) > 1 else None,
                                  fold_profiles={name: np.mean(list(f[2].values()), axis=0)
                                                 for name, f in folds.items()} or None)
    elif folds:
        decision = with_fold_claims(decision, [(name, f[1].row, f[1].confidence)
                                               for name, f in folds.items()],
                                    spacing_mm, localiser.threshold)
    if placing:   # the refined decision: the counting view's, its rows placed by this view
        own, _, placing_profiles = _l3_channel(placing, localiser, levels)
        if localiser.views[localiser.placing].spacing_mm != spacing_mm:
            raise ValueError("views trained at different pixel sizes: one cannot place the "
                             "other's rows")
        per_view.update(own)
        decision = placed_decision(decision, placing_profiles[localiser.placing], levels,
                                   spacing_mm, cfg["eval"]["smooth_mm"], PLACING_WINDOW_MM)
    return per_view, decision


def _l3_channel(maps: dict, localiser: Localiser, levels: tuple[str, ...]
                ) -> tuple[dict, Decision, dict]:
    """The L3 channel's decision from each view's map(s), fused over the views: (view -> (its
    decoded L3 profile, its Decision), the fused Decision, view -> its raw level profiles
    [levels, H])."""
    per_view, level_profiles = {}, {}
    for view, prob in maps.items():
        vm = localiser.views[view]
        stack = prob if prob.ndim == 3 else prob[None]
        dec = decode_profile(row_profile(stack[levels.index("L3")], vm.col_range),
                             vm.cfg["eval"]["decoder"], vm.spacing_mm, vm.cfg["eval"]["smooth_mm"])
        per_view[view] = (dec.profile, _classify(dec.profile, vm.cfg, localiser.threshold))
        level_profiles[view] = np.stack([row_profile(m, vm.col_range) for m in stack])
    views = list(per_view)
    if len(views) == 1:
        return per_view, per_view[views[0]][1], level_profiles
    if len({localiser.views[v].spacing_mm for v in views}) != 1:
        raise ValueError("views trained at different pixel sizes cannot be fused")
    fused = _classify(fuse_profiles([per_view[v][0] for v in views]),
                      localiser.views[views[0]].cfg, localiser.threshold)
    return per_view, fused, level_profiles


def _ensemble_folds(fold_maps: dict, localiser: Localiser) -> tuple[int, ...]:
    """The folds whose own claims are checked: every view's, when the maps come from an ensemble
    of two or more folds that the views share (else none)."""
    folds = {tuple(localiser.views[v].folds) for v in fold_maps}
    names = folds.pop() if len(folds) == 1 else ()
    if len(names) < 2 or any(len(m) != len(names) for m in fold_maps.values()):
        return ()
    return names


def localise(ct: CTVolume, localiser: Localiser, view_maps: dict | None = None
             ) -> tuple[dict, object, CaseGeometry]:
    """Run every view of ``localiser`` on ``ct`` and decide (:func:`decide_maps`).

    Args:
        view_maps: a dict kept across the localisers of one experiment on one scan (external
            evaluation scores the frontal, sagittal and fused models): a view's preprocessed
            image and map are computed once per view, folds and backend, not once per localiser.

    Returns:
        (view -> ViewOutput, the final Decision (fused when two views; a LevelDecision for a
        model with level channels), the geometry of the processed rows, shared by the views).
    """
    view_maps = {} if view_maps is None else view_maps
    cases, fold_maps = {}, {}
    for view, vm in localiser.views.items():
        key = (view, tuple(vm.folds), getattr(vm.maps, "backend", ""))
        if key not in view_maps:
            case = preprocess_volume(ct, view, cfg=vm.preprocess)
            view_maps[key] = (case, vm.maps.fold_maps(case.image))
        cases[view], fold_maps[view] = view_maps[key]
    per_view, decision = decide_maps(fold_maps, localiser)
    outputs = {v: ViewOutput(cases[v].geometry, cases[v].native_hu, *per_view[v]) for v in fold_maps}
    return outputs, decision, next(iter(outputs.values())).geometry
