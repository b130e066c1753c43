"""Read `evolver.toml` with tomllib and validate it, turning every problem into one line."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from evolver.config.schema import EvolverConfig
from evolver.errors import UsageError


class ConfigError(UsageError):
    """A config that cannot be used; the message is one line naming file, key, expected and got."""


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from, so relative paths resolve against its folder."""

    config: EvolverConfig
    path: Path | None

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


def load_config(path: str | Path | None) -> LoadedConfig:
    """Load and validate a config file; `None` gives the built-in defaults."""
    if path is None:
        return LoadedConfig(EvolverConfig(), None)
    p = Path(path).expanduser()
    return LoadedConfig(validate(read_toml(p, "config"), str(p)), p.resolve())


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
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if field.description:
            out[key] = field.description
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(_descriptions(ann, key + "."))
    return out


def _toml_value(v: Any) -> str:
    # JSON scalars and arrays are TOML too, provided non-ASCII text stays literal: TOML rejects the
    # surrogate-pair escapes json.dumps would write for characters outside the BMP.
    return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(config: EvolverConfig, annotated: bool = False) -> str:
    """Render a config as TOML (tables in schema order, None values left out); `annotated` adds each key's help."""
    data = config.model_dump(mode="json")
    lines: list[str] = []
    notes = _descriptions(EvolverConfig) if annotated else {}

    def emit(table: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None
                   and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        if table:
            if table in notes:
                lines.append(f"\n# {notes[table]}")
            lines.append(f"[{table}]" if table in notes else f"\n[{table}]")
        for k, v in scalars.items():
            note = notes.get(f"{table}.{k}" if table else k)
            lines.append(f"{k} = {_toml_value(v)}" + (f"  # {note}" if note else ""))
        for k, v in d.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"\n[[{table + '.' if table else ''}{k}]]")
                    for ik, iv in item.items():
                        lines.append(f"{ik} = {_toml_value(iv)}")
        for k, v in d.items():
            if isinstance(v, dict):
                emit(f"{table}.{k}" if table else k, v)

    emit("", data)
    return "\n".join(lines).lstrip() + "\n"
