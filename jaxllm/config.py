"""Typed configs: frozen dataclasses that round-trip through JSON and reject unknown keys."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class ConfigError(ValueError):
    """A config value or key is invalid."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """A (nested) dataclass as plain JSON-serialisable dicts."""
    return dataclasses.asdict(config)


def _dataclass_type(annotation: Any) -> type[DataclassInstance] | None:
    """The dataclass inside ``annotation`` (``X``, ``X | None``, ``Optional[X]``), if any."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and dataclasses.is_dataclass(arg):
                return arg
    return None


def config_from_dict(cls: type[T], values: dict[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``values``, recursing into nested dataclass fields.

    Raises:
      ConfigError: for a key that ``cls`` has no field for (naming the valid keys), or for a
        value that ``cls.__post_init__`` rejects.
    """
    where = where or cls.__name__
    if not isinstance(values, dict):
        raise ConfigError(
            f"{where}: expected a mapping of config keys, got {type(values).__name__}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {unknown} for {where}; valid keys are {sorted(fields)}. "
            "Check the spelling, or remove the key."
        )
    kwargs = {}
    for name, value in values.items():
        sub = _dataclass_type(hints[name])
        if sub is not None and isinstance(value, dict):
            value = config_from_dict(sub, value, where=f"{where}.{name}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where}: {e}") from e


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` as indented JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n")


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config written by :func:`save_config`, rejecting unknown keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); fix or delete it") from e
    return config_from_dict(cls, values, where=f"{cls.__name__} in {path}")


def require(condition: bool, message: str, error: type[Exception] = ConfigError) -> None:
    """Raise ``error`` (by default :class:`ConfigError`, for config values) with ``message``
    unless ``condition`` holds. Checks of data or arguments pass the error named for what failed."""
    if not condition:
        raise error(message)


def require_transformer_shape(config: Any, sizes: tuple[str, ...]) -> None:
    """The checks every Transformer config shares: ``vocab_size`` an int >= 0 (0: "take it
    from the tokenizer"), each field named in ``sizes`` a positive int, and ``n_embd``
    divisible by ``n_head`` (unless the config sets its own ``head_size``); a
    :class:`ConfigError` naming the field otherwise."""
    name = type(config).__name__
    require(
        isinstance(config.vocab_size, int) and config.vocab_size >= 0,
        f"{name}.vocab_size must be an int >= 0, got {config.vocab_size!r}",
    )
    for field in sizes:
        value = getattr(config, field)
        require(
            isinstance(value, int) and value > 0,
            f"{name}.{field} must be a positive int, got {value!r}",
        )
    require(
        bool(getattr(config, "head_size", 0)) or config.n_embd % config.n_head == 0,
        f"{name}.n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})",
    )
