"""The plan's key and the page's trimmed answer, in pure Python (no browser)."""

from __future__ import annotations

from landmark.actors.extraction import field_plan, parse_settled, plan_key
from landmark.config.fields import FieldSpec


def plan_of(**cached: list[int]):
    fields = [FieldSpec(name="model", labels=["Model"]), FieldSpec(name="seed", labels=["Seed"])]
    return field_plan(fields, None, cached or None)


def test_plan_key_is_the_plans_own_digest():
    spec = {"root": "#panel", "fields": plan_of()}
    assert plan_key(spec) == plan_key({"root": "#panel", "fields": plan_of()})
    assert len(plan_key(spec)) == 16
    # anything that changes what the page would do is another plan
    assert plan_key(spec) != plan_key({"root": "#other", "fields": plan_of()})
    assert plan_key(spec) != plan_key({"root": "#panel", "fields": plan_of(model=[0, 1])})
    learned = plan_of()
    learned[0]["order"] = ["css", "landmark"]
    assert plan_key(spec) != plan_key({"root": "#panel", "fields": learned})


def test_trimmed_answer_gets_every_key_back():
    """wire() leaves out nulls and a cached field's path; Python restores them."""
    plan = plan_of(seed=[2, 0])
    answer = {
        "state": "timeout",
        "result": {
            "fields": {
                "model": {"value": "Flux", "strategy": "landmark", "path": [1, 0]},
                "seed": {"value": "42", "strategy": "cached"},
                "gone": {"error": "label not found"},
                "both": {
                    "value": "a",
                    "strategy": "landmark",
                    "path": [3],
                    "others": ["b"],
                    "label": "both",
                },
            },
            "rootFound": True,
        },
        "errorText": None,
        "waitedMs": 12.5,
    }
    settled = parse_settled(answer, plan)
    assert settled.fields == {
        "model": {"value": "Flux", "strategy": "landmark", "error": None, "path": [1, 0]},
        "seed": {"value": "42", "strategy": "cached", "error": None, "path": [2, 0]},
        "gone": {"value": None, "strategy": None, "error": "label not found", "path": None},
        "both": {
            "value": "a",
            "strategy": "landmark",
            "error": None,
            "path": [3],
            "others": ["b"],
            "label": "both",
        },
    }
    assert (settled.state, settled.waited_ms, settled.root_found) == ("timeout", 12.5, True)
    assert settled.fields["seed"]["path"] is not plan[1]["cachedPath"]  # a copy


def test_untrimmed_answer_reads_the_same():
    raw = {"value": "Flux", "strategy": "landmark", "error": None, "path": [1, 0]}
    answer = {"state": "ready", "result": {"fields": {"model": raw}, "rootFound": True}}
    assert parse_settled(answer).fields == {"model": raw}
