"""Experiment configs: YAML with ``_base_`` inheritance, ``--opts a.b=value`` overrides, strict keys.

Every key a YAML file or ``--opts`` may set is declared in :data:`DEFAULTS` below (one place, so a
typo such as ``train.lrr`` is an error naming the key and the file instead of a silently ignored
setting). Sections whose content depends on a chosen component (``model``, ``loss``: a ``type``
plus its keyword arguments) are open here and checked by the component registry when built.

Every value is typed and range-checked once, before any work (:func:`load_config`): a key's
type is its default's (an integer where the default is a float is fine and becomes a float; a
YAML string that reads as a number, such as ``--opts train.lr=1e-3``, becomes that number),
``_RULES`` adds ranges and choices, and the sections with their own validators (preprocess,
augment, label.levels) are checked by them. A bad value is one line naming the key and the file
(or ``--opts``).

Inheritance: ``_base_: other.yml`` (or a list, merged in order) is resolved relative to the file;
the file's own keys override its bases recursively (dicts merge, everything else replaces).

A config is given by path (``my/exp.yml``) or by the name of one shipped in the package
(``cpu_fast`` = ``l3loc/configs/cpu_fast.yml``), so the tools work from any working directory.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from l3loc.atomic import write_text
from l3loc.augment import AUGMENT_DEFAULTS, check_augment_config
from l3loc.decode import DECODERS
from l3loc.errors import InputError
from l3loc.levels import check_levels
from l3loc.mip import VIEWS as NET_VIEWS
from l3loc.preprocess_config import PreprocessConfig

#: Views a training or prediction may ask for: one net's view, or ``both`` (one net per view).
VIEWS = NET_VIEWS + ("both",)

#: The configs shipped inside the package, found by name (``--config cpu_fast``).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: The complete set of settable keys with their defaults. Comments give units.
DEFAULTS: dict = {
    "experiment": "default",          # run folder work/<experiment>/; tools set it (config name)
    "work_dir": "work",
    "data": {
        "source": "work/data/synth_demo/l3_dataset.npz",  # l3_dataset.npz (paper layout)
        "skip_bad": False,            # drop invalid cases (listed) instead of failing
        "cache_dir": "work/cache",    # preprocessed arrays, keyed by config + source hash
        "select_source": "",          # optional second dataset (another phantom style or
                                      # generation) on which the best epoch is chosen: see
                                      # l3loc/engine.py; "" = choose on the validation fold
    },
    # keys and defaults of these two sections live beside the code that uses them
    "preprocess": PreprocessConfig().to_dict(),
    "label": {
        "half_height_mm": 2.0,        # band target: rows within +-half_height of L3
        "sigma_start_mm": 0.0,        # optional Gaussian blur of the band along rows,
        "sigma_end_mm": 0.0,          # annealed from start to end over the epochs (0 = none)
        "levels": ["L3"],             # one band channel per level (l3loc.levels.LEVELS, e.g.
                                      # [T12, L1, L2, L3, L4, L5, S1]); must include L3
    },
    "model": {"type": "UNet", "base_channels": 16, "depth": 4, "upsample": "transpose"},
    "loss": {"type": "BCEWithLogits"},
    "augment": {k: list(v) if isinstance(v, tuple) else v for k, v in AUGMENT_DEFAULTS.items()},
    "train": {
        "view": "sagittal",
        "folds": 5,
        "seed": 0,
        "epochs": 10,
        "iters_per_epoch": 0,         # 0: one pass over the training cases
        "batch_size": 4,
        "lr": 1.0e-3,
        "weight_decay": 1.0e-4,
        "p_positive": 0.5,            # probability that a training window contains L3
        "sync_bn": "auto",            # SyncBatchNorm across data-parallel processes: auto = on
                                      # with several GPU processes; true needs GPUs
        "init_from": "",              # start from another model's weights (fine-tuning): a run,
                                      # an export or a shipped model whose <view>/fold_<K> holds
                                      # the fold trained; "" = from scratch
    },
    "eval": {
        "decoder": "profile",         # "profile" (smoothed, sub-pixel) or the card's "argmax"
        "smooth_mm": 2.0,             # Gaussian sigma of the profile decoder
        "threshold": 0.5,             # not_found below this peak confidence (evaluation
                                      # chooses one on the held-out folds; this is the fallback)
        "ambiguity_ratio": 0.8,       # ambiguous: a second peak this high relative to the first
        "min_separation_mm": 20.0,    # ... and at least this far away (about one vertebra)
    },
}

# Sections whose keys belong to a component chosen by ``type`` (checked by the registry).
_OPEN_SECTIONS = {"model", "loss"}

# Keys that did nothing and were removed; still dropped when read from an older run folder's
# config.yaml or a shipped model, so those keep loading.
_RETIRED = {"preprocess.stride"}

# Keys whose value may also be null (their default is not).
_NULLABLE = {"preprocess.sagittal_slab_mm"}


def _between(lo, hi, lo_open=False):
    def check(v):
        ok = (lo < v if lo_open else lo <= v) and (hi is None or v <= hi)
        return ok or f"must be in {'(' if lo_open else '['}{lo}, {'inf)' if hi is None else f'{hi}]'}"
    return check


def _one_of(choices):
    return lambda v: v in choices or f"must be one of {', '.join(map(str, choices))}"


# Ranges and choices beyond the type (augment, preprocess and label.levels have validators of
# their own, run by validate_config).
_RULES = {
    "train.view": _one_of(VIEWS),
    "train.folds": _between(2, None),
    "train.epochs": _between(1, None),
    "train.iters_per_epoch": _between(0, None),
    "train.batch_size": _between(1, None),
    "train.lr": _between(0, None, lo_open=True),
    "train.weight_decay": _between(0, None),
    "train.p_positive": _between(0, 1),
    "train.sync_bn": _one_of(("auto", True, False)),
    "label.half_height_mm": _between(0, None, lo_open=True),
    "label.sigma_start_mm": _between(0, None),
    "label.sigma_end_mm": _between(0, None),
    "eval.decoder": _one_of(DECODERS),
    "eval.smooth_mm": _between(0, None),
    "eval.threshold": _between(0, 1),
    "eval.ambiguity_ratio": _between(0, 1, lo_open=True),
    "eval.min_separation_mm": _between(0, None),
}


def _typed(dotted: str, value, default, source: str):
    """``value`` as the type of ``default`` (see the module docstring), or InputError."""
    def bad(expected):
        raise InputError(source, f"'{dotted}' must be {expected}, got {value!r}")

    if value is None and dotted in _NULLABLE:
        return None
    if dotted == "train.sync_bn":
        return value if value == "auto" or isinstance(value, bool) else bad("auto, true or false")
    if isinstance(default, bool):
        return value if isinstance(value, bool) else bad("true or false")
    if isinstance(default, (int, float)):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value) if isinstance(default, float) else int(value)
            except ValueError:
                bad("an integer" if isinstance(default, int) else "a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad("an integer" if isinstance(default, int) else "a number")
        if isinstance(default, int):
            return value if isinstance(value, int) else bad("an integer")
        return float(value)
    if isinstance(default, str):
        return value if isinstance(value, str) else bad("a string")
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            bad(f"a list like {list(default)}")
        if default and not isinstance(default[0], str):
            if len(value) != len(default):
                bad(f"a list of {len(default)} numbers like {list(default)}")
            return [_typed(dotted, v, d, source) for v, d in zip(value, default)]
        return [_typed(dotted, v, default[0], source) for v in value] if default else list(value)
    return value


def _check_keys(cfg: dict, schema: dict, source: str, prefix: str = "") -> None:
    """Keys known, values typed (converted in place) and in range, naming ``source`` if not."""
    for key, value in list(cfg.items()):
        dotted = f"{prefix}{key}"
        if dotted in _RETIRED:
            del cfg[key]
            continue
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise InputError(source, f"unknown key '{dotted}' (known here: {known})")
        if prefix == "" and key in _OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise InputError(source, f"'{dotted}' must be a mapping with a 'type'")
            continue
        if isinstance(schema[key], dict):
            if not isinstance(value, dict):
                raise InputError(source, f"'{dotted}' must be a mapping, got {value!r}")
            _check_keys(value, schema[key], source, dotted + ".")
            continue
        cfg[key] = value = _typed(dotted, value, schema[key], source)
        rule = _RULES.get(dotted)
        verdict = rule(value) if rule else True
        if verdict is not True:
            raise InputError(source, f"'{dotted}' {verdict}, got {value!r}")


def validate_config(cfg: dict, source) -> None:
    """The checks that need a whole section (preprocess, augment, label.levels).

    Raises:
        InputError: naming ``source`` and the problem.
    """
    try:
        PreprocessConfig.from_dict(cfg["preprocess"])
        check_augment_config(cfg["augment"])
        check_levels(cfg["label"]["levels"])
    except (TypeError, ValueError) as exc:
        raise InputError(source, str(exc)) from None


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _OPEN_SECTIONS:
            out[key] = _merge(out[key], value)
        elif isinstance(value, dict) and key in _OPEN_SECTIONS and value.get("type") in (
                None, out.get(key, {}).get("type")):
            # same component: merge its arguments; a new ``type`` replaces them all
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path, chain: tuple = ()) -> dict:
    """One YAML file with its ``_base_`` chain resolved; keys checked against DEFAULTS."""
    path = path.resolve()
    if path in chain:
        raise InputError(path, "circular _base_ inheritance")
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(path, f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict):
        raise InputError(path, "a config must be a YAML mapping")
    bases = raw.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    _check_keys(raw, DEFAULTS, str(path))
    merged: dict = {}
    for base in bases:
        merged = _merge(merged, _read_yaml(path.parent / base, chain + (path,)))
    return _merge(merged, raw)


def parse_opts(opts: list[str] | None) -> dict:
    """``["train.lr=0.01", "model.base_channels=8"]`` -> nested dict; values parsed as YAML."""
    out: dict = {}
    for opt in opts or []:
        if "=" not in opt:
            raise InputError("--opts", f"'{opt}' is not of the form key.sub=value")
        dotted, text = opt.split("=", 1)
        value = yaml.safe_load(text) if text != "" else ""
        node = out
        keys = dotted.strip().split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


def config_names() -> list[str]:
    """Names of the packaged configs (``_base_`` is a base, not an experiment)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yml") if not p.stem.startswith("_"))


def resolve_config(name_or_path) -> Path:
    """A config file from a path, or from a packaged config's name (``cpu_fast``, ``demo.yml``).

    An existing file wins, so a local ``cpu_fast.yml`` is not shadowed by the packaged one.

    Raises:
        InputError: neither an existing file nor a packaged config's name (the names are listed).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.parent == Path(".") and path.suffix in ("", ".yml", ".yaml"):
        packaged = CONFIG_DIR / f"{path.stem}.yml"
        if packaged.is_file():
            return packaged
    raise InputError(path, "config file not found (nor a packaged config of that name: "
                           f"{', '.join(config_names())})")


def load_config(path=None, opts: list[str] | None = None) -> dict:
    """The resolved config: DEFAULTS <- ``path`` (with its ``_base_`` chain) <- ``opts``.

    ``path`` is a file or a packaged config's name (:func:`resolve_config`).

    Raises:
        InputError: missing/invalid file, circular ``_base_``, an unknown key or a value of the
            wrong type or out of range (naming the key and the file, or ``--opts``).
    """
    cfg = copy.deepcopy(DEFAULTS)
    source = "--opts" if opts else "config"
    if path is not None:
        path = resolve_config(path)
        cfg = _merge(cfg, _read_yaml(path))
        source = f"{path} with --opts" if opts else str(path)
    override = parse_opts(opts)
    _check_keys(override, DEFAULTS, "--opts")
    cfg = _merge(cfg, override)
    validate_config(cfg, source)
    return cfg


def save_config(cfg: dict, path, overwrite: bool = True) -> None:
    """Write the resolved config as YAML (atomically) so a run folder documents itself."""
    write_text(path, yaml.safe_dump(cfg, sort_keys=False), overwrite=overwrite)


#: the sections nets must share to be combined, as maps (a fold ensemble) or as weights (an average)
NET_SECTIONS = ("preprocess", "model", "label")


def load_shared_config(paths, first: str, why: str) -> dict:
    """The resolved config of the nets whose ``config.yaml`` files are ``paths``: they must agree
    on :data:`NET_SECTIONS` (else InputError naming the file, "'model' differs from <first>'s;
    <why>")."""
    cfgs = [load_config(p) for p in paths]
    for path, cfg in zip(paths[1:], cfgs[1:]):
        for section in NET_SECTIONS:
            if cfg[section] != cfgs[0][section]:
                raise InputError(path, f"'{section}' differs from {first}'s; {why}")
    return cfgs[0]
