"""The page governor's law (coordinator/page_governor.py), driven by hand: CPU readings in,
a step in pages out, time passed in."""

from __future__ import annotations

import pytest

from landmark.coordinator.page_governor import PageGovernor


def window(
    governor: PageGovernor,
    cpu_percents: list[float],
    node: str = "n1",
    *,
    start: float = 0.0,
    first: int = 1,
) -> float:
    """Feed one reading per half second from ``start`` (sample numbers ``first``, ...); the
    time after."""
    for index, cpu in enumerate(cpu_percents):
        governor.reading(node, cpu, first + index, start + index * 0.5)
    return start + len(cpu_percents) * 0.5


def test_room_on_the_cpu_brings_the_pages_near_the_room_line_in_one_window() -> None:
    governor = PageGovernor(window_s=1.0, grow_after=1)
    now = window(governor, [40.0, 40.0, 40.0])
    # 4 pages at 40 %: about 8 would bring the CPU to 80 %
    assert governor.step("n1", now, pages=4, waiting=True) == 4
    assert governor.last["n1"] == {"cpu": 0.4, "waiting": True, "step": 4}


def test_just_under_the_room_line_is_still_one_page_more() -> None:
    governor = PageGovernor(window_s=1.0, grow_after=1)
    now = window(governor, [78.0, 79.0, 79.0])
    assert governor.step("n1", now, pages=6, waiting=True) == 1


def test_a_saturated_cpu_gives_one_page_back_per_window() -> None:
    governor = PageGovernor(window_s=1.0, grow_after=1)
    now = window(governor, [97.0, 99.0, 100.0])
    assert governor.step("n1", now, pages=8, waiting=True) == -1
    assert governor.step("n1", now + 0.5, pages=7, waiting=True) == 0  # a new window begins


@pytest.mark.parametrize(
    ("cpus", "waiting", "verdict"),
    [
        ([85.0, 90.0, 88.0], True, "ok"),  # between the lines: hold
        ([30.0, 30.0, 30.0], False, "ok"),  # nothing waits: a page more would idle
        ([30.0, 30.0, 30.0], True, "throttle"),  # memory is short: never a page more
    ],
)
def test_hold(cpus, waiting, verdict) -> None:
    governor = PageGovernor(window_s=1.0, grow_after=1)
    now = window(governor, cpus)
    assert governor.step("n1", now, pages=4, waiting=waiting, verdict=verdict) == 0
    assert governor.windows == 1


def test_no_step_before_a_full_window_and_a_sample_read_twice_counts_once() -> None:
    governor = PageGovernor(window_s=2.0, grow_after=1)
    governor.reading("n1", 100.0, 7, 0.0)
    for _ in range(5):  # verdicts polled faster than the monitor samples: the same sample
        governor.reading("n1", 100.0, 7, 0.2)
    governor.reading("n1", 10.0, 8, 1.0)
    assert governor.step("n1", 1.5, pages=4, waiting=True) == 0  # 1.5 s of a 2 s window
    governor.reading("n1", 10.0, 9, 2.0)
    # (100 + 10 + 10) / 3 = 40 %, not the 85 % that counting sample 7 six times would give
    assert governor.step("n1", 2.0, pages=4, waiting=True) == 4


def test_nodes_are_governed_apart() -> None:
    governor = PageGovernor(window_s=1.0, grow_after=1)
    window(governor, [99.0, 99.0, 99.0], node="hot")
    now = window(governor, [20.0, 20.0, 20.0], node="cool")
    assert governor.step("hot", now, pages=4, waiting=True) == -1
    assert governor.step("cool", now, pages=4, waiting=True) == 12
    assert governor.step("unseen", now, pages=4, waiting=True) == 0


def test_bad_lines_are_refused() -> None:
    with pytest.raises(ValueError, match="room < full"):
        PageGovernor(room=0.9, full=0.8)


def test_one_window_of_room_is_a_dip_and_two_in_a_row_are_room() -> None:
    """Observed in ``bench scaling`` at 0 ms: 4.7 s into the run, between start-up and full
    work, one window below the room line took the actor from 4 pages to 6; the CPU then
    saturated and the governor spent 3 s giving them back, 9% below 4 fixed pages."""
    governor = PageGovernor(window_s=1.0)
    now = window(governor, [50.0, 50.0, 50.0])
    assert governor.step("n1", now, pages=4, waiting=True) == 0  # one window: a dip
    now = window(governor, [50.0, 50.0, 50.0], start=now, first=4)
    assert governor.step("n1", now, pages=4, waiting=True) == 2  # two in a row: room
    now = window(governor, [99.0, 99.0, 99.0], start=now, first=7)
    assert governor.step("n1", now, pages=6, waiting=True) == -1
    now = window(governor, [50.0, 50.0, 50.0], start=now, first=10)
    assert governor.step("n1", now, pages=5, waiting=True) == 0  # the streak began again
