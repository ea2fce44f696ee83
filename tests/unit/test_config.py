"""Settings: read from REZERV_* variables, with errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ConfigError, Settings


def test_defaults_and_overrides() -> None:
    s = Settings.from_env({"REZERV_API_PORT": "9001", "REZERV_DATA_DIR": "/tmp/x", "REZERV_DEMO_DATA": "no"})
    assert s.api_port == 9001
    assert s.data_dir == Path("/tmp/x")
    assert s.demo_data is False
    assert s.database_url == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REZERV_API_PORT": "eighty"}, "REZERV_API_PORT='eighty' is not a valid int"),
        ({"REZERV_API_PORT": "70000"}, "REZERV_API_PORT=70000 is not a TCP port"),
        ({"REZERV_DATABASE_URL": "mysql://x"}, "REZERV_DATABASE_URL must start with postgresql://"),
        ({"REZERV_SHARD_COUNT": "0"}, "REZERV_SHARD_COUNT must be at least 1"),
        ({"REZERV_INBOX_RETENTION_S": "0"}, "REZERV_INBOX_RETENTION_S must be positive"),
        ({"REZERV_DEMO_DATA": "maybe"}, "REZERV_DEMO_DATA='maybe' is not a valid bool"),
        ({"REZERV_DATABSE_URL": "postgresql://x"}, "unknown setting REZERV_DATABSE_URL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        Settings.from_env(env)


def test_round_trip_through_child_environment() -> None:
    s = Settings.from_env({"REZERV_KAFKA_BOOTSTRAP": "k:9092", "REZERV_HOLD_TTL_S": "12.5"})
    again = Settings.from_env(s.to_env())
    assert again == s
