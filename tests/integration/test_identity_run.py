"""Crawl identity through a whole run (real Ray, real Chromium, the Gallery site): the job's
user agent, extra header and logged-in cookie (a storage state read on the driver and
carried to the actors with the job) reach the site on every request, and robots.txt is
obeyed — a disallowed item gets one failed record, not retried, and a disallowed source
fails its discovery with the same kind of reason."""

from __future__ import annotations

import json

import pytest
from run_helpers import run_to_end

from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.benchmarks.site.data import item_at

pytestmark = [pytest.mark.browser, pytest.mark.ray]

AGENT = "LandmarkTest/2.0"
HINT = "(set politeness.robots_txt: ignore to crawl it anyway)"


def test_identity_and_robots_txt_in_a_run(ray_session, gallery_job, read_run, tmp_path):
    state = tmp_path / "state.json"
    cookie = {"name": "session", "value": "run-login-9", "domain": "127.0.0.1", "path": "/"}
    state.write_text(json.dumps({"cookies": [cookie]}))
    base = SiteConfig(items=8)
    refused_item = item_at(base, 1)
    robots = f"User-agent: LandmarkTest\nDisallow: /item/{refused_item.id}\nDisallow: /?blocked\n"
    config = SiteConfig(items=8, robots_txt=robots, log_requests=True)
    with GallerySite(config) as site:
        origin = site.url.rstrip("/")
        blocked_source = f"{site.url}?blocked=1"
        job = gallery_job(
            site.url,
            **{
                "sources.urls": [site.url, blocked_source],
                "containers.open": "link",
                "budget.actors": 1,
                "budget.pages_per_actor": 2,
                "browser.user_agent": AGENT,
                "browser.headers": {"X-Crawl-Run": "run-9"},
                "browser.storage_state": str(state),
            },
        )
        run_to_end(job)
        log = site.request_log()
        finished = read_run(job, site.truth())

    by_id = {record["id"]: record for record in finished.records}
    refused = by_id.pop(refused_item.id)
    assert refused["status"] == "failed" and refused["attempts"] == 1
    assert [e["reason"] for e in refused["errors"]] == [
        f'robots.txt of {origin} disallows /item/{refused_item.id} for user agent "LandmarkTest" '
        + HINT
    ]
    source = by_id.pop(f"source:{blocked_source}")
    assert source["status"] == "failed"
    assert (
        f'robots.txt of {origin} disallows /?blocked=1 for user agent "LandmarkTest"'
        in (source["errors"][0]["reason"])
    )
    assert len(by_id) == 7 and all(r["status"] == "ok" for r in by_id.values()), by_id
    # each refusal was asked once: neither the item nor the source was tried again
    refusals = sum(actor["robots"]["disallowed"] for actor in finished.summary["actors"])
    assert refusals == 2, finished.summary["actors"]

    paths = [entry["path"] for entry in log]
    assert f"/item/{refused_item.id}" not in paths and "/?blocked=1" not in paths
    assert sum(path.startswith("/item/") for path in paths) == 7
    for entry in log:
        headers = {name.lower(): value for name, value in entry["headers"].items()}
        assert headers["user-agent"] == AGENT, entry
        assert headers["x-crawl-run"] == "run-9", entry
        assert "session=run-login-9" in headers.get("cookie", ""), entry
