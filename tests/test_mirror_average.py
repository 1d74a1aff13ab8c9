"""benchmarks/mirror_average.py: each map averaged with the mirrored map of the mirrored image."""
import importlib.util
from pathlib import Path

import numpy as np

from l3loc.inference import FunctionMaps

_spec = importlib.util.spec_from_file_location(
    "mirror_average", Path(__file__).resolve().parents[1] / "benchmarks" / "mirror_average.py")
mirror_average = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mirror_average)


def test_mirror_averaged_map_is_the_mean_of_the_map_and_the_mirrored_map_of_the_mirrored_image():
    image = np.zeros((6, 5), np.float32)
    image[2, 0] = 1.0                                   # a mark at the left edge only
    model = mirror_average.MirrorAveraged(FunctionMaps(lambda im: im * 0.8))
    out = model.confidence_map(image)
    # the mark's map is 0.8 at column 0; mirrored image -> map at column 4 -> mirrored back to 0
    assert out[2, 0] == np.float32(0.8) and out.sum() == np.float32(0.8)
    # a model that only answers on the left half: half the answer on each side after averaging
    left = mirror_average.MirrorAveraged(FunctionMaps(lambda im: np.where(np.arange(5) < 2, im, 0).astype(np.float32)))
    bright = np.ones((6, 5), np.float32)
    out = left.confidence_map(bright)
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0.0, 0.5, 0.5])
    assert model.backend.endswith("+mirror")
