"""Narrowing an engine reply in a test (engine/domain/results.py `Reply`): each helper asserts
which kind of answer it is, so a test that reads `.state` or `.code` also checks it got a view
or an error, and the type checker knows it."""

from __future__ import annotations

from typing import TypeVar

from engine.domain.errors import RezervError
from engine.domain.results import Done, HoldGranted, Reply, StateView

K = TypeVar("K", StateView, Done, HoldGranted, RezervError)


def _narrowed(reply: Reply, kind: type[K]) -> K:
    assert isinstance(reply, kind), f"expected {kind.__name__}, got {reply!r}"
    return reply


def as_view(reply: Reply) -> StateView:
    return _narrowed(reply, StateView)


def as_done(reply: Reply) -> Done:
    return _narrowed(reply, Done)


def as_granted(reply: Reply) -> HoldGranted:
    return _narrowed(reply, HoldGranted)


def as_error(reply: Reply) -> RezervError:
    return _narrowed(reply, RezervError)
