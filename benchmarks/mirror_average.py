"""Test-time mirroring: does averaging each frontal map with that of the left-right mirrored image
steady the count on real scans?

    python benchmarks/mirror_average.py --model l3loc/shipped/ft26-frontal-1 \
        --data ../shared/data/real_val work/data/real_val_crops --out work/mirror_average.csv

For every scan of every ``--data`` folder (``labels.csv`` as ``l3loc eval --data`` reads it) the
model predicts twice: as shipped, and with each confidence map replaced by the mean of the map of
the image and the mirrored map of the mirrored image (the frontal band is symmetric about the
canvas centre, so the same columns are scored). Same decoder and threshold. One CSV row per scan
and variant: status, confidence, the best row's signed error, right level (as evaluation counts
it, :func:`l3loc.external_tables.right_level`); the totals are printed. Evaluation only: nothing in prediction
mirrors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.cli import script_main  # noqa: E402
from l3loc.inference import FoldMeanMaps, load_localiser  # noqa: E402
from l3loc.io.volume import read_volume  # noqa: E402
from l3loc.external_tables import right_level  # noqa: E402
from l3loc.localisation import localise  # noqa: E402
from l3loc.predict import localisation_record  # noqa: E402
from l3loc.scan_inputs import list_inputs  # noqa: E402


class MirrorAveraged(FoldMeanMaps):
    """A map model whose map is the mean of ``maps``'s on the image and, mirrored back, on the
    left-right mirrored image."""

    def __init__(self, maps):
        self.maps = maps
        self.backend = f"{getattr(maps, 'backend', '')}+mirror"

    def fold_maps(self, image: np.ndarray) -> list[np.ndarray]:
        mirrored = self.maps.fold_maps(np.ascontiguousarray(image[:, ::-1]))
        return [0.5 * (m + r[..., ::-1]) for m, r in zip(self.maps.fold_maps(image), mirrored)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a shipped-model, export or run folder (frontal)")
    ap.add_argument("--data", nargs="+", required=True, help="folders with labels.csv")
    ap.add_argument("--out", required=True, help="CSV")
    args = ap.parse_args(argv)

    plain = load_localiser(args.model, view="frontal")
    mirrored = load_localiser(args.model, view="frontal")
    mirrored.views["frontal"].maps = MirrorAveraged(mirrored.views["frontal"].maps)
    rows = []
    for folder in map(Path, args.data):
        for scan in list_inputs([folder / "labels.csv"]):
            truth = scan.truth
            negative = bool(truth["negative"])
            ct = read_volume(scan.path, series_uid=scan.series_uid)
            for variant, loc in (("as shipped", plain), ("mirror-averaged", mirrored)):
                outputs, decision, geom = localise(ct, loc)
                z = float(geom.z_mm(decision.row))
                # the truth in world z, from l3_z_mm or l3_slice, as evaluation reads it
                true_z = localisation_record(ct, loc, outputs, decision, geom, truth=truth)["true_z_mm"]
                rows.append(dict(set=folder.name, name=scan.name, variant=variant, negative=negative,
                                 status=decision.status, confidence=decision.confidence,
                                 error_mm=z - true_z, right_level=(not negative) and right_level(
                                     z, true_z, truth.get("l3_top_z_mm", np.nan), truth.get("l3_bottom_z_mm", np.nan))))
    table = pd.DataFrame(rows)
    with atomic_path(args.out, overwrite=False) as tmp:
        table.to_csv(tmp, index=False, float_format="%.3f")
    for variant, g in table.groupby("variant", sort=False):
        pos, neg = g[~g.negative], g[g.negative]
        found = pos.status == "found"
        print(f"{variant}: right / wrong found / ambiguous / not_found {int((found & pos.right_level).sum())} / "
              f"{int((found & ~pos.right_level).sum())} / {int((pos.status == 'ambiguous').sum())} / "
              f"{int((pos.status == 'not_found').sum())}, best row at L3 {int(pos.right_level.sum())} of {len(pos)}, "
              f"negatives not_found {int((neg.status == 'not_found').sum())} of {len(neg)}")
    return 0


if __name__ == "__main__":
    script_main(main)
