"""Password hashing with argon2id (argon2-cffi), off the event loop and below the bookings' priority.

A hash or a check costs about 20 ms of CPU with the OWASP minimum parameters (19 MiB of memory,
2 passes, 1 lane) on this project's 2-core machine: slow on purpose, so a stolen table of hashes
is slow to guess. Done on the event loop it would stop every other request of the API for that
long; so it runs in a small pool of threads (argon2-cffi releases the GIL while it hashes).
A thread pool alone still takes the CPU the bookings need (50 log-ins a second would be a whole
core), so each of its threads lowers its own scheduling priority (Linux: `nice` is per thread)
to REZERV_ARGON2_NICENESS: when the machine is busy, log-ins wait and bookings do not. Log-ins
then slow down under a flash sale instead of the flash sale slowing down; and at most
`max_waiting` of them queue per process (past that, `PasswordsBusy`: a 503 with Retry-After).

Parameters are REZERV_ARGON2_* settings; a hash carries its own parameters, so changing them
applies to new passwords and to old ones at their next log-in (`needs_rehash`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordsBusy(Exception):
    """Too many password checks are waiting in this process; try again in a moment."""


@dataclass(frozen=True)
class Argon2Parameters:
    time_cost: int = 2
    memory_kib: int = 19_456
    parallelism: int = 1


def _lower_priority(niceness: int) -> None:
    """Lower the calling thread's priority (a no-op where threads cannot be niced one by one)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


class Passwords:
    def __init__(
        self,
        parameters: Argon2Parameters | None = None,
        threads: int = 2,
        niceness: int = 10,
        max_waiting: int = 256,
    ) -> None:
        p = parameters or Argon2Parameters()
        self.hasher = PasswordHasher(
            time_cost=p.time_cost, memory_cost=p.memory_kib, parallelism=p.parallelism, type=Type.ID
        )
        self.threads = threads
        self.niceness = niceness
        self.max_waiting = max_waiting
        self.waiting = 0
        self._pool: ThreadPoolExecutor | None = None
        self._dummy: str | None = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.threads, "argon2", initializer=_lower_priority, initargs=(self.niceness,)
            )
        return self._pool

    async def _run(self, fn: object, *args: object) -> object:
        if self.waiting >= self.max_waiting:
            raise PasswordsBusy(f"{self.waiting} password checks are waiting")
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)  # type: ignore[arg-type]
        finally:
            self.waiting -= 1

    async def hash(self, password: str) -> str:
        return str(await self._run(self.hasher.hash, password))

    async def verify(self, stored: str | None, password: str) -> bool:
        """True if `password` matches `stored`. With no stored hash (an unknown login) a dummy hash
        is checked all the same, so the answer takes as long as for a real account and does not
        tell which login names exist."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("no account has this password")
            await self._run(self._check, self._dummy, password)
            return False
        return bool(await self._run(self._check, stored, password))

    def _check(self, stored: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(stored, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return bool(self.hasher.check_needs_rehash(stored))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
