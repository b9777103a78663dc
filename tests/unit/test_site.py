"""The Gallery site without a browser: determinism, paging, fault injection, knobs, images."""

from __future__ import annotations

import argparse
import json
import re
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from landmark.benchmarks.site import (
    GallerySite,
    SiteConfig,
    SiteConfigError,
    add_site_arguments,
    class_prefix,
    site_config_from_args,
    site_config_to_args,
    start_site_process,
    truth,
)
from landmark.benchmarks.site.data import DEFAULT_LABELS, LABEL_VARIANTS, item_at, latency_ms

JOB_LABELS = {  # config/examples/gallery.yaml, the job the site must satisfy
    "created": {"creation time", "created", "created at", "generated on"},
    "prompt": {"prompt", "text prompt"},
    "model": {"model", "model name"},
    "seed": {"seed"},
    "dimensions": {"dimensions", "size", "resolution"},
}
BASE = "http://127.0.0.1:9/"


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str) -> object:
    status, body = get(url)
    assert status == 200, (url, status, body[:200])
    return json.loads(body)


@pytest.fixture
def site() -> Iterator[GallerySite]:
    with GallerySite(SiteConfig(items=60, page_size=7)) as running:
        yield running


def test_same_seed_same_truth_other_seed_other_ids_and_classes():
    first = truth(SiteConfig(items=50, seed=3), BASE)
    assert first == truth(SiteConfig(items=50, seed=3), BASE)
    other = truth(SiteConfig(items=50, seed=4), BASE)
    assert {t["id"] for t in first}.isdisjoint({t["id"] for t in other})
    assert class_prefix(3) != class_prefix(4)
    assert len({t["id"] for t in first}) == 50


def test_truth_fields_are_well_formed_and_newest_first():
    rows = truth(SiteConfig(items=40), "http://127.0.0.1:8765/")
    assert [row["position"] for row in rows] == list(range(40))
    created = [row["fields"]["created"] for row in rows]
    assert created == sorted(created, reverse=True) and len(set(created)) == 40
    for row in rows:
        fields = row["fields"]
        assert re.fullmatch(r"[0-9a-f]{10}", row["id"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", fields["created"])
        assert isinstance(fields["seed"], int)
        assert re.fullmatch(r"\d+ \u00d7 \d+", fields["dimensions"])
        assert fields["image"] == f"http://127.0.0.1:8765/media/{row['id']}.png"
        assert row["fails"] == 0 and row["latency_ms"] == 0


def test_list_api_pages_cover_every_item_exactly_once(site):
    seen = []
    offset = 0
    while True:
        page = get_json(f"{site.url}api/items?offset={offset}&limit=7")
        assert page["total"] == 60
        if not page["items"]:
            break
        seen += page["items"]
        offset += len(page["items"])
    assert [item["position"] for item in seen] == list(range(60))
    assert [item["id"] for item in seen] == [row["id"] for row in site.truth()]


def test_served_truth_and_config_match_the_local_ones(site):
    assert get_json(f"{site.url}api/truth") == site.truth()
    config = get_json(f"{site.url}api/config")
    assert config["items"] == 60 and config["class_prefix"] == class_prefix(1)


def test_failing_item_returns_500_then_200_and_is_counted():
    config = SiteConfig(items=30, fail_rate=1.0, fail_attempts=2)
    with GallerySite(config) as running:
        row = running.truth()[5]
        assert row["fails"] == 2
        statuses = [get(f"{running.url}api/item/{row['id']}")[0] for _ in range(3)]
        assert statuses == [500, 500, 200]
        page_status, body = get(f"{running.url}item/{running.truth()[6]['id']}")
        assert page_status == 500 and b'role="alert"' in body
        stats = get_json(f"{running.url}api/stats")
        assert stats["item_attempts"] == 4 and stats["failures_served"] == 3
        assert stats["requests"]["api_item"] == 3 and stats["requests"]["item_page"] == 1


def test_fail_rate_is_roughly_the_share_of_failing_items():
    rows = truth(SiteConfig(items=2000, fail_rate=0.2), BASE)
    share = sum(row["fails"] > 0 for row in rows) / len(rows)
    assert 0.17 < share < 0.23


def test_missing_fields_are_none_in_truth_and_absent_from_the_item_page():
    config = SiteConfig(items=80, missing_rate=0.5, decoys=False)
    rows = truth(config, BASE)
    missing = [row for row in rows if None in row["fields"].values()]
    assert 25 < len(missing) < 55
    for row in missing:
        absent = [name for name, value in row["fields"].items() if value is None]
        assert len(absent) == 1 and absent[0] in {"prompt", "model", "seed", "dimensions"}
    with GallerySite(config) as running:
        for row in missing[:8]:
            status, body = get(f"{running.url}item/{row['id']}")
            labels = re.findall(r'-label">([^<]+)<', body.decode())
            absent = next(k for k, v in row["fields"].items() if v is None)
            assert status == 200 and DEFAULT_LABELS[absent] not in labels and len(labels) == 4


def test_label_variants_vary_and_all_fit_the_example_job():
    config = SiteConfig(items=200, label_variants=True)
    used: dict[str, set[str]] = {field: set() for field in LABEL_VARIANTS}
    for position in range(config.items):
        for field, label in item_at(config, position).labels.items():
            used[field].add(label)
    for field, labels in used.items():
        assert labels == set(LABEL_VARIANTS[field]), field
        assert {label.lower().rstrip(":") for label in labels} <= JOB_LABELS[field]
    plain = item_at(SiteConfig(items=5), 0).labels
    assert plain == DEFAULT_LABELS


def test_decoy_row_is_hidden_and_wrong_and_can_be_turned_off():
    item = item_at(SiteConfig(items=5), 2)
    decoys = [row for row in item.rows() if row.hidden]
    assert len(decoys) == 1 and decoys[0].label == "Model" and decoys[0].value != item.model
    assert not any(row.hidden for row in item_at(SiteConfig(items=5, decoys=False), 2).rows())


def test_latency_follows_the_configured_formula():
    config = SiteConfig(
        items=100, latency_ms=200, jitter="none", age_penalty=1.0, slow_rate=0.3, slow_factor=4
    )
    rows = truth(config, BASE)
    slow = 0
    for row in rows:
        age = 1 + row["position"] / 100
        ratio = row["latency_ms"] / (200 * age)
        assert ratio == pytest.approx(1.0) or ratio == pytest.approx(4.0)
        slow += ratio == pytest.approx(4.0)
    assert 15 < slow < 45
    uniform = SiteConfig(items=300, latency_ms=100)
    draws = [latency_ms(uniform, position) for position in range(300)]
    assert all(50 <= draw <= 150 for draw in draws) and max(draws) - min(draws) > 50


def test_unknown_ids_and_routes_are_404(site):
    for path in ("api/item/0123456789", "item/zzz", "thumb/nope.png", "media/0.png", "nope"):
        assert get(site.url + path)[0] == 404, path
    assert get(f"{site.url}api/items?offset=-1")[0] == 400


def test_images_are_valid_distinct_pngs(site):
    ids = [row["id"] for row in site.truth()[:2]]
    images = [get(f"{site.url}media/{item}.png")[1] for item in ids]
    thumb = get(f"{site.url}thumb/{ids[0]}.png")[1]
    for png, size in ((images[0], 256), (images[1], 256), (thumb, 64)):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == (size, size)
        length = struct.unpack(">I", png[33:37])[0]
        assert png[37:41] == b"IDAT"
        assert len(zlib.decompress(png[41 : 41 + length])) == size * (1 + 3 * size)
    assert images[0] != images[1]


def test_gallery_page_carries_the_seeds_class_prefix(site):
    status, body = get(site.url)
    assert status == 200 and f'class="{class_prefix(1)}-scroller"'.encode() in body


@pytest.mark.parametrize(
    "knobs",
    [
        {"items": 0},
        {"fail_rate": 1.5},
        {"jitter": "gaussian"},
        {"latency_ms": -1},
        {"slow_factor": 0.5},
        {"page_size": 0},
        {"colour": "red"},
    ],
)
def test_knobs_are_validated(knobs):
    with pytest.raises(ValidationError):
        SiteConfig(**knobs)


def test_flags_round_trip_and_bad_flags_name_the_flag():
    parser = add_site_arguments(argparse.ArgumentParser())
    config = SiteConfig(items=9, seed=7, latency_ms=12.5, jitter="none", virtualize=True)
    config = config.model_copy(update={"decoys": False, "label_variants": True})
    args = parser.parse_args(site_config_to_args(config))
    assert site_config_from_args(args) == config
    assert args.port == 8765 and args.host == "127.0.0.1"
    assert site_config_from_args(parser.parse_args([])) == SiteConfig()
    with pytest.raises(SiteConfigError, match="--missing-rate"):
        site_config_from_args(parser.parse_args(["--missing-rate", "3"]))


def test_site_process_serves_and_stops():
    process = start_site_process(SiteConfig(items=12, seed=5))
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", process.url)
        assert get_json(f"{process.url}api/truth") == process.truth()
    finally:
        process.stop()
    assert process.process.returncode == 0
