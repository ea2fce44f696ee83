"""Prometheus for `rezerv up`: its configuration, and the server when its binary is on the PATH.

The configuration scrapes every rezerv process and Ray's own metrics:
- job "rezerv": the API and each shard and saga service process, found through the API's
  `/metrics/targets` (Prometheus HTTP service discovery, api/metrics_targets.py), because those
  processes listen on ports the kernel picks and Ray may restart them elsewhere;
- job "ray": Ray's metrics agents, from the service discovery file Ray writes in its temp dir
  (the Ray dashboard's metrics view reads these from this Prometheus: `rezerv up` starts the Ray
  head with RAY_PROMETHEUS_HOST pointing here).
The same file works for a Prometheus run by hand: `rezerv up` writes it to DATA_DIR/prometheus/
whether or not it starts one. Prometheus is not a pip package; on Debian and Ubuntu it is
`apt-get install prometheus` (any Prometheus 2.28 or newer: HTTP service discovery).
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stack.processes import ManagedProcess

SCRAPE_INTERVAL_S = 5
INSTALL_HINT = "install it to get dashboards and history: `apt-get install prometheus` (Debian, Ubuntu)"


def prometheus_config(api_url: str, ray_discovery_file: Path | None, scrape_interval_s: int = SCRAPE_INTERVAL_S) -> str:
    """The scrape configuration (YAML; written as JSON, which YAML reads) for this stack."""
    scrape_configs: list[dict[str, object]] = [
        {
            "job_name": "rezerv",
            "http_sd_configs": [{"url": f"{api_url}/metrics/targets", "refresh_interval": "15s"}],
        }
    ]
    if ray_discovery_file is not None:
        scrape_configs.append({"job_name": "ray", "file_sd_configs": [{"files": [str(ray_discovery_file)]}]})
    config = {
        "global": {"scrape_interval": f"{scrape_interval_s}s", "evaluation_interval": f"{scrape_interval_s}s"},
        "scrape_configs": scrape_configs,
    }
    return json.dumps(config, indent=2) + "\n"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def config_path(prometheus_dir: Path) -> Path:
    """Where `rezerv up` writes the configuration (and the embedded Prometheus reads it)."""
    return prometheus_dir / "prometheus.yml"


@dataclass
class EmbeddedPrometheus:
    binary: str
    data_dir: Path  # DATA_DIR/prometheus: the configuration and the time series
    port: int
    log_dir: Path
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return config_path(self.data_dir)

    def start(self, timeout_s: float = 60.0) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process = ManagedProcess(name="Prometheus", argv=argv, log_path=self.log_dir / "prometheus.log")
        self.process.start()
        self.process.wait_ready(self._ready, timeout_s)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
