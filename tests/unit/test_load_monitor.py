"""LoadMonitor on synthetic readings with a driven clock: hysteresis, hold, CPU window, counters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from landmark.actors.load_monitor import Limits, LoadMonitor, Reading, Verdict
from landmark.config.job import BudgetSpec

TOTAL = 1000  # memory in "bytes": 750 = 75%
LIMITS = Limits(memory_throttle=750, memory_shed=850, cpu_throttle_percent=90.0)


def monitor(**overrides) -> LoadMonitor:
    settings = {
        "hysteresis": 0.05,  # a band of 50
        "hold": timedelta(seconds=2),
        "window": timedelta(seconds=5),
    }
    settings.update(overrides)
    return LoadMonitor(LIMITS, **settings)


def memory(used: int) -> Reading:
    return Reading(memory_used=used, memory_total=TOTAL, cpu_percent=10.0)


def cpu(percent: float) -> Reading:
    return Reading(memory_used=100, memory_total=TOTAL, cpu_percent=percent)


def test_memory_escalates_at_once_and_steps_down_through_hysteresis_and_hold():
    m = monitor()
    assert m.observe(memory(500), now=0.0) is Verdict.OK
    assert m.observe(memory(760), now=0.5) is Verdict.THROTTLE
    assert m.reason == "memory 76% ≥ throttle 75%"
    assert m.observe(memory(860), now=1.0) is Verdict.SHED
    assert m.reason == "memory 86% ≥ shed 85%"

    # Inside the band under shed (800..850): stays shed however long it lasts.
    assert m.observe(memory(820), now=10.0) is Verdict.SHED
    assert "within hysteresis of shed 85%" in m.reason
    assert m.observe(memory(801), now=20.0) is Verdict.SHED

    # Below shed - band, held long enough: one step down to throttle, not to ok.
    assert m.observe(memory(100), now=21.0) is Verdict.THROTTLE
    assert m.reason.startswith("left shed")
    # Throttle was just entered: the hold applies again before ok.
    assert m.observe(memory(100), now=22.0) is Verdict.THROTTLE
    assert m.reason.startswith("holding throttle")
    assert m.observe(memory(100), now=23.0) is Verdict.OK
    assert m.reason == "memory 10% < throttle 75%"

    assert (m.shed_events, m.throttle_events) == (1, 1)
    assert m.time_in_state[Verdict.SHED] == pytest.approx(20.0)
    assert m.time_in_state[Verdict.THROTTLE] == pytest.approx(2.5)
    assert m.time_in_state[Verdict.OK] == pytest.approx(0.5)


def test_throttle_band_keeps_throttle_until_memory_falls_below_it():
    m = monitor()
    m.observe(memory(760), now=0.0)
    assert m.observe(memory(710), now=5.0) is Verdict.THROTTLE  # 700..750 is the band
    assert m.observe(memory(699), now=6.0) is Verdict.OK


def test_no_step_down_inside_the_hold_even_when_memory_drops():
    m = monitor()
    m.observe(memory(900), now=0.0)
    assert m.observe(memory(100), now=1.9) is Verdict.SHED
    assert m.reason.startswith("holding shed")
    assert m.observe(memory(100), now=2.0) is Verdict.THROTTLE


def test_flapping_readings_count_one_event_per_real_episode():
    m = monitor()
    now = 0.0
    for used in [760, 740, 760, 730, 755, 745] * 5:  # all inside throttle's band
        m.observe(memory(used), now)
        now += 0.5
    assert m.verdict is Verdict.THROTTLE
    assert m.throttle_events == 1
    m.observe(memory(900), now)
    m.observe(memory(900), now + 0.5)
    assert m.shed_events == 1


def test_memory_straight_to_shed_from_ok():
    m = monitor()
    m.observe(memory(100), now=0.0)
    assert m.observe(memory(950), now=0.5) is Verdict.SHED
    assert (m.shed_events, m.throttle_events) == (1, 0)


def test_cpu_spike_shorter_than_the_window_does_not_throttle():
    m = monitor()
    now = 0.0
    # 2 s above the limit inside a 5 s window: 40% < the 50% overload ratio.
    for percent in [20, 20, 100, 100, 100, 100, 20, 20, 20, 20, 20, 20]:
        assert m.observe(cpu(percent), now) is Verdict.OK
        now += 0.5
    assert m.throttle_events == 0


def test_cpu_spike_right_after_start_does_not_throttle():
    m = monitor()
    assert m.observe(cpu(100), now=0.0) is Verdict.OK
    assert m.observe(cpu(100), now=0.5) is Verdict.OK
    assert m.observe(cpu(100), now=1.0) is Verdict.OK


def test_sustained_cpu_throttles_and_never_sheds():
    m = monitor()
    now = 0.0
    verdicts = []
    for _ in range(60):  # 30 s flat out
        verdicts.append(m.observe(cpu(100), now))
        now += 0.5
    assert Verdict.THROTTLE in verdicts
    assert Verdict.SHED not in verdicts
    assert m.verdict is Verdict.THROTTLE
    assert m.reason == "cpu above 90% for 100% of the last 5s"
    assert (m.throttle_events, m.shed_events) == (1, 0)
    # The first throttle came once more than half the window was over the limit.
    assert verdicts.index(Verdict.THROTTLE) == 6  # t = 3.0 s: 3 s of overload / 5 s


def test_cpu_throttle_clears_once_the_window_cools_and_the_hold_passed():
    m = monitor()
    now = 0.0
    for _ in range(20):
        m.observe(cpu(100), now)
        now += 0.5
    assert m.verdict is Verdict.THROTTLE
    seen = []
    for _ in range(20):
        seen.append(m.observe(cpu(10), now))
        now += 0.5
    assert seen[0] is Verdict.THROTTLE  # the window still remembers the overload
    assert seen[-1] is Verdict.OK


def test_memory_reason_wins_over_cpu_when_both_press():
    m = monitor()
    now = 0.0
    for _ in range(20):
        m.observe(Reading(memory_used=900, memory_total=TOTAL, cpu_percent=100), now)
        now += 0.5
    assert m.verdict is Verdict.SHED
    assert m.reason == "memory 90% ≥ shed 85%"


def test_cpu_limit_of_100_percent_never_throttles():
    m = LoadMonitor(Limits(750, 850, 100.0))
    for step in range(40):
        assert m.observe(cpu(100), now=step * 0.5) is Verdict.OK


def test_limits_from_budget_resolve_shares_and_absolutes():
    budget = BudgetSpec(memory_throttle="60%", memory_shed="3GiB", cpu_throttle="80%")
    limits = Limits.from_budget(budget, memory_total=4 * 2**30)
    assert limits.memory_throttle == int(0.6 * 4 * 2**30)
    assert limits.memory_shed == 3 * 2**30
    assert limits.cpu_throttle_percent == pytest.approx(80.0)
    defaults = Limits.from_budget(BudgetSpec(), memory_total=1000)
    assert (defaults.memory_throttle, defaults.memory_shed) == (750, 850)


def test_limits_reject_throttle_above_shed():
    budget = BudgetSpec(memory_throttle="3GiB", memory_shed="2GiB")
    with pytest.raises(ValueError, match=r"memory_throttle .* must not exceed memory_shed"):
        Limits.from_budget(budget, memory_total=8 * 2**30)


def test_new_limits_apply_on_the_next_reading():
    m = monitor()
    assert m.observe(memory(600), now=0.0) is Verdict.OK
    m.limits = Limits(memory_throttle=500, memory_shed=550, cpu_throttle_percent=90.0)
    assert m.observe(memory(600), now=0.5) is Verdict.SHED


def test_stats_are_plain_values():
    m = monitor()
    m.observe(memory(900), now=0.0)
    m.observe(memory(900), now=1.0)
    stats = m.stats()
    assert stats["verdict"] == "shed"
    assert stats["shed_events"] == 1
    assert stats["time_in_state"] == {"ok": 0.0, "throttle": 0.0, "shed": 1.0}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"hysteresis": 1.5}, "hysteresis"),
        ({"window": timedelta(0)}, "window"),
        ({"cpu_overload_ratio": 0.0}, "cpu_overload_ratio"),
    ],
)
def test_bad_settings_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        monitor(**setting)
