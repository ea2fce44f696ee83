"""Every metrics endpoint of the system, in Prometheus's HTTP service-discovery format.

`GET /metrics/targets` lists the API itself and each shard and saga service process, whose
endpoints listen on ports the kernel chose (actors/process_metrics.py): the API asks each actor,
found by its name in Ray, for its address. Prometheus reads this list (`http_sd_configs`, see the
configuration `rezerv up` writes) and so does `rezerv top`. An actor that does not answer within
the timeout is left out of this answer and found again at the next refresh.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI

from engine.config import Settings

log = logging.getLogger("rezerv.api.targets")

TIMEOUT_S = 2.0


def api_target(settings: Settings) -> dict[str, Any]:
    return {"targets": [f"{settings.api_host}:{settings.api_port}"], "labels": {"process": "api", "role": "api"}}


def actor_names(settings: Settings) -> list[str]:
    from actors.factory import service_name, shard_name
    from actors.services import ROLES

    return [shard_name(i) for i in range(settings.shard_count)] + [service_name(role) for role in ROLES]


async def actor_targets(settings: Settings) -> list[dict[str, Any]]:
    """The shard and service processes' endpoints (Ray must be joined already)."""
    import ray

    async def one(name: str) -> dict[str, Any] | None:
        try:
            handle = ray.get_actor(name, namespace=settings.namespace)
            found: dict[str, Any] | None = await asyncio.wait_for(handle.metrics_target.remote(), TIMEOUT_S)
        except Exception as exc:  # not deployed, restarting, or too slow: the next refresh finds it
            log.info("no metrics target from %s: %s", name, type(exc).__name__)
            return None
        if found is None:  # REZERV_METRICS=0: the process serves no endpoint
            return None
        return {"targets": [found["address"]], "labels": dict(found["labels"])}

    found = await asyncio.gather(*(one(name) for name in actor_names(settings)))
    return [target for target in found if target is not None]


async def all_targets(app: FastAPI) -> list[dict[str, Any]]:
    settings: Settings = app.state.settings
    targets = [api_target(settings)]
    ray_dependency = app.state.dependencies.get("ray")
    if ray_dependency is None:
        return targets
    try:
        await asyncio.to_thread(ray_dependency._connect)
    except Exception as exc:
        log.info("Ray not reachable for the metrics targets: %s", type(exc).__name__)
        return targets
    return targets + await actor_targets(settings)
