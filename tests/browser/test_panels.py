"""Click mode with the panels real pages use: a native ``<dialog>`` (closed in place, deaf to
a synthetic Escape), one closed only by ``dialog.close()``, and a panel hidden by an
attribute. Each used to fail every card after the first with "previous panel did not
close" (a closed dialog stays in the DOM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_worker import assert_matches_truth, extract_in_batches, gallery_job
from worker_helpers import PageServer, discover_all, guarded, item_page, self_job

from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.config.job import JobSpec
from landmark.config.records import Status

pytestmark = pytest.mark.browser


def test_the_natural_job_reads_a_gallery_whose_panel_is_a_native_dialog(run, worker_for, tmp_path):
    config = SiteConfig(items=24, page_size=12, panel="dialog")
    with GallerySite(config) as site:
        job = gallery_job(site.url, tmp_path, **{"containers.panel_selector": "dialog"})
        worker = worker_for(job)
        containers = [c for chunk in run(discover_all(worker, site.url)) for c in chunk]
        records = run(extract_in_batches(worker, containers))
        truth = site.truth()
    assert len(records) == config.items
    assert_matches_truth(truth, records)


CARDS = "".join(f'<a href="#" data-id="c{i}">card {i}</a> ' for i in range(6))
OPEN_SCRIPT = """
<script>
  for (const card of document.querySelectorAll('[data-id]')) {
    card.addEventListener('click', (event) => {
      event.preventDefault();
      const panel = document.querySelector('.panel');
      panel.querySelector('dd').textContent = 'Item ' + card.dataset.id;
      SHOW;
    });
  }
</script>
"""


def panel_page(panel: str, show: str, extra: str = "") -> str:
    return f"<!doctype html><body>{CARDS}{panel}{OPEN_SCRIPT.replace('SHOW', show)}{extra}</body>"


PAGES = {
    # a modal dialog with no close control at all: only dialog.close() closes it
    "bare-dialog": panel_page(
        '<dialog class="panel"><dl><dt>Title</dt><dd></dd></dl></dialog>', "panel.showModal()"
    ),
    # a dialog whose own form button closes it
    "form-dialog": panel_page(
        '<dialog class="panel"><form method="dialog"><button>OK</button></form>'
        "<dl><dt>Title</dt><dd></dd></dl></dialog>",
        "panel.showModal()",
    ),
    # a div shown by removing `hidden`, and hidden again by Escape
    "hidden-attribute": panel_page(
        '<div class="panel" hidden><dl><dt>Title</dt><dd></dd></dl></div>',
        "panel.hidden = false",
        "<script>document.addEventListener('keydown', (e) => { if (e.key === 'Escape') "
        "document.querySelector('.panel').hidden = true; });</script>",
    ),
}


def click_job(url: str, tmp: Path, **overrides: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "panels",
        "sources": {"urls": [url]},
        "containers": {"open": "click", "panel_selector": ".panel"},
        "fields": [{"name": "title", "labels": ["Title"]}],
        "budget": {"pages_per_actor": 1},
        "output": {"dir": str(tmp)},
    }
    data["containers"].update(overrides)
    return JobSpec.model_validate(data)


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_a_panel_closed_in_place_counts_as_closed(run, worker_for, tmp_path, kind):
    with PageServer({"/": PAGES[kind]}) as server:
        worker = worker_for(click_job(server.url, tmp_path))
        containers = [c for chunk in run(discover_all(worker, server.url)) for c in chunk]
        records = guarded(run, worker.extract(containers))
    assert [(r.status, r.fields["title"]) for r in records] == [
        (Status.OK, f"Item c{i}") for i in range(6)
    ], [r.errors for r in records]


# -- ids and scope -------------------------------------------------------------------------
LINKED_CARDS = "".join(f'<a href="/item/it{i}">card {i}</a> ' for i in range(3))


def test_id_pattern_takes_a_stable_id_from_the_link(run, worker_for, tmp_path):
    """Without it, ``id_from: link`` gives the absolute URL: host and port in every id."""
    pages = {"/": f"<!doctype html><body>{LINKED_CARDS}</body>"}
    pages |= {f"/item/it{i}": item_page(f"Item {i}") for i in range(3)}
    with PageServer(pages) as server:
        job = self_job(
            server.url,
            tmp_path,
            **{
                "containers.open": "link",
                "containers.selector": "a[href^='/item/']",
                "containers.id_from": "link",
                "containers.id_pattern": r"/item/(\w+)$",
            },
        )
        worker = worker_for(job)
        containers = [c for chunk in run(discover_all(worker, server.url)) for c in chunk]
        records = guarded(run, worker.extract(containers))
    assert [(r.id, r.fields["title"]) for r in records] == [
        (f"it{i}", f"Item {i}") for i in range(3)
    ]


def test_scope_keeps_the_label_search_out_of_a_sidebar(run, worker_for, tmp_path):
    decoy = "<nav><ul><li><a href='#'>Title</a></li><li><a href='#'>Top rated</a></li></ul></nav>"
    page = (
        item_page("Real title")
        .replace("<body>", f"<body>{decoy}<main>")
        .replace("</body>", "</main></body>")
    )
    with PageServer({"/p/42": page}) as server:
        url = server.url + "p/42"
        job = self_job(
            url, tmp_path, **{"containers.scope": "main", "containers.id_pattern": r"/p/(\d+)"}
        )
        worker = worker_for(job)
        [chunk] = run(discover_all(worker, url))
        [record] = guarded(run, worker.extract(chunk))
    assert (record.id, record.status, record.fields["title"]) == ("42", Status.OK, "Real title")
