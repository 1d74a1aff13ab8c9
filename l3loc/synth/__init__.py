"""Synthetic CT phantoms with exact L3 ground truth (the embedded default dataset).

config (config.py: styles, rates, presets) -> plan (anatomy.py, spine.py; cheap, no voxels) -> volume
(phantom.py: skeleton.py, scene.py, acquisition.py, painter.py) -> MIPs, npz, NIfTI, DICOM,
annotation CSV, preview (writers.py). See anatomy.py for how L3 is defined in
transitional anatomy.
"""
from l3loc.synth.anatomy import CasePlan, plan_case
from l3loc.synth.config import FOV_TYPES, PRESET_CASES, PRESETS, SynthConfig
from l3loc.synth.phantom import render_volume
from l3loc.synth.writers import case_mips, generate_dataset

__all__ = ["FOV_TYPES", "PRESETS", "PRESET_CASES", "CasePlan", "SynthConfig", "plan_case", "render_volume",
           "case_mips", "generate_dataset"]
