"""Settings: read from REZERV_* variables, with errors that name the variable."""

from __future__ import annotations

import re
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
        ({"REZERV_HOLD_TTL_S": "0"}, "REZERV_HOLD_TTL_S must be positive (seconds)"),
        ({"REZERV_LEASE_TTL_S": "-1"}, "REZERV_LEASE_TTL_S must be positive (seconds)"),
        ({"REZERV_STARTUP_TIMEOUT_S": "0"}, "REZERV_STARTUP_TIMEOUT_S must be positive (seconds)"),
        ({"REZERV_HOLD_TTL_S": "nan"}, "REZERV_HOLD_TTL_S=nan is not a finite number"),
        ({"REZERV_PASSIVATE_AFTER_S": "inf"}, "REZERV_PASSIVATE_AFTER_S=inf is not a finite number"),
        ({"REZERV_API_WORKERS": "0"}, "REZERV_API_WORKERS must be at least 1"),
        ({"REZERV_RAY_NUM_CPUS": "-1"}, "REZERV_RAY_NUM_CPUS must not be negative (0: detect)"),
        ({"REZERV_PROJECTION_INTERVAL_S": "-0.5"}, "REZERV_PROJECTION_INTERVAL_S must not be negative"),
        ({"REZERV_KAFKA_SESSION_TIMEOUT_MS": "50"}, "REZERV_KAFKA_SESSION_TIMEOUT_MS must be at least 1000"),
        ({"REZERV_ARGON2_MEMORY_KIB": "4"}, "REZERV_ARGON2_MEMORY_KIB must be at least 8 KiB per lane"),
        ({"REZERV_ARGON2_NICENESS": "-5"}, "REZERV_ARGON2_NICENESS must be from 0 to 19"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_round_trip_through_child_environment() -> None:
    s = Settings.from_env({"REZERV_KAFKA_BOOTSTRAP": "k:9092", "REZERV_HOLD_TTL_S": "12.5"})
    again = Settings.from_env(s.to_env())
    assert again == s


def test_zero_is_taken_where_it_means_off_or_no_pause() -> None:
    s = Settings.from_env(
        {
            "REZERV_RAY_NUM_CPUS": "0",
            "REZERV_SNAPSHOT_EVERY": "0",
            "REZERV_PAYMENT_MAX_TICKETS": "0",
            "REZERV_PROJECTION_INTERVAL_S": "0",
            "REZERV_SNAPSHOT_MIN_INTERVAL_S": "0",
        }
    )
    assert (s.ray_num_cpus, s.snapshot_every, s.payment_max_tickets) == (0, 0, 0)
    assert (s.projection_interval_s, s.snapshot_min_interval_s) == (0.0, 0.0)
