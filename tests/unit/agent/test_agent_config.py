"""The settings object: defaults, YAML, environment overrides, readable errors, masking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from agent.config import (
    MAX_DEFAULT_RECEIVERS,
    DicomWebDestination,
    DimseDestination,
    FolderDestination,
    Settings,
)
from agent.config_loading import load_settings
from agent.errors import ConfigError


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _problems(path: Path | None, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    return caught.value.lines


def test_defaults_need_no_file_and_no_server() -> None:
    settings = load_settings(None, {})
    assert settings.ae_title == "AI_AGENT"
    assert (settings.host, settings.port) == ("127.0.0.1", 11112)
    assert settings.allowed_peers == []
    assert settings.tls.enabled is False
    assert settings.spool_dir == Path("var/spool")
    assert settings.database_url == "sqlite:///var/spool/agent.db"
    assert settings.broker_url == "sqla+sqlite:///var/spool/broker.db"
    assert settings.result_backend is None
    assert settings.series_stable_seconds == 10
    assert settings.reconcile_interval_seconds == 15
    assert settings.job_lease_seconds == 600
    assert settings.export_max_attempts == 5
    assert settings.export_backoff_seconds == 2.0
    assert settings.destinations == [
        FolderDestination(kind="folder", name="local", path=Path("var/results"))
    ]
    [rule] = settings.rules
    assert (rule.name, rule.pipeline, rule.destinations) == (
        "ct-chest",
        "lung-nodule-reference",
        ["local"],
    )
    assert rule.match["Modality"].equals == "CT"
    assert (settings.api.host, settings.api.port, settings.api.tokens) == ("127.0.0.1", 8080, [])
    assert (settings.log_json, settings.log_phi) == (False, False)


def test_paths_derive_from_spool_dir_unless_given() -> None:
    settings = load_settings(None, {"DICOM_AGENT_SPOOL_DIR": "/data/spool"})
    assert settings.database_url == "sqlite:////data/spool/agent.db"
    assert settings.broker_url == "sqla+sqlite:////data/spool/broker.db"
    assert settings.destinations[0] == FolderDestination(
        kind="folder", name="local", path=Path("/data/results")
    )
    given = load_settings(None, {"DICOM_AGENT_DATABASE_URL": "postgresql+psycopg://db/agent"})
    assert given.database_url == "postgresql+psycopg://db/agent"


def test_yaml_file_from_argument_or_environment(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "agent.yaml",
        {
            "ae_title": "  RADAI ",
            "port": 104,
            "allowed_peers": ["CT_SCANNER", "PACS"],
            "destinations": [
                {
                    "kind": "dimse",
                    "name": "pacs",
                    "ae_title": "ORTHANC",
                    "host": "pacs",
                    "port": 4242,
                },
                {"kind": "dicomweb", "name": "web", "url": "http://pacs:8042/dicom-web"},
            ],
            "rules": [
                {
                    "name": "chest",
                    "match": {
                        "Modality": {"in": ["CT", "PT"]},
                        "SeriesDescription": {"regex": "(?i)chest"},
                        "SliceThickness": {"range": [0.5, 2]},
                        "SeriesNumber": 3,
                    },
                    "pipeline": "lung",
                    "destinations": ["pacs", "web"],
                    "priority": 5,
                }
            ],
        },
    )
    for settings in (
        load_settings(path, {}),
        load_settings(None, {"DICOM_AGENT_CONFIG": str(path)}),
    ):
        assert settings.ae_title == "RADAI"
        assert settings.port == 104
        assert settings.allowed_peers == ["CT_SCANNER", "PACS"]
        assert isinstance(settings.destinations[0], DimseDestination)
        assert isinstance(settings.destinations[1], DicomWebDestination)
        match = settings.rules[0].match
        assert match["Modality"].in_ == ("CT", "PT")
        assert match["SeriesDescription"].regex == "(?i)chest"
        assert match["SliceThickness"].range == (0.5, 2.0)
        assert match["SeriesNumber"].equals == "3"


def test_environment_overrides_file_per_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "agent.yaml", {"port": 104, "api": {"port": 9000}, "log_json": False})
    settings = load_settings(
        path,
        {
            "DICOM_AGENT_PORT": "11113",
            "DICOM_AGENT_LOG_JSON": "true",
            "DICOM_AGENT_ALLOWED_PEERS": '["A", "B"]',
            "DICOM_AGENT_API": "{port: 9100, tokens: [s3cret]}",
            "DICOM_AGENT_AE_TITLE": "0123",
            "OTHER_VARIABLE": "ignored",
        },
    )
    assert settings.port == 11113
    assert settings.log_json is True
    assert settings.allowed_peers == ["A", "B"]
    assert settings.api.port == 9100
    assert settings.api.tokens[0].get_secret_value() == "s3cret"
    assert settings.ae_title == "0123"


@pytest.mark.parametrize(
    ("data", "environ", "expected"),
    [
        ({"port": 70000}, {}, "port: Input should be less than 65536"),
        (
            {},
            {"DICOM_AGENT_PORT": "70000"},
            "port: Input should be less than 65536 (from DICOM_AGENT_PORT)",
        ),
        ({"prot": 104}, {}, "prot: unknown key"),
        ({}, {"DICOM_AGENT_PROT": "104"}, "DICOM_AGENT_PROT: no configuration key 'prot'"),
        ({"ae_title": "A" * 17}, {}, "ae_title: an AE title has at most 16 characters"),
        ({"ae_title": "A\\B"}, {}, "ae_title: an AE title holds printable ASCII characters only"),
        ({"allowed_peers": ["OK", "   "]}, {}, "allowed_peers[1]: an AE title must not be empty"),
        ({"tls": {"enabled": True}}, {}, "tls: cert_file and key_file are required when enabled"),
        (
            {
                "destinations": [
                    {"kind": "dimse", "name": "p", "ae_title": "P", "host": "h", "port": 0}
                ]
            },
            {},
            "destinations[0].dimse.port: Input should be greater than 0",
        ),
        (
            {"rules": [{"name": "r", "match": {}, "pipeline": "p", "destinations": ["pacs"]}]},
            {},
            "rules: rule 'r' sends to unknown destination(s) pacs; known: local",
        ),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "match": {"Modalty": "CT"},
                        "pipeline": "p",
                        "destinations": ["local"],
                    }
                ]
            },
            {},
            "rules[0].match.Modalty: 'Modalty' is not a DICOM keyword",
        ),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "match": {"Modality": {"regex": "(", "in": ["CT"]}},
                        "pipeline": "p",
                        "destinations": ["local"],
                    }
                ]
            },
            {},
            "rules[0].match.Modality.regex: not a valid regex",
        ),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "match": {"SliceThickness": {"range": [3, 1]}},
                        "pipeline": "p",
                        "destinations": ["local"],
                    }
                ]
            },
            {},
            "rules[0].match.SliceThickness: range must be [min, max] with min <= max",
        ),
        (
            {"destinations": [{"kind": "folder", "name": "x", "path": "a"}] * 2, "rules": []},
            {},
            "destinations: destination names must be unique: x",
        ),
        ({}, {"DICOM_AGENT_RULES": "[unclosed"}, "DICOM_AGENT_RULES: not valid JSON or YAML"),
    ],
)
def test_errors_name_the_bad_key(
    tmp_path: Path, data: dict[str, object], environ: dict[str, str], expected: str
) -> None:
    path = _write(tmp_path / "agent.yaml", data) if data else None
    problems = _problems(path, environ)
    assert any(line.startswith(expected) for line in problems), problems


def test_all_problems_are_reported_at_once_in_one_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "agent.yaml", {"port": "x", "api": {"port": -1}})
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert caught.value.lines == [
        "port: Input should be a valid integer, unable to parse string as an integer",
        "api.port: Input should be greater than 0",
    ]
    assert str(caught.value).startswith(f"invalid configuration ({path}):\n  port: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("port: [1", "not valid YAML"), ("- a\n- b\n", "the top level must be a mapping")],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    assert _problems(path, {})[0].startswith(expected)
    assert _problems(tmp_path / "missing.yaml", {})[0].startswith("cannot read the file")


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("", encoding="utf-8")
    assert load_settings(path, {}) == load_settings(None, {})


def test_secrets_print_masked() -> None:
    settings = Settings.model_validate(
        {
            "database_url": "postgresql+psycopg://agent:db-pass@db:5432/agent",
            "broker_url": "redis://:broker-pass@redis:6379/0",
            "api": {"tokens": ["api-token"]},
            "destinations": [
                {
                    "kind": "dicomweb",
                    "name": "web",
                    "url": "https://pacs/dicom-web",
                    "auth_token": "web-token",
                }
            ],
            "rules": [],
        }
    )
    printed = settings.printable()
    everything = f"{printed} {settings!r} {settings}"
    for secret in ("db-pass", "broker-pass", "api-token", "web-token"):
        assert secret not in everything
    assert printed["database_url"] == "postgresql+psycopg://agent:***@db:5432/agent"
    assert printed["broker_url"] == "redis://:***@redis:6379/0"
    assert printed["api"]["tokens"] == ["**********"]
    assert printed["destinations"][0]["auth_token"] == "**********"
    assert settings.database_url.endswith("agent:db-pass@db:5432/agent")
    assert settings.api.tokens[0].get_secret_value() == "api-token"


def test_printed_rules_read_back_as_written() -> None:
    rules = [
        {
            "name": "r",
            "match": {
                "Modality": "CT",
                "BodyPartExamined": {"in": ["CHEST"]},
                "SliceThickness": {"range": [0.5, 2.0]},
            },
            "pipeline": "p",
            "destinations": ["local"],
            "priority": 1,
        }
    ]
    printed = Settings.model_validate({"rules": rules}).printable()
    assert printed["rules"] == rules
    assert (
        Settings.model_validate(printed | {"api": {}}).rules
        == Settings.model_validate({"rules": rules}).rules
    )


def test_settings_are_immutable() -> None:
    settings = load_settings(None, {})
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_receiver_processes_default_to_the_usable_cpus_at_most_eight() -> None:
    cpus = len(os.sched_getaffinity(0))

    assert load_settings(None, {}).dimse_processes == min(cpus, MAX_DEFAULT_RECEIVERS)
    assert load_settings(None, {"DICOM_AGENT_DIMSE_PROCESSES": "12"}).dimse_processes == 12
    problems = _problems(None, {"DICOM_AGENT_DIMSE_PROCESSES": "0"})
    assert any(line.startswith("dimse_processes: ") for line in problems), problems
