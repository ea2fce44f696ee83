"""The Prometheus configuration `rezerv up` writes: every rezerv process through the API's service
discovery, Ray's agents through Ray's file, valid YAML."""

from __future__ import annotations

from pathlib import Path

import yaml

from stack.prometheus import prometheus_config


def test_the_configuration_discovers_every_process_through_the_api_and_ray_through_its_file() -> None:
    config = yaml.safe_load(prometheus_config("http://127.0.0.1:18600", Path("/r/prom_metrics_service_discovery.json")))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["rezerv"]["http_sd_configs"][0]["url"] == "http://127.0.0.1:18600/metrics/targets"
    assert jobs["ray"]["file_sd_configs"][0]["files"] == ["/r/prom_metrics_service_discovery.json"]
    assert config["global"]["scrape_interval"] == "5s"


def test_without_an_embedded_ray_there_is_no_ray_job() -> None:
    config = yaml.safe_load(prometheus_config("http://api:8000", None))
    assert [job["job_name"] for job in config["scrape_configs"]] == ["rezerv"]
