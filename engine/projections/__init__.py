"""Read models built from the event log (CQRS projections).

Each projection is split like the outbox relay: a pure module here turns logged events into row
changes (no I/O, unit-tested on its own), and an adapter in engine/adapters/ applies them to
PostgreSQL together with the projection's checkpoint, in one transaction.
"""
