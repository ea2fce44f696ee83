"""The soak test's verdict: flat after warm-up and under the bound, judged per process."""

from __future__ import annotations

from loadtest.http_run import step_dir_name
from loadtest.soak import Sample, memory_verdict


def series(pid: int, role: str, rss: list[float], every_s: float = 60.0) -> list[Sample]:
    """RSS as given, USS half of it (the verdict judges flatness on USS, the bound on RSS)."""
    return [Sample(i * every_s, pid, role, value, value / 2) for i, value in enumerate(rss)]


def test_a_process_that_grew_during_warm_up_and_then_stayed_flat_passes() -> None:
    [shard] = memory_verdict(series(1, "shards", [100, 300, 400, 410, 405, 412]), 120, 64, 1024)
    assert (shard.flat, shard.under_bound, shard.settled_low_mib, shard.growth_mib) == (True, True, 200, 6)


def test_a_process_that_keeps_growing_after_warm_up_is_not_flat() -> None:
    [leaky] = memory_verdict(series(2, "saga services", [200, 300, 400, 500, 600, 700]), 120, 64, 1024)
    assert not leaky.flat
    assert leaky.growth_mib == 150


def test_a_process_over_the_bound_fails_even_when_flat() -> None:
    [big] = memory_verdict(series(3, "postgres", [1500, 1500, 1500]), 60, 64, 1024)
    assert big.flat
    assert not big.under_bound


def test_shared_pages_filling_up_do_not_count_as_growth() -> None:
    backend = [Sample(i * 60.0, 6, "postgres", 20 + 40 * i, 8) for i in range(6)]
    [pg] = memory_verdict(backend, 120, 64, 1024)
    assert pg.flat
    assert pg.peak_mib == 220


def test_processes_seen_only_during_warm_up_are_not_judged() -> None:
    samples = series(4, "other", [50, 60]) + series(5, "api", [90, 95, 96, 97])
    assert [p.pid for p in memory_verdict(samples, 120, 64, 1024)] == [5]


def test_a_repeated_step_gets_its_own_folder_and_a_single_one_keeps_its_name() -> None:
    assert [step_dir_name([16, 64], i) for i in range(2)] == ["users-00016", "users-00064"]
    assert [step_dir_name([64, 64, 64], i) for i in range(3)] == ["users-00064-0", "users-00064-1", "users-00064-2"]


def test_the_harness_is_never_judged() -> None:
    samples = series(7, "loadtest driver", [100, 2000, 6000, 9000]) + series(8, "load generator", [80, 90, 400])
    assert memory_verdict(samples, 60, 64, 1024) == []
