"""Building `Settings` from its sources, later ones winning: built-in defaults, the YAML file
(`--config PATH` or `DICOM_AGENT_CONFIG`), then one environment variable per top-level key,
`DICOM_AGENT_<KEY>` (nested and list values as a JSON or YAML string). Every problem becomes
one readable line of a `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from agent.config import Settings
from agent.errors import ConfigError

ENV_PREFIX = "DICOM_AGENT_"
CONFIG_PATH_ENV = "DICOM_AGENT_CONFIG"


def _is_structured(key: str) -> bool:
    annotation = Settings.model_fields[key].annotation
    if get_origin(annotation) in (list, dict):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping of keys to values"])
    return data


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Top-level values from `DICOM_AGENT_<KEY>` variables, and a line per bad variable."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for variable, text in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_PATH_ENV:
            continue
        key = variable.removeprefix(ENV_PREFIX).lower()
        if key not in Settings.model_fields:
            problems.append(f"{variable}: no configuration key '{key}'")
        elif not _is_structured(key):
            values[key] = text
        else:
            try:
                values[key] = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                problems.append(f"{variable}: not valid JSON or YAML: {exc}")
    return values, problems


def _format_location(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if part == "[key]":
            continue
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def _error_lines(exc: ValidationError, from_env: set[str]) -> list[str]:
    lines = []
    for error in exc.errors():
        if error["type"] == "default_factory_not_called":
            continue
        lines.append(_error_line(error, from_env))
    return lines


def _error_line(error: ErrorDetails, from_env: set[str]) -> str:
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
    location = _format_location(error["loc"])
    top = error["loc"][0] if error["loc"] else None
    suffix = f" (from {ENV_PREFIX}{str(top).upper()})" if top in from_env else ""
    return f"{location}: {message}{suffix}" if location else f"{message}{suffix}"


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Build the settings from `path` (else `DICOM_AGENT_CONFIG`, else none) and `environ`.

    Raises ConfigError with one readable line per problem.
    """
    if path is None and environ.get(CONFIG_PATH_ENV):
        path = Path(environ[CONFIG_PATH_ENV])
    source = str(path) if path is not None else "defaults"
    data = _read_file(path) if path is not None else {}
    overrides, problems = _env_overrides(environ)
    if problems:
        raise ConfigError(f"{source} + environment", problems)
    if overrides:
        source = f"{source} + environment"
    try:
        return Settings.model_validate({**data, **overrides})
    except ValidationError as exc:
        raise ConfigError(source, _error_lines(exc, set(overrides))) from exc
