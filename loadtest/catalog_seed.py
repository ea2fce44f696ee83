"""Load a large catalog into a running rezerv (10,000 events and 2,000 cars by default), for the
catalog benchmarks of BENCHMARKS.md.

Through the engine, not HTTP: commands go to the shard actors over Ray in big batches (the
client coalesces them), so seeding takes seconds, and every row still comes the way production
rows do, from the entities' events through the catalog projection. Cars get calendars (random
holds over the next year, some maintenance blocks), so that "free for this week" has work to do.
Deterministic (a seed), and safe to run twice: the same ids and bodies are accepted as repeats.

    python -m loadtest.catalog_seed --events 10000 --cars 2000      # with the stack's REZERV_* env
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.domain.commands import BlockCar, Command, CreateEvent, Deposit, HoldCar, RegisterCar, TierSpec
from engine.domain.errors import RezervError
from stack.arguments import COUNT_OR_0
from stack.demo import CITIES, KINDS, MODELS

HOLD_TTL_MS = 7 * 24 * 3600 * 1000  # the longest hold; the saga confirms it (the seeders' wallets are funded)
SEEDERS = 97  # customers making the seeded car holds


def events(count: int, seed: int = 1) -> list[Command]:
    rng = random.Random(seed)
    cities = list(CITIES)
    out: list[Command] = []
    for n in range(count):
        city = cities[n % len(cities)]
        kind, openings, endings, tiers = KINDS[rng.randrange(len(KINDS))]
        starts = date(2027, 1, 1) + timedelta(days=rng.randrange(365))
        offset = "+02:00" if 4 <= starts.month <= 10 else "+01:00"
        specs = tuple(TierSpec(name, price + rng.randrange(0, 3_000, 100), q) for name, price, q in tiers)
        out.append(
            CreateEvent(
                f"bench-{kind}-{n:05d}",
                f"{rng.choice(openings)} {rng.choice(endings)} {n}",
                rng.choice(CITIES[city]),
                f"{starts.isoformat()}T{rng.choice([18, 19, 20, 21])}:00:00{offset}",
                specs,
                rng.choice([0, 4, 8]),
            )
        )
    return out


def cars(count: int, seed: int = 2) -> tuple[list[Command], list[Command]]:
    """(registrations, calendar commands: holds and blocks over the coming year)."""
    rng = random.Random(seed)
    locations = ["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromso", "Stockholm", "Gothenburg", "Copenhagen"]
    today = datetime.now(UTC).date()
    registrations: list[Command] = []
    calendar: list[Command] = []
    for n in range(count):
        brand, model, rate = MODELS[rng.randrange(len(MODELS))]
        car_id = f"bench-car-{n:05d}"
        registrations.append(
            RegisterCar(
                car_id,
                brand,
                model,
                locations[n % len(locations)],
                rate + rng.randrange(-500, 1_500, 100),
                rng.choice([1, 1, 2, 3]),
                7,
                500,
            )
        )
        day = today + timedelta(days=rng.randrange(1, 10))
        for i in range(rng.randrange(4, 16)):  # a busy calendar: a rental or a service every few weeks
            start = day + timedelta(days=rng.randrange(0, 25))
            end = start + timedelta(days=rng.randrange(1, 10))
            if rng.random() < 0.1:
                calendar.append(BlockCar(car_id, f"b{i}", start, end, "service"))
            else:
                calendar.append(HoldCar(car_id, f"seed-{car_id}-{i}", f"seeder-{n % SEEDERS}", start, end, HOLD_TTL_MS))
            day = end
    return registrations, calendar


async def send(client: Any, commands: Sequence[Command], chunk: int = 2_000) -> tuple[int, int]:
    """(accepted, refused) after sending `commands` in chunks."""
    accepted = refused = 0
    for i in range(0, len(commands), chunk):
        for reply in await client.execute_many(commands[i : i + chunk]):
            if isinstance(reply, RezervError):
                refused += 1
            else:
                accepted += 1
    return accepted, refused


def connect(settings: Settings) -> Any:
    from stack.ray_auth import use_token
    from stack.servers import RAY_ENV
    from stack.up import RunFiles

    # Run from a shell, this process has not inherited `rezerv up`'s environment: without it Ray
    # (which reads it when imported) looks for the cluster on the machine's external address.
    os.environ.update(RAY_ENV)
    use_token(RunFiles(settings.data_dir).ray_token_file)
    import ray

    from actors.client import ray_client

    address = settings.ray_address or f"127.0.0.1:{settings.ray_port}"
    ray.init(address=address, namespace=settings.namespace, log_to_driver=False, logging_level=logging.WARNING)
    return ray_client(settings)


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    if not settings.data_dir.is_absolute():
        settings = settings.replace(data_dir=Path.cwd() / settings.data_dir)
    client = connect(settings)
    t = time.monotonic()
    registrations, calendar = cars(args.cars)
    for what, commands in (
        ("wallets", [Deposit(f"seeder-{n}", "seed", 10**11) for n in range(SEEDERS)]),
        ("events", events(args.events)),
        ("cars", registrations),
        ("car holds and blocks", calendar),
    ):
        accepted, refused = await send(client, commands)
        print(f"{what}: {accepted} accepted, {refused} refused ({time.monotonic() - t:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=COUNT_OR_0, default=10_000)
    parser.add_argument("--cars", type=COUNT_OR_0, default=2_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
