"""The PSS bound over which a context recycles: the setting, or growth past a fresh context."""

from __future__ import annotations

from landmark.actors.recycle_bound import GROWTH, RecycleBound

MIB = 2**20


def test_the_first_reading_of_a_context_never_recycles_and_sets_its_base():
    bound = RecycleBound(setting=1536 * MIB)

    assert bound.over(4000 * MIB) is None  # a fresh context over the setting: nothing to shed
    assert bound.bound == int(4000 * MIB * GROWTH)


def test_a_small_fresh_context_keeps_the_setting_as_its_bound():
    bound = RecycleBound(setting=1536 * MIB)
    assert bound.over(500 * MIB) is None

    assert bound.bound == 1536 * MIB
    assert bound.over(1536 * MIB) is None
    reason = bound.over(1537 * MIB)
    assert reason is not None and "over 1536 MiB (the bound)" in reason


def test_growth_past_the_fresh_reading_recycles_and_a_new_context_starts_over():
    bound = RecycleBound(setting=1536 * MIB)
    bound.over(2000 * MIB)

    assert bound.over(2900 * MIB) is None  # below 1.5 x 2000
    reason = bound.over(3100 * MIB)
    assert reason is not None and "1.5× its fresh reading" in reason

    bound.restart()
    assert bound.bound == 1536 * MIB
    assert bound.over(3100 * MIB) is None  # the recycled context's first reading
    assert bound.bound == int(3100 * MIB * GROWTH)
