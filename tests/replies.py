"""Narrowing an engine reply in a test (engine/domain/results.py `Reply`): each helper asserts
which kind of answer it is, so a test that reads `.state` or `.code` also checks it got a view
or an error, and the type checker knows it."""

from __future__ import annotations

from engine.domain.errors import RezervError
from engine.domain.results import Done, HoldGranted, Reply, StateView


def as_view(reply: Reply) -> StateView:
    assert isinstance(reply, StateView), f"expected a state view, got {reply!r}"
    return reply


def as_done(reply: Reply) -> Done:
    assert isinstance(reply, Done), f"expected Done, got {reply!r}"
    return reply


def as_granted(reply: Reply) -> HoldGranted:
    assert isinstance(reply, HoldGranted), f"expected a granted hold, got {reply!r}"
    return reply


def as_error(reply: Reply) -> RezervError:
    assert isinstance(reply, RezervError), f"expected an error, got {reply!r}"
    return reply
