"""The pipeline's configuration: typed sections built from each stage's config class.

``pipeline.toml`` has a ``[run]`` and a ``[ray]`` section and one section per stage (named after the
stage). Unknown keys, wrong types and cross-field problems are :class:`ConfigError` with the file,
the key, the value received and what to change.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from stages.lib.errors import ConfigError

__all__ = [
    "RunConfig",
    "RayConfig",
    "ExportConfig",
    "pipeline_config_cls",
    "load_config",
    "parse_overrides",
    "config_to_toml",
    "section_for_fingerprint",
]

# Fields that change where or how fast work runs, never what it produces: they do not enter fingerprints
# (at a section's top level, and inside its ``engine`` table: stages.vlm.engine_config.ENGINE_RESOURCE_FIELDS).
RESOURCE_FIELDS = frozenset({"num_actors", "num_gpus", "num_cpus", "batch_size", "gpu_memory_utilization"})


class RunConfig(BaseModel):
    """Where a run lives and how the runner behaves."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field("demo", description="Run name: the run folder is `<runs_dir>/<name>` unless --run-dir is given.")
    runs_dir: Path = Field(Path("runs"), description="Folder that holds run folders (relative to the working directory).")
    max_retries: int = Field(2, ge=0, le=10, description="How many times a failed shard is retried before the stage fails.")
    progress: bool = Field(True, description="Show a progress bar over shards and rows.")
    export: bool = Field(True, description="After the last stage, write the Hub-ready dataset folder to `<run>/export/`.")
    report: bool = Field(True, description="After the last stage, write `report/stats.json` and the plots.")
    rounds: int = Field(
        1,
        ge=1,
        le=100,
        description="On-policy rounds: round r samples from round r-1's trained model and trains it further. Above 1, "
        "each round is a run folder `<run>/round-NN/` of its own (resumable per round) and `report/rounds.json` "
        "holds the eval table of every round.",
    )
    share_engines: bool = Field(
        True,
        description="Model stages that run the same model with the same engine settings (sample, perturb, reference "
        "by default) share one loaded model and, on Ray, one pool of actors for the whole run instead of loading it "
        "once per stage. Per-stage resume and fingerprints are unchanged; false loads it per stage.",
    )
    viewer: bool = Field(
        True, description="After the last stage, write the static HTML viewer to `<run>/viewer/` (open `index.html`)."
    )
    preset: str | None = Field(
        None,
        description="A published recipe applied under this file and --set (perpo-grounding, perpo-ocr, povid, mdpo, "
        "mipo, leanpo, dpo; see Presets below). `run --preset NAME` sets it too.",
    )


class RayConfig(BaseModel):
    """How the runner reaches Ray."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    address: str | None = Field(
        None,
        description='Ray address: unset starts a new local instance, even beside a cluster started with `ray start` '
        '(inside `ray job submit` it joins the job\'s cluster, from RAY_ADDRESS); "auto" joins the cluster this machine belongs to.'
    )
    num_cpus: int | None = Field(2, ge=1, description="CPUs of the local Ray instance (ignored when joining a cluster).")
    num_gpus: int | None = Field(None, ge=0, description="GPUs of the local Ray instance (unset: Ray detects them).")
    cpus_per_task: float = Field(1.0, gt=0, description="CPUs Ray reserves for each CPU-stage shard task.")
    object_store_memory: int | None = Field(
        None, ge=78_643_200, description="Bytes for the local object store (unset: Ray's default)."
    )
    resources: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Custom Ray resources each task or actor of a stage asks for, by stage: "
        '`{ sample = { accel = 1 } }` runs the sample actors only on nodes started with `--resources \'{"accel": N}\'`.',
    )
    actor_start_timeout_s: float = Field(
        600.0, gt=0, description="How long a model stage waits for an actor to be placed and load its model before it fails."
    )


class ExportConfig(BaseModel):
    """The Hub-ready dataset folder and its upload."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    license: str = Field("cc-by-4.0", description="License id written into the dataset card's YAML.")
    pretty_name: str | None = Field(None, description="Dataset card title (default: the run name).")
    repo_id: str | None = Field(None, description="Default Hub dataset repo (ORG/NAME) for `publish`.")
    private: bool = Field(False, description="Create the Hub repo as private on `publish`.")


@lru_cache(maxsize=1)
def pipeline_config_cls() -> type[BaseModel]:
    """Return the ``PipelineConfig`` model: ``run``, ``ray`` and one field per registered stage."""
    from stages import registry

    fields: dict[str, Any] = {
        "run": (RunConfig, Field(default_factory=RunConfig, description=RunConfig.__doc__)),
        "ray": (RayConfig, Field(default_factory=RayConfig, description=RayConfig.__doc__)),
    }
    for spec in registry.stage_specs():
        fields[spec.name] = (spec.config_cls, Field(default_factory=spec.config_cls, description=spec.description))
    fields["export"] = (ExportConfig, Field(default_factory=ExportConfig, description=ExportConfig.__doc__))
    return create_model(
        "PipelineConfig",
        __config__=ConfigDict(extra="forbid", validate_assignment=True),
        **fields,
    )


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["sample.n=8", "ray.address=auto"]`` into a nested dict; values are parsed as TOML, else kept as text."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or "." not in key:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set sample.n=8")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set twice, once as a value")
        node[leaf] = value
    return nested


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(error: dict[str, Any], source: str) -> str:
    loc = [str(p) for p in error["loc"]]
    where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]" if loc else "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{source}: {where}: unknown key; check the spelling against `perpo-pipeline config-reference`"
    got = error.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    hint = ""
    if error["type"] == "string_type" and isinstance(got, (int, float, bool)) and all(isinstance(p, str) for p in error["loc"]):
        hint = f"; quote text: --set '{'.'.join(loc)}=\"{got}\"' or {loc[-1]} = \"{got}\" in the file"
    return f"{source}: {where}: {error['msg']}{got_text}{hint}"


def _resolve_shared_models(cfg: BaseModel) -> None:
    """Sections whose ``engine.model`` (train: ``model``) is empty use the sample stage's model (the policy is
    its own reference)."""
    sample_model = getattr(getattr(getattr(cfg, "sample", None), "engine", None), "model", None)
    if not sample_model:
        return
    for name in type(cfg).model_fields:
        section = getattr(cfg, name)
        if name == "sample":
            continue
        engine = getattr(section, "engine", None)
        if engine is not None and hasattr(engine, "model") and engine.model == "":
            engine.model = sample_model
        elif hasattr(section, "model") and isinstance(section.model, str) and section.model == "":
            section.model = sample_model


def link_reference_to_sample(cfg: BaseModel) -> None:
    """Record in ``[reference]`` how the policy candidates are sampled (``sampled_with``), which tells the
    reference stage whether the sampler's log-probs are its own. Called at load and for every round."""
    sample, reference = getattr(cfg, "sample", None), getattr(cfg, "reference", None)
    if sample is None or reference is None or not hasattr(reference, "sampled_with"):
        return
    from stages.reference.config import SampledWith
    from stages.vlm.shared import engine_identity

    reference.sampled_with = SampledWith(
        same_engine=engine_identity(sample.engine) == engine_identity(reference.engine),
        temperature=sample.temperature,
        top_p=sample.top_p,
    )


def _resolve_family(cfg: BaseModel) -> None:
    """``[sample] family = ""`` becomes the policy's family (from its config.json ``model_type``),
    and every other section's empty ``family`` the same, so fingerprints and stages see one name."""
    sample = getattr(cfg, "sample", None)
    if sample is None or not hasattr(sample, "family"):
        return
    from stages.lib.families import resolve_family

    sample.family = resolve_family(sample.engine.model, sample.family)
    for name in type(cfg).model_fields:
        section = getattr(cfg, name)
        if name != "sample" and hasattr(section, "family") and section.family == "":
            section.family = sample.family
        nested = getattr(section, "score", None)  # [eval] score: the held-out tasks are scored as the data was
        if hasattr(nested, "family") and nested.family == "":
            nested.family = sample.family


def load_config(path: Path | None, overrides: list[str] | None = None) -> BaseModel:
    """Read ``path`` (or only defaults when None), apply ``section.key=value`` overrides, validate.

    Returns a ``PipelineConfig``. Raises :class:`ConfigError` (one line per problem, naming the file
    and key) for a missing file, bad TOML, unknown sections or keys, and invalid values.
    """
    data: dict[str, Any] = {}
    source = str(path) if path else "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found; pass --config PATH (the repo ships pipeline.toml)")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    sets = parse_overrides(overrides) if overrides else {}
    preset = (sets.get("run") or {}).get("preset") or (data.get("run") or {}).get("preset")
    if isinstance(preset, str) and preset:
        from pipeline.presets import preset_values

        data = _merge(preset_values(preset), data)  # defaults < preset < file < --set
        source = f"{source} (preset {preset})"
    if overrides:
        data = _merge(data, sets)
        source = f"{source} (with --set)"
    cls = pipeline_config_cls()
    try:
        cfg = cls.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, source) for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    _resolve_shared_models(cfg)
    _resolve_family(cfg)
    link_reference_to_sample(cfg)
    _check_stage_resources(cfg, source)
    _resolve_eval(cfg)
    return cfg


def _check_stage_resources(cfg: BaseModel, source: str) -> None:
    """``[ray] resources`` is keyed by stage name: an unknown one is a typo that would route nothing."""
    from stages import registry

    known = registry.stage_names()
    for name in cfg.ray.resources:
        if name not in known:
            raise ConfigError(f"{source}: [ray] resources.{name}: unknown stage; available: {', '.join(known)}")


def _resolve_eval(cfg: BaseModel) -> None:
    """``[eval]`` takes ``[score]``'s rewards unless it sets its own (see :func:`stages.eval.config.resolve_eval_section`)."""
    if hasattr(cfg, "eval"):
        from stages.eval.config import resolve_eval_section

        resolve_eval_section(cfg.eval, cfg.score, cfg.ingest, cfg.train)


def section_for_fingerprint(section: BaseModel) -> dict[str, Any]:
    """Return a stage section as JSON-able data minus the fields that only affect resources, its ``engine`` table
    flattened into it; its ``model``
    (a folder or Hub id) is replaced by what identifies the weights (:func:`stages.lib.models.identity.model_fingerprint`);
    a field of ``fingerprint_before`` that holds its default is recorded as it was before it existed
    (:attr:`stages.base.StageConfig.fingerprint_before`)."""
    data = {k: v for k, v in section.model_dump(mode="json").items() if k not in RESOURCE_FIELDS}
    engine = data.pop("engine", None)
    if isinstance(engine, dict):  # flattened, as the fields sat before [<stage>.engine]: same fingerprints
        from stages.vlm.engine_config import ENGINE_RESOURCE_FIELDS

        data.update({k: v for k, v in engine.items() if k not in ENGINE_RESOURCE_FIELDS})
    from stages.base import OMITTED

    for name, before in getattr(type(section), "fingerprint_before", {}).items():
        if getattr(section, name) == type(section).model_fields[name].get_default(call_default_factory=True):
            if before == OMITTED:
                data.pop(name, None)
            else:
                data[name] = before
    if isinstance(data.get("model"), str) and data["model"]:
        from stages.lib.models.identity import model_fingerprint

        data["model"] = model_fingerprint(data["model"])
    return data


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON escapes are valid TOML escapes; DEL, which JSON leaves raw, is escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def config_to_toml(cfg: BaseModel) -> str:
    """Return the resolved config as TOML text (the run folder's ``config.toml`` snapshot); None values are omitted."""
    lines: list[str] = []
    for section_name in type(cfg).model_fields:
        section = getattr(cfg, section_name).model_dump(mode="json", exclude_none=True)
        lines.append(f"[{section_name}]")
        scalars = {k: v for k, v in section.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in section.items() if isinstance(v, dict)}
        for key, value in scalars.items():
            lines.append(f"{key} = {_toml_value(value)}")
        for key, value in tables.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
