"""Configuration: parse and validate `evolver.toml`. Imports nothing else of evolver."""

from evolver.config.load import ConfigError, LoadedConfig, config_hash, load_config, to_toml, validate
from evolver.config.schema import EvolverConfig

__all__ = ["ConfigError", "EvolverConfig", "LoadedConfig", "config_hash", "load_config", "to_toml", "validate"]
