"""PerformanceLearner (deadlines, chain order, snapshots) and DomCache (hits, staleness, TTL)."""

from __future__ import annotations

from datetime import timedelta

from landmark.actors.dom_cache import DomCache
from landmark.actors.learner import MIN_SAMPLES, PerformanceLearner, percentile

BOUNDS = {"low": timedelta(milliseconds=100), "high": timedelta(seconds=5), "margin": 3.0}


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) in (50.0, 51.0)
    assert percentile(values, 0.95) == 95.0
    assert percentile([], 0.95) == 0.0


def test_deadline_is_the_default_until_enough_samples_then_p95_times_margin():
    learner = PerformanceLearner()
    default = timedelta(seconds=10)
    for _ in range(MIN_SAMPLES - 1):
        learner.observe("site", "settle", 0.2)
    assert learner.deadline("site", "settle", default=default, **BOUNDS) == default
    learner.observe("site", "settle", 0.2)
    assert learner.deadline("site", "settle", default=default, **BOUNDS) == timedelta(seconds=0.6)


def test_deadline_is_clamped_to_the_jobs_bounds():
    learner = PerformanceLearner()
    for _ in range(20):
        learner.observe("fast", "settle", 0.001)
        learner.observe("slow", "settle", 60.0)
    default = timedelta(seconds=10)
    assert learner.deadline("fast", "settle", default=default, **BOUNDS) == BOUNDS["low"]
    assert learner.deadline("slow", "settle", default=default, **BOUNDS) == BOUNDS["high"]


def test_the_window_follows_a_site_that_slows_down():
    learner = PerformanceLearner(window=16)
    for _ in range(16):
        learner.observe("site", "settle", 0.1)
    for _ in range(16):
        learner.observe("site", "settle", 1.0)
    assert learner.quantiles("site", "settle")[0] == 1.0


def test_chain_order_learns_which_strategy_wins_and_keeps_ties_in_job_order():
    learner = PerformanceLearner()
    assert learner.order("site", "seed") == ["landmark", "css"]
    for _ in range(10):
        learner.record_strategy("site", "seed", ["landmark", "css"], "css")
    assert learner.order("site", "seed") == ["css", "landmark"]
    assert learner.order("other", "seed") == ["landmark", "css"]


def test_snapshot_and_load_start_a_new_learner_warm():
    old = PerformanceLearner()
    for _ in range(10):
        old.observe("site", "settle", 0.3)
        old.record_strategy("site", "seed", ["landmark", "css"], "css")
    new = PerformanceLearner()
    new.load(old.snapshot())
    assert new.quantiles("site", "settle") == old.quantiles("site", "settle")
    assert new.order("site", "seed") == ["css", "landmark"]
    assert "site settle" in new.summary()["timings"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_dom_cache_keeps_landmark_paths_and_counts_hits():
    cache = DomCache(clock=Clock())
    key = DomCache.key("site", "click", "[role=dialog]")
    cache.record_fields(key, {"a": "landmark"}, {"a": [2, 1]}, offered=set())
    assert cache.field_paths(key) == {"a": [2, 1]}
    cache.record_fields(key, {"a": "cached"}, {"a": [2, 1]}, offered={"a"})
    assert (cache.hits, cache.misses, cache.stale) == (1, 1, 0)
    assert cache.stats()["hit_ratio"] == 0.5


def test_dom_cache_drops_a_stale_path_and_learns_the_new_one():
    cache = DomCache(clock=Clock())
    key = DomCache.key("site", "click", None)
    cache.record_fields(key, {"a": "landmark"}, {"a": [1]}, offered=set())
    cache.record_fields(key, {"a": "landmark"}, {"a": [3]}, offered={"a"})
    assert cache.stale == 1
    assert cache.field_paths(key) == {"a": [3]}
    cache.record_fields(key, {"a": None}, {"a": None}, offered={"a"})
    assert cache.field_paths(key) == {}


def test_dom_cache_entries_expire():
    clock = Clock()
    cache = DomCache(ttl=timedelta(seconds=10), clock=clock)
    key = DomCache.key("site", "link", None)
    cache.record_fields(key, {"a": "landmark"}, {"a": [1]}, offered=set())
    clock.now = 11
    assert cache.field_paths(key) == {}
