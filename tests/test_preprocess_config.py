"""Tests for l3loc.preprocess_config: defaults, the dict round trip and refused values."""
import pytest

from l3loc.preprocess_config import PreprocessConfig


def test_config_from_dict_defaults_and_unknown_key():
    cfg = PreprocessConfig.from_dict({"hu_window": [100, 1500], "side_mask": False,
                                      "sagittal_band_mm": [-50, 40]})
    assert cfg.hu_window == (100.0, 1500.0) and cfg.side_mask is False and cfg.canvas == (512, 512)
    assert cfg.sagittal_band_mm == (-50.0, 40.0) and cfg.frontal_band_mm == (-77.0, 77.0)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="croppp"):
        PreprocessConfig.from_dict({"croppp": 1})
    with pytest.raises(ValueError, match="hu_window"):
        PreprocessConfig.from_dict({"hu_window": [1500, 100]})
    with pytest.raises(ValueError, match="sagittal_band_mm"):
        PreprocessConfig.from_dict({"sagittal_band_mm": [10, -10]})
    with pytest.raises(ValueError, match="side_mask"):
        PreprocessConfig.from_dict({"side_mask": [0.35, 0.65]})  # the old fraction form
