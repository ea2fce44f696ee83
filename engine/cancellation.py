"""Telling a real cancellation from a stray CancelledError.

A long-running loop (a Kafka consumer, the outbox relay) must stop when its task is cancelled,
and must not stop otherwise. But a CancelledError also reaches a task when a library cancels a
future the task is awaiting: aiokafka does so with requests in flight on a connection that
closes, e.g. when the broker restarts. Re-raising that one ends the loop's task without a word
and, in the saga, leaves a consumer group with no member (seen in the chaos test). Python 3.11's
`Task.cancelling()` counts the cancellation requests made to the task itself, which is the
difference.
"""

from __future__ import annotations

import asyncio


class StrayCancellation(Exception):
    """A CancelledError that did not come from cancelling the current task."""


def reraise_if_cancelled(exc: asyncio.CancelledError) -> StrayCancellation:
    """Re-raise `exc` if the current task was asked to cancel; otherwise return it as an ordinary
    error for the caller's retry path (``raise reraise_if_cancelled(exc) from exc`` or log it)."""
    task = asyncio.current_task()
    if task is None or task.cancelling():
        raise exc
    return StrayCancellation("an operation was cancelled under this task (its connection closed?)")


def as_failure(exc: asyncio.CancelledError | Exception) -> Exception:
    """What a retry loop catching ``(asyncio.CancelledError, Exception)`` should treat as a failure:
    a real cancellation is re-raised, a stray one becomes StrayCancellation, any other error is
    returned as it is."""
    if isinstance(exc, asyncio.CancelledError):
        return reraise_if_cancelled(exc)
    return exc
