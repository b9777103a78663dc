"""``landmark bench profile --quick`` end to end: both contenders measured, every instrument read.

This checks that the cost breakdown is made of real readings — containers run, the
Playwright client's calls counted, the renderers' own task time read over CDP, a trace
taken and reduced — not how fast anything is: no figure here has a threshold. No Ray
is started (the landmark side is a BrowserWorker in the profile's process).
"""

from __future__ import annotations

import json

import pytest

from landmark.benchmarks.__main__ import main

pytestmark = [pytest.mark.browser]


def test_profile_quick_measures_both_contenders(tmp_path, capsys):
    out = tmp_path / "profile.json"
    summary = tmp_path / "summary.json"  # a real run's summary, as `landmark demo` leaves it
    coordinator = {"us_per_record": 1375.0, "core_share": 0.04, "wakes": {"event": 146}}
    run = {"records": 400, "per_minute": 1000.0, "actors": [{}], "coordinator": coordinator}
    summary.write_text(json.dumps(run), encoding="utf-8")
    argv = ["profile", "--quick", "--no-py-spy", "--out", str(out), "--summary", str(summary)]
    argv += ["--results-dir", str(tmp_path / "results")]

    status = main(argv)

    document = json.loads(out.read_text(encoding="utf-8"))
    assert status == 0, document["failures"]
    contenders = document["contenders"]
    assert sorted(contenders) == ["bare", "landmark"]
    for name, figures in contenders.items():
        assert figures["containers"] == figures["records"] == document["params"]["items"] > 0
        assert figures["failed"] == 0, name
        assert figures["protocol"]["calls_total"] >= figures["containers"], name
        assert figures["protocol"]["calls"] > 0, name
        assert figures["browser"]["task_ms"] > 0, name
        assert figures["browser"]["layouts"] > 0, name
        assert figures["python_cpu_ms"] > 0, name
        assert figures["trace"]["cpu_ms"].get("renderer main", 0) > 0, name
        assert figures["network"]["site_requests"]["api_item"] > 0, name
    assert "Frame.evaluateExpression" in contenders["landmark"]["protocol"]["by_kind"]
    assert contenders["landmark"]["ray"]["calls"] > 0
    assert document["coordinator"]["cpu_ms"] == pytest.approx(1.375)
    assert document["coordinator"]["wakes"] == pytest.approx(146 / 400)
    saved = list((tmp_path / "results").glob("profile-*.json"))  # where the report finds it
    assert [json.loads(path.read_text())["scenario"] for path in saved] == ["profile"]
    printed = capsys.readouterr().out
    assert "landmark bench profile" in printed and "getMetrics" in printed
