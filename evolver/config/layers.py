"""The config's layers, lowest first: the schema's defaults < `evolver.toml` < the environment
(`EVOLVER_TRAINING__SFT__EPOCHS=2`) < `--set training.sft.epochs=2` (repeatable).

The file is validated strictly, as before (`"3"` is not a number in a TOML file). Environment
variables and `--set` values are text by nature, so each of their leaves is converted to its key's
type first (`"2"` -> 2.0 for a float key; a `--set` value is read as a TOML value when it is one, so
lists and `inf` work) and then the merged config is validated strictly as a whole. Every leaf key
remembers the layer it came from: `evolver config show --sources` prints it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from evolver.config.schema import EvolverConfig

ENV_PREFIX = "EVOLVER_"
ENV_DELIMITER = "__"
DEFAULT = "default"


def env_name(key: str) -> str:
    """`training.sft.epochs` -> `EVOLVER_TRAINING__SFT__EPOCHS`."""
    return ENV_PREFIX + ENV_DELIMITER.join(key.split(".")).upper()


def annotation(key: str, model: type[BaseModel] = EvolverConfig) -> Any:
    """The type of a dotted key, or KeyError naming the first part the schema does not have."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            raise KeyError(".".join(parts[: i + 1]))
        ann = field.annotation
        if i == len(parts) - 1:
            return ann
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            raise KeyError(".".join(parts[: i + 2]))
        model = ann
    raise KeyError(key)


def leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists (and lists of tables) are leaves."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(leaves(v, key + "."))
        else:
            out[key] = v
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, table by table (a leaf of `top` replaces the whole value below it)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def coerce(key: str, value: Any, source: str) -> Any:
    """A text value converted to its key's type (lax: "2" -> 2, "true" -> True); ValueError names the source."""
    try:
        ann = annotation(key)
    except KeyError as err:
        raise ValueError(f"{source}: {err.args[0]}: unknown key") from None
    try:
        return TypeAdapter(ann).validate_python(value)
    except ValidationError as err:
        msg = err.errors()[0]["msg"]
        raise ValueError(f"{source}: {key}: {msg[0].lower() + msg[1:]}, got {value!r}") from None


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """`EVOLVER_*` variables as dotted keys -> typed values (pydantic-settings reads and nests them)."""
    from pydantic_settings import EnvSettingsSource

    src = EnvSettingsSource(
        EvolverConfig,
        case_sensitive=False,
        env_prefix=ENV_PREFIX,  # type: ignore[arg-type]
        env_nested_delimiter=ENV_DELIMITER,
    )
    src.env_vars = {k.lower(): v for k, v in environ.items()}
    return {key: coerce(key, value, env_name(key)) for key, value in leaves(src()).items()}


def set_layer(assignments: Sequence[str]) -> dict[str, Any]:
    """`--set key=value` items as dotted keys -> typed values; the value is TOML when it parses as TOML."""
    out: dict[str, Any] = {}
    for item in assignments:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--set {item}: expected KEY=VALUE (e.g. training.dpo.beta=0.05)")
        try:
            value: Any = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out[key] = coerce(key, value, f"--set {key}")
    return out


def sources(
    file_data: Mapping[str, Any],
    file_label: str,
    env: Mapping[str, Any],
    sets: Mapping[str, Any],
    config: EvolverConfig,
) -> dict[str, str]:
    """Each leaf key of `config` -> the layer that set it: `--set`, `env NAME`, the file, or `default`."""
    in_file = leaves(file_data)
    out: dict[str, str] = {}
    for key in leaves(config.model_dump()):
        if key in sets:
            out[key] = "--set"
        elif key in env:
            out[key] = f"env {env_name(key)}"
        elif key in in_file:
            out[key] = file_label
        else:
            out[key] = DEFAULT
    return out
