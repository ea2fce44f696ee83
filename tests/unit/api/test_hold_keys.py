"""Hold ids derived from keys: the fast derivation is exactly uuid5 of the documented name."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from api.hold_keys import NAMESPACE, hold_id_for

ids = st.text(min_size=1, max_size=64)


@given(ids, st.sampled_from(["event", "car"]), ids, st.text(min_size=0, max_size=128))
def test_a_hold_id_is_uuid5_of_customer_kind_entity_and_key(customer: str, kind: str, entity: str, key: str) -> None:
    assert hold_id_for(customer, kind, entity, key) == str(uuid.uuid5(NAMESPACE, f"{customer}/{kind}/{entity}/{key}"))


def test_a_known_hold_id_never_changes() -> None:
    """Every stored hold, retry and ownership proof depends on this exact value."""
    assert hold_id_for("alice", "event", "nordic-lights-2027", "my-first-hold") == str(
        uuid.uuid5(uuid.UUID("dd088673-413b-4156-98e8-f0cab753829f"), "alice/event/nordic-lights-2027/my-first-hold")
    )
