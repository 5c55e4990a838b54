"""The agent's settings: one typed object, built once in the entry point and passed down.

`agent.config_loading.load_settings` builds it from defaults, the YAML file and the
environment. Relative paths are relative to the working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydicom.datadict import tag_for_keyword

DEFAULT_SPOOL_DIR = Path("var/spool")
AE_TITLE_MAX = 16
MAX_DEFAULT_RECEIVERS = 8
"""Each receiver is a Python process (about 90 MB) with its own database connection, so on a
large host the default stops here; set `dimse_processes` to go beyond."""


def _check_ae_title(value: str) -> str:
    """DICOM AE title: 1-16 characters of printable ASCII, no backslash; padding is dropped."""
    title = value.strip(" ")
    if not title:
        raise PydanticCustomError("ae_title", "an AE title must not be empty or all spaces")
    if len(title) > AE_TITLE_MAX:
        raise PydanticCustomError("ae_title", "an AE title has at most 16 characters")
    if any(not " " <= char <= "~" or char == "\\" for char in title):
        raise PydanticCustomError(
            "ae_title", "an AE title holds printable ASCII characters only, and no backslash"
        )
    return title


def _check_keyword(value: str) -> str:
    if tag_for_keyword(value) is None:
        raise PydanticCustomError("keyword", "'{value}' is not a DICOM keyword", {"value": value})
    return value


AETitle = Annotated[str, AfterValidator(_check_ae_title)]
Port = Annotated[int, Field(gt=0, lt=65536)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]
Keyword = Annotated[str, AfterValidator(_check_keyword)]


def _mask_url_password(url: str | None) -> str | None:
    """`scheme://user:***@host/...` for printing; the URL itself is kept intact."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _files_when_enabled(self) -> Self:
        if self.enabled and (self.cert_file is None or self.key_file is None):
            raise PydanticCustomError("tls", "cert_file and key_file are required when enabled")
        return self


class DestinationTls(_Section):
    """TLS to a DIMSE destination: its certificate is checked against `ca_file` (the system's
    CAs without one) and must name `host`; `cert_file` and `key_file` when it wants ours."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _key_with_certificate(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise PydanticCustomError("tls", "cert_file and key_file go together")
        return self


class DimseDestination(_Section):
    kind: Literal["dimse"]
    name: Name
    ae_title: AETitle
    host: str
    port: Port
    tls: DestinationTls | None = None


class FolderDestination(_Section):
    kind: Literal["folder"]
    name: Name
    path: Path


class DicomWebDestination(_Section):
    kind: Literal["dicomweb"]
    name: Name
    url: HttpUrl
    auth_token: SecretStr | None = None

    def bearer_token(self) -> str | None:
        """The token to send as `Authorization: Bearer`, unmasked; None without one."""
        return self.auth_token.get_secret_value() if self.auth_token else None


Destination = Annotated[
    DimseDestination | FolderDestination | DicomWebDestination, Field(discriminator="kind")
]


class Matcher(_Section):
    """How one tag must look: written as a plain string (exact match) or as a mapping with
    exactly one of `regex`, `range: [min, max]` (numeric, inclusive) or `in: [...]`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, coerce_numbers_to_str=True, populate_by_name=True
    )

    equals: str | None = None
    regex: str | None = None
    range: tuple[float, float] | None = None
    in_: tuple[str, ...] | None = Field(default=None, alias="in", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _plain_value_is_exact(cls, data: Any) -> Any:
        return {"equals": data} if isinstance(data, str | int | float) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [v for v in (self.equals, self.regex, self.range, self.in_) if v is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "matcher", "give a plain string or exactly one of regex, range, in"
            )
        if self.range is not None and self.range[0] > self.range[1]:
            raise PydanticCustomError("matcher", "range must be [min, max] with min <= max")
        return self

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise PydanticCustomError(
                    "regex", "not a valid regex: {e}", {"e": str(exc)}
                ) from exc
        return value

    @model_serializer
    def _as_written(self) -> str | dict[str, Any]:
        if self.equals is not None:
            return self.equals
        if self.regex is not None:
            return {"regex": self.regex}
        if self.range is not None:
            return {"range": list(self.range)}
        return {"in": list(self.in_ or ())}


class Rule(_Section):
    """Series whose tags all match go to `pipeline`; results go to `destinations`.
    An empty `match` matches every series. When several rules match, the higher `priority`
    wins; its jobs then run before lower-priority ones waiting on Redis (10 levels: 9 and
    above, ..., 0 and below); the embedded broker serves first come, first served."""

    name: Name
    match: dict[Keyword, Matcher]
    pipeline: str = Field(min_length=1)
    destinations: list[Name] = Field(min_length=1)
    priority: int = 0


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    tokens: list[SecretStr] = Field(default_factory=list)


def _default_dimse_processes() -> int:
    """One receiving process per CPU this process may run on, at most `MAX_DEFAULT_RECEIVERS`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, MAX_DEFAULT_RECEIVERS))


def _default_database_url(data: dict[str, Any]) -> str:
    return f"sqlite:///{data['spool_dir'] / 'agent.db'}"


def _default_broker_url(data: dict[str, Any]) -> str:
    return f"sqla+sqlite:///{data['spool_dir'] / 'broker.db'}"


def _default_destinations(data: dict[str, Any]) -> list[Destination]:
    return [
        FolderDestination(kind="folder", name="local", path=data["spool_dir"].parent / "results")
    ]


def _default_rules() -> list[Rule]:
    ct = Matcher(equals="CT")
    return [
        Rule(
            name="ct-chest",
            match={"Modality": ct},
            pipeline="lung-nodule-reference",
            destinations=["local"],
        )
    ]


def _unique_names(items: list[Any], what: str) -> None:
    names = [item.name for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PydanticCustomError(
            "duplicate",
            "{what} names must be unique: {names}",
            {"what": what, "names": ", ".join(duplicates)},
        )


class Settings(_Section):
    ae_title: AETitle = "AI_AGENT"
    host: str = "127.0.0.1"
    port: Port = 11112
    dimse_processes: PositiveInt = Field(default_factory=_default_dimse_processes)
    allowed_peers: list[AETitle] = Field(default_factory=list)
    tls: TlsSettings = TlsSettings()
    spool_dir: Path = DEFAULT_SPOOL_DIR
    database_url: str = Field(default_factory=_default_database_url, min_length=1, repr=False)
    broker_url: str = Field(default_factory=_default_broker_url, min_length=1, repr=False)
    result_backend: str | None = Field(default=None, repr=False)
    series_stable_seconds: PositiveFloat = 10.0
    reconcile_interval_seconds: PositiveFloat = 15.0
    job_lease_seconds: PositiveInt = 600
    export_max_attempts: PositiveInt = 5
    export_backoff_seconds: PositiveFloat = 2.0
    destinations: list[Destination] = Field(default_factory=_default_destinations)
    rules: list[Rule] = Field(default_factory=_default_rules)
    models_dir: Path | None = None
    api: ApiSettings = ApiSettings()
    log_json: bool = False
    log_phi: bool = False

    @field_validator("destinations")
    @classmethod
    def _unique_destinations(cls, value: list[Destination]) -> list[Destination]:
        _unique_names(value, "destination")
        return value

    @field_validator("rules")
    @classmethod
    def _known_destinations(cls, value: list[Rule], info: ValidationInfo) -> list[Rule]:
        _unique_names(value, "rule")
        if "destinations" not in info.data:
            return value
        known = {destination.name for destination in info.data["destinations"]}
        for rule in value:
            unknown = [name for name in rule.destinations if name not in known]
            if unknown:
                raise PydanticCustomError(
                    "unknown_destination",
                    "rule '{rule}' sends to unknown destination(s) {unknown}; known: {known}",
                    {
                        "rule": rule.name,
                        "unknown": ", ".join(unknown),
                        "known": ", ".join(sorted(known)),
                    },
                )
        return value

    # URLs may carry passwords: masked when printed, left out of repr().
    @field_serializer("database_url", "broker_url", "result_backend")
    def _masked(self, value: str | None) -> str | None:
        return _mask_url_password(value)

    def printable(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets and URL passwords masked."""
        return self.model_dump(mode="json", by_alias=True)
