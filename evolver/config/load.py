"""Read `evolver.toml` with tomllib, layer the environment and `--set` over it (layers.py) and
validate, turning every problem into one line; write configs back as TOML with tomlkit."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from evolver.config import layers
from evolver.config.schema import EvolverConfig
from evolver.errors import UsageError


class ConfigError(UsageError):
    """A config that cannot be used; the message is one line naming file, key, expected and got."""


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from, so relative paths resolve against its folder."""

    config: EvolverConfig
    path: Path | None
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # leaf key -> the layer that set it

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.config.state_dir)

    @property
    def hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: EvolverConfig) -> str:
    """sha256 of the canonical JSON form: equal configs hash equal whatever the TOML layout."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def describe_value(value: Any) -> str:
    """A value as an error line quotes it: JSON, or repr for text, cut at 60 characters."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
           "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}


def _expected(err: Any) -> str:
    """What the schema wanted, in a few words ("an integer >= 1", "'auto' or 'cpu')."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"{op} {ctx[key]}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "a table"
    if kind == "list_type":
        return "an array"
    if kind == "string_too_short":
        return f"a string of at least {ctx['min_length']} character(s)"
    msg = err["msg"]
    for prefix in ("Value error, ", "Input should be ", "Value should be ", "Input "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg[0].lower() + msg[1:]


def _key_path(loc: tuple[Any, ...]) -> str:
    # Union members show up in `loc` as tags such as "list[str]" or "literal['all-linear']": not keys.
    return ".".join(str(p) for p in loc if not isinstance(p, str) or p.isidentifier())


def format_validation_error(source: str, err: ValidationError) -> str:
    """The first validation error as one line naming the source and the key path (shared by config and policy files)."""
    errors = err.errors()
    first = errors[0]
    loc = _key_path(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: {loc}: unknown key (got {describe_value(first.get('input'))})"
    if kind == "missing":
        return f"{source}: {loc}: required key is missing"
    if not loc:  # a cross-field check: its message already reads "key: expected ..., got ..."
        return f"{source}: {_expected(first)}"
    same = [e for e in errors if _key_path(e["loc"]) == loc]  # the alternatives of a union
    wanted = " or ".join(dict.fromkeys(_expected(e) for e in same))
    more = len(errors) - len(same)
    tail = f" (+{more} more)" if more else ""
    return f"{source}: {loc}: expected {wanted}, got {describe_value(first.get('input'))}{tail}"


# Keys that existed and did nothing; a config that still sets one is told what happened to it.
REMOVED_KEYS = {
    "generation.trial.seed": "removed in 0.2: it was never read (sampling seeds derive from the root `seed`)",
    "generation.reflection.seed": "removed in 0.2: it was never read (sampling seeds derive from the root `seed`)",
    "evaluation.primary": "removed in 0.2: it was never read (the policy file's `primary` decides)",
    "training.sft.include_correct_t1": "removed in 0.2: add \"T1\" to training.sft.data",
    "reflection.pool_rotate": "removed in 0.2: every pool draws fresh questions at the model's frontier"
                              " (reflection.pool_returns, pool_frontier, mastery)",
}


def _removed(data: dict[str, Any], source: str) -> None:
    for dotted, why in REMOVED_KEYS.items():
        node: Any = data
        for part in dotted.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING:
            raise ConfigError(f"{source}: {dotted}: {why}; delete the key")


_MISSING = object()


def validate(data: dict[str, Any], source: str = "<config>") -> EvolverConfig:
    """Validate parsed TOML strictly: `true` is not an integer and "3" is not a number in a config file."""
    _removed(data, source)
    try:
        return EvolverConfig.model_validate(data, strict=True)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err)) from None


def load_config(path: str | Path | None, overrides: Sequence[str] = (),
                environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Defaults < the file at `path` (None: none) < `EVOLVER_*` variables of `environ` (default: the
    process's) < `overrides` ("key=value", the CLI's --set), validated; each problem names its layer."""
    p = None if path is None else Path(path).expanduser()
    data = {} if p is None else read_toml(p, "config")
    label = str(p) if p is not None else layers.DEFAULT
    config = validate(data, label)
    file_data = data
    try:
        env = layers.env_layer(os.environ if environ is None else environ)
        sets = layers.set_layer(overrides)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if env:
        data = layers.merge(data, layers.nest(env))
        config = validate(data, "environment (EVOLVER_*)")
    if sets:
        data = layers.merge(data, layers.nest(sets))
        config = validate(data, "--set")
    return LoadedConfig(config, p.resolve() if p is not None else None,
                        layers.sources(file_data, label, env, sets, config))


def read_toml(p: Path, what: str, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """A TOML file as a dict, or `error` with one line: missing file, bad TOML, not UTF-8."""
    if not p.is_file():
        raise error(f"{p}: {what} file not found")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise error(f"{p}: invalid TOML: {err}") from None
    except UnicodeDecodeError:
        raise error(f"{p}: not UTF-8 text") from None


def _descriptions(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        if info.description:
            out[key] = info.description
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(_descriptions(ann, key + "."))
    return out


def to_toml(config: EvolverConfig, annotated: bool = False, notes: Mapping[str, str] | None = None) -> str:
    """Render a config as TOML that loads again (tomlkit: `inf`, non-ASCII text and quotes as TOML has them).

    Tables in schema order, None values left out. `annotated` adds each key's description as a
    comment; `notes` (dotted key -> text, e.g. where each value came from) add their own.
    """
    import tomlkit

    described = _descriptions(EvolverConfig) if annotated else {}

    def note(key: str) -> str | None:
        parts = [t for t in (described.get(key), (notes or {}).get(key)) if t]
        return "; ".join(parts) or None

    def fill(container: Any, d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():  # scalars and arrays first: TOML puts a table's own keys before its sub-tables
            if v is None or isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict)):
                continue
            item = tomlkit.item(v)
            text = note(prefix + k)
            if text:
                item.comment(text)
            container.add(k, item)
        for k, v in d.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                aot = tomlkit.aot()
                for row in v:
                    aot.append(_table(row))
                container.add(k, aot)
        for k, v in d.items():
            if isinstance(v, dict):
                text = note(prefix + k)
                if text:
                    container.add(tomlkit.nl())
                    container.add(tomlkit.comment(text))
                table = tomlkit.table()
                fill(table, v, f"{prefix}{k}.")
                container.add(k, table)

    doc = tomlkit.document()
    fill(doc, config.model_dump(), "")
    return tomlkit.dumps(doc)


def _table(row: dict[str, Any]) -> Any:
    import tomlkit

    t = tomlkit.table()
    for k, v in row.items():
        if v is not None:
            t.add(k, v)
    return t
