"""The one place rezerv classes become Ray actors, with their options.

Shards are named and detached (they outlive the process that created them), restartable
without limit, and their calls are not retried by Ray: the caller retries with the command's
idempotency key instead (actors/client.py), so the answer to a retry is the original one.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from actors.services import ServiceActor
from actors.shard import ShardActor
from engine.config import Settings


def shard_name(index: int) -> str:
    return f"shard-{index}"


def _restartable_named_actor(settings: Settings, name: str, max_concurrency: int) -> dict[str, Any]:
    """What shards and services share: named and detached (any process finds them again by name),
    restarted by Ray after every crash, a call lost with the process never re-run by Ray
    (`max_task_retries=0`: retrying is the caller's decision), and no CPU reserved."""
    return {
        "name": name,
        "namespace": settings.namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": -1,
        "max_task_retries": 0,
        "max_concurrency": max_concurrency,
        "num_cpus": 0,
    }


def shard_options(settings: Settings, index: int) -> dict[str, Any]:
    return {**_restartable_named_actor(settings, shard_name(index), 10_000), "enable_task_events": False}


@cache
def _remote_shard() -> Any:
    import ray

    return ray.remote(ShardActor)


def shard_handle(settings: Settings, index: int) -> Any:
    """The shard's actor handle, creating the actor if it does not exist yet."""
    return _remote_shard().options(**shard_options(settings, index)).remote(index, settings.to_env())


def service_name(role: str) -> str:
    return f"service-{role}"


def service_options(settings: Settings, role: str) -> dict[str, Any]:
    return _restartable_named_actor(settings, service_name(role), 100)


@cache
def _remote_service() -> Any:
    import ray

    return ray.remote(ServiceActor)


def service_handle(settings: Settings, role: str) -> Any:
    """The service actor for `role`, creating it if needed (its loops start with `.start.remote()`)."""
    return _remote_service().options(**service_options(settings, role)).remote(role, settings.to_env())
