"""Any process may die: the ``landmark run`` driver killed (SIGKILL) or stopped (Ctrl-C) at a
random moment, then the same command again, on both stores. Every container ends with
exactly one record, and none finished by the first run is opened again (the Gallery site
counts how often each item was opened).

The kill point is random; its seed is printed, and ``LANDMARK_TEST_SEED`` replays it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.config.records import Status

pytestmark = [pytest.mark.browser, pytest.mark.ray]

LANDMARK = [str(Path(sys.executable).with_name("landmark"))]
ITEMS = 150
RUN_TIMEOUT_S = 300


def write_job(tmp_path: Path, url: str, **changes: Any) -> Path:
    job = {
        "name": "resume",
        "sources": {"urls": [url]},
        "containers": {"open": "link", "selector": "[data-id]", "id_attr": "data-id"},
        "fields": [
            {"name": "prompt", "labels": ["Prompt", "Text prompt"]},
            {"name": "seed", "labels": ["Seed"], "type": "integer", "required": False},
        ],
        "budget": {"actors": 1, "pages_per_actor": 4},
        "output": {"dir": str(tmp_path / "out")},
        "cache": False,  # the second run must resume, not be served from the cache
    }
    job.update(changes)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def start(job: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LANDMARK, "run", str(job), *extra],  # not -q: the resume message is information
        cwd=job.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def site_stats(site: GallerySite) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{site.url}api/stats", timeout=10) as response:
        return json.load(response)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("how", ["sigkill", "ctrl-c"])
@pytest.mark.parametrize("backend", ["local", "redis"])
def test_the_same_command_after_a_dead_driver_finishes_the_job(tmp_path, request, backend, how):
    seed = int(os.environ.get("LANDMARK_TEST_SEED", random.randrange(1 << 30)))
    # at most half way: a clean-checkout CI run killed the driver with 40 left, and the
    # Coordinator finished those before it went down with the driver (nothing to resume)
    kill_at = random.Random(seed).randint(15, ITEMS // 2)
    print(f"kill point: {kill_at} records ({how}, {backend}); replay: LANDMARK_TEST_SEED={seed}")
    extra = ["--store", request.getfixturevalue("redis_url")] if backend == "redis" else []
    config = SiteConfig(items=ITEMS, latency_ms=80, jitter="none")
    with GallerySite(config) as site:
        job = write_job(tmp_path, site.url)
        results = tmp_path / "out" / "results.jsonl"
        first = start(job, *extra)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while lines_in(results) < kill_at:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
        _, err = first.communicate(timeout=RUN_TIMEOUT_S)
        seen_at_kill = lines_in(results)
        if how == "ctrl-c":
            assert first.returncode == 1, err
            assert "run the same command again to resume" in err, err
            assert "Traceback" not in err
            check_consistent(records(results))

        second = start(job, *extra)
        out, err = second.communicate(timeout=RUN_TIMEOUT_S)
        stats = site_stats(site)
        truth = site.truth()

    assert second.returncode == 0, out + err
    assert "resuming the run in" in err and "records already written" in err
    final = records(results)
    check_consistent(final)
    assert {r["id"] for r in final} == {item["id"] for item in truth}, "lost containers"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["records"] == ITEMS
    # the first run's records come first: what it wrote up to the kill and, for a SIGKILL,
    # what its Coordinator still flushed before it died with the driver
    assert summary["resumed"] >= seen_at_kill
    done_first = {r["id"] for r in final[: summary["resumed"]]}
    by_position = {item["id"]: item["position"] for item in truth}
    reopened = [cid for cid in done_first if str(by_position[cid]) in stats["repeated"]]
    assert reopened == [], f"{len(reopened)} containers finished in run 1 were opened again"


def check_consistent(lines: list[dict[str, Any]]) -> None:
    """One record per id; every failure says what really went wrong."""
    counts = Counter(r["id"] for r in lines)
    assert [cid for cid, n in counts.items() if n > 1] == [], "duplicated records"
    for record in lines:
        if record["status"] == Status.FAILED:
            reasons = [e["reason"] for e in record["errors"]]
            assert reasons and "before it was tried" not in reasons[0], record


def test_a_changed_job_on_an_old_output_is_refused_naming_the_change(tmp_path):
    job = write_job(tmp_path, "http://127.0.0.1:9/")
    state = tmp_path / "out" / ".landmark"
    # an unfinished run of the job, as a killed driver leaves it
    from landmark.config.loading import load_job
    from landmark.coordinator.local_store import LocalStore
    from landmark.coordinator.store import JobIdentity

    spec = load_job(job)
    store = LocalStore(spec.output.dir)
    store.open(JobIdentity.of(spec, spec.source_urls()))
    store.flush()
    store.close()
    assert state.exists()

    changed = write_job(
        tmp_path, "http://127.0.0.1:9/", fields=[{"name": "prompt", "labels": ["Caption"]}]
    )
    result = subprocess.run(
        [*LANDMARK, "run", str(changed), "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert "holds a run of a different job" in result.stderr
    assert 'fields[0].labels[0]: was "Prompt", now "Caption"' in result.stderr
    assert "--fresh" in result.stderr and "Traceback" not in result.stderr
