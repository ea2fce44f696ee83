"""A response's head and body in one write to the socket, not two.

uvicorn writes a response's status line and headers when the application sends
`http.response.start`, and its body when it sends `http.response.body`: two writes, so two
`send()` calls and, with TCP_NODELAY (which uvloop sets), two TCP segments. The client is woken
for the head and then again for the body, and each segment costs the kernel a trip through the
TCP stack on both sides. For the API's small answers (a hold's 201, a booking's read) that is
most of the network work of a request.

`HeadHeldTransport` stands between one request's cycle and the connection's transport: it keeps
the cycle's first write (the head) and sends it joined with the next one (the body), which the
hot routes and every Starlette response send in the same turn of the event loop. If no second
write comes in that turn (a streamed response, server-sent events, a `100 Continue`), the head
goes out on its own at the loop's next turn, so nothing waits longer than one turn. A close
sends what is held first. `api/http_protocol.py` gives each request's cycle one.
"""

from __future__ import annotations

import asyncio
from typing import Any


class HeadHeldTransport:
    """One request's view of the connection: its first write waits to be joined with the next."""

    __slots__ = ("_held", "_holding", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._holding = True  # only the first write is held

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
            return
        if self._holding:
            self._holding = False
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Send the held head, if it is still held (the next turn of the loop, or a close)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
