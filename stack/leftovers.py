"""The processes a killed `rezerv up` leaves running, found and stopped by the next one.

Every server `rezerv up` starts runs in a session of its own (a Ctrl-C at the terminal reaches
only `rezerv up`, which then stops them in order). When `rezerv up` itself is killed (SIGKILL,
the out-of-memory killer) nothing stops them: PostgreSQL, Valkey, the broker, Ray with the shards
and the saga services, and the API keep running and hold the ports the next start needs.

So `rezerv up` writes down each process it starts (pid and start time, in `run/processes` of the
data directory; a restarted server is written down again). The next `rezerv up` on that data
directory, or `rezerv down`, finding the earlier one dead, stops each of those that still runs
(the same pid *and* start time: not a pid reused since) together with everything below it: Ray's
daemons and workers, PostgreSQL's backends. A mark in the environment would not do: Valkey and
PostgreSQL's backends rewrite their process titles over it.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from stack.processes import running_as, terminate_then_kill


def note(processes_file: Path, pid: int) -> None:
    """Write down a process just started (appended: a server restarted is written again)."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:  # already gone: nothing to stop later
        return
    with processes_file.open("a") as out:
        out.write(f"{pid} {created}\n")


def written_down(processes_file: Path) -> list[psutil.Process]:
    """The processes written down in `processes_file` that still run, each with all below it."""
    try:
        lines = processes_file.read_text().splitlines()
    except OSError:
        return []
    found: dict[int, psutil.Process] = {}
    for line in lines:
        try:
            pid_text, created_text = line.split()
            proc = running_as(int(pid_text), float(created_text))  # None: gone, or its pid reused
            for member in (proc, *proc.children(recursive=True)) if proc else ():
                found[member.pid] = member
        except (ValueError, psutil.Error):
            continue
    return list(found.values())


def stop_left_running(processes_file: Path, timeout_s: float = 15.0) -> int:
    """SIGTERM every process written down in `processes_file` that still runs, and everything below
    it; SIGKILL what is left after `timeout_s`. Returns how many there were. Killing is safe: every
    acknowledged change is in PostgreSQL's log, which replays it on the next start."""
    procs = written_down(processes_file)
    terminate_then_kill(procs, grace_s=timeout_s, kill_wait_s=5.0)
    return len(procs)


def start_afresh(processes_file: Path) -> None:
    """An empty list for this run (after what an earlier run left was stopped)."""
    processes_file.parent.mkdir(parents=True, exist_ok=True)
    processes_file.write_text("")
