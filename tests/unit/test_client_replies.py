"""The engine client's typed answers (actors/client.py `execute_as`) over local shards."""

from __future__ import annotations

import pytest

from engine.domain.commands import CreateEvent, GetState, HoldTickets, TierSpec
from engine.domain.errors import EntityNotFound
from engine.domain.results import Done, HoldGranted, StateView
from tests.dates import starts_in
from tests.unit.local_shard import local_inventory


async def test_a_command_answered_with_the_expected_kind_of_result_returns_it() -> None:
    inventory = local_inventory(shard_count=1)
    created = await inventory.client.execute_as(
        CreateEvent("e1", "Show", "Hall", starts_in(30), (TierSpec("std", 100, 10),)), Done
    )
    assert (created.entity_id, created.changed) == ("e1", True)
    view = await inventory.client.execute_as(GetState("e1", "event"), StateView)
    assert view.state["tiers"][0]["available"] == 10
    await inventory.stop()


async def test_an_answer_of_another_kind_is_a_type_error_naming_both() -> None:
    inventory = local_inventory(shard_count=1)
    await inventory.client.execute(CreateEvent("e1", "Show", "Hall", starts_in(30), (TierSpec("std", 100, 10),)))
    with pytest.raises(TypeError, match="GetState answered StateView, not Done"):
        await inventory.client.execute_as(GetState("e1", "event"), Done)
    await inventory.stop()


async def test_a_refusal_is_raised_as_the_error_itself_not_a_type_error() -> None:
    inventory = local_inventory(shard_count=1)
    with pytest.raises(EntityNotFound):
        await inventory.client.execute_as(HoldTickets("nope", "h1", "c1", (("std", 1),), 60_000), HoldGranted)
    await inventory.stop()
