"""ray-cluster.yaml: a launcher config whose head installs rezerv and starts the API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.config import PREFIX, Settings

CONFIG = Path(__file__).resolve().parents[2] / "ray-cluster.yaml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def test_has_the_launcher_keys() -> None:
    config = load()
    for key in (
        "cluster_name",
        "provider",
        "auth",
        "setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
        "file_mounts",
    ):
        assert key in config, key
    assert config["provider"]["type"]
    assert config["auth"]["ssh_user"]


def test_setup_installs_rezerv_without_embedded_servers() -> None:
    setup = " ".join(load()["setup_commands"])
    assert "pip install" in setup
    assert "constraints.txt" in setup
    assert "[embedded]" not in setup


def test_head_starts_ray_deploys_and_serves_the_api() -> None:
    head = " ".join(load()["head_start_ray_commands"])
    assert "ray start --head" in head
    assert "rezerv deploy" in head
    assert "api.app:create_app" in head
    worker = " ".join(load()["worker_start_ray_commands"])
    assert "ray start --address=" in worker


def test_every_setting_it_names_exists() -> None:
    named = set(re.findall(rf"{PREFIX}[A-Z_]+", CONFIG.read_text()))
    known = set(Settings().to_env())
    assert named, "the config should say which variables point at managed services"
    assert named <= known, named - known
    for needed in ("REZERV_DATABASE_URL", "REZERV_REDIS_URL", "REZERV_KAFKA_BOOTSTRAP"):
        assert needed in named
