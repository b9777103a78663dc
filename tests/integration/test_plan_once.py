"""The extraction plan travels once per document: then its key alone, resent whenever the
page lost it (a navigation, a reload, an eviction), never a failure; and the trimmed answer
reads exactly as the page's own (Chromium, no Ray)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from landmark.actors.extraction import (
    LANDMARKS_JS,
    PLANS_KEPT,
    field_plan,
    resolve_now,
    settle_and_resolve,
)
from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.config.fields import FieldSpec

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).parent.parent / "browser" / "fixtures"
RELATIONS = (FIXTURES / "relations.html").as_uri()
# Fills the page's store of plans with others: every plan held before is evicted.
FORGET = "(n) => { for (let i = 0; i < n; i++) window.__landmark.plan('other' + i, {}); }"
OWN_RESOLVE = "(spec) => window.__landmark.resolve(spec)"


class RecordingPage:
    """A page whose evaluate calls are recorded: was the plan sent, or only its key?"""

    def __init__(self, page: Any, *, events: bool = True) -> None:
        self.page = page
        self.sent: list[bool] = []
        if events:  # a real page tells of its navigations; a bare stand-in does not
            self.on = page.on

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        if isinstance(arg, list) and len(arg) >= 2 and isinstance(arg[0], str):
            self.sent.append(arg[1] is not None)
        return await self.page.evaluate(expression, arg)


def fields(*names: str) -> list[FieldSpec]:
    labels = {"created": "Creation Time", "prompt": "Prompt", "model": "Model", "seed": "Seed"}
    return [FieldSpec(name=name, labels=[labels[name]]) for name in names]


@pytest.fixture
def installed(run, browser):
    """A page of a context with landmarks.js as its init script, as a session makes it."""
    context = run(browser.new_context())
    run(context.add_init_script(script=LANDMARKS_JS))
    page = run(context.new_page())
    run(page.goto(RELATIONS))
    yield page
    run(context.close())


def test_plan_once_then_its_key(run, installed):
    page = RecordingPage(installed)
    plan = field_plan(fields("created", "model", "seed"))
    first = run(resolve_now(page, "#next", plan))
    second = run(resolve_now(page, "#next", plan))
    assert page.sent == [True, False]
    assert first.fields == second.fields
    assert first.fields["model"]["value"] == "Flux.1 dev"
    # another plan (a cached path learned) is another key: sent once, then its key
    cached = field_plan(fields("model"), None, {"model": first.fields["model"]["path"]})
    run(resolve_now(page, "#next", cached))
    hit = run(resolve_now(page, "#next", cached))
    assert page.sent == [True, False, True, False]
    assert hit.fields["model"] == {**first.fields["model"], "strategy": "cached"}
    # the first plan is still held
    run(resolve_now(page, "#next", plan))
    assert page.sent[-1] is False


def test_navigation_and_reload_send_it_again_in_the_same_call(run, installed):
    page = RecordingPage(installed)
    plan = field_plan(fields("created", "prompt"))
    before = run(resolve_now(page, "#next", plan))
    run(installed.goto(RELATIONS))
    after_goto = run(resolve_now(page, "#next", plan))
    run(installed.reload())
    after_reload = run(resolve_now(page, "#next", plan))
    assert page.sent == [True, True, True]  # one call each: the navigation was seen
    assert before.fields == after_goto.fields == after_reload.fields


def test_a_document_that_lost_the_plan_asks_for_it(run, installed):
    """A stand-in that hears of no navigation sends the key; the page answers that it lacks
    the plan and gets it in a second call: the same answer, no failure."""
    page = RecordingPage(installed, events=False)
    plan = field_plan(fields("created", "model"))
    before = run(resolve_now(page, "#next", plan))
    run(installed.reload())
    after = run(resolve_now(page, "#next", plan))
    assert page.sent == [True, False, True]
    assert before.fields == after.fields
    settled = run(
        settle_and_resolve(
            page, "#next", plan, timeout=timedelta(seconds=5), quiet=timedelta(milliseconds=50)
        )
    )
    assert page.sent[-1] is False
    assert settled.state == "ready" and settled.fields == before.fields


def test_an_evicted_plan_is_sent_again(run, installed):
    page = RecordingPage(installed)
    plan = field_plan(fields("seed"))
    before = run(resolve_now(page, "#next", plan))
    run(installed.evaluate(FORGET, PLANS_KEPT))
    after = run(resolve_now(page, "#next", plan))
    assert page.sent == [True, False, True]
    assert before.fields == after.fields


def test_a_page_without_landmarks_js_is_given_both(run, page):
    """No init script: asked, installed, asked again with the plan; then the key alone."""
    recorded = RecordingPage(page)
    run(page.goto(RELATIONS))
    plan = field_plan(fields("model"))
    first = run(resolve_now(recorded, "#next", plan))
    second = run(resolve_now(recorded, "#next", plan))
    assert recorded.sent == [True, True, False]
    assert first.fields == second.fields and first.fields["model"]["value"] == "Flux.1 dev"


@pytest.mark.parametrize("root", ["#next", "#after", "#dl", "#rows", "#decoys", "#variants"])
def test_the_trimmed_answer_is_the_pages_own(run, installed, root):
    """What Python reads equals what resolve() itself returns, field by field (rootError,
    which Python never read, aside)."""
    specs = [
        FieldSpec(name=name, labels=labels, relation=relation)
        for name, labels, relation in [
            ("created", ["Creation Time", "Created"], "next"),
            ("prompt", ["Prompt"], "next"),
            ("seed", ["Seed"], "next"),
            ("isbn", ["ISBN-13"], "after"),
            ("width", ["Width"], "cell"),
            ("model", ["Model", "Model name"], "next"),
            ("none", ["No such label"], "next"),
        ]
    ]
    plan = field_plan(specs)
    own = run(
        installed.evaluate(
            "(spec) => window.__landmark.resolve(spec)", {"root": root, "fields": plan}
        )
    )
    read = run(resolve_now(installed, root, plan))
    assert read.fields == own["fields"]
    assert read.root_found == own["rootFound"]
    # and with the paths it found cached: a cached field's path comes back from the plan
    paths = {n: f["path"] for n, f in own["fields"].items() if f["strategy"] == "landmark"}
    cached_plan = field_plan(specs, None, paths)
    own = run(
        installed.evaluate(
            "(spec) => window.__landmark.resolve(spec)", {"root": root, "fields": cached_plan}
        )
    )
    read = run(resolve_now(installed, root, cached_plan))
    assert read.fields == own["fields"]


def test_click_mode_survives_a_page_that_lost_its_plans(run, found_browser, tmp_path):
    """The Gallery site in click mode: after every page forgot its plans, the next batch is
    read just as well (the plan is asked for before anything is clicked)."""
    from landmark.actors.worker import BrowserWorker
    from landmark.config.loading import load_job

    example = Path(__file__).parents[2] / "config" / "examples" / "gallery.yaml"
    with GallerySite(SiteConfig(items=24, label_variants=True, missing_rate=0.1)) as site:
        job = load_job(
            example,
            {"sources.urls": [site.url], "output.dir": str(tmp_path), "budget.pages_per_actor": 2},
        )
        worker = BrowserWorker(job, "plan-test", found=found_browser)
        run(worker.start())
        try:

            async def everything():
                containers = [c async for chunk in worker.discover(site.url) for c in chunk]
                records = await worker.extract(containers[:12])
                for slot in worker.session._slots:
                    await slot.page.evaluate(FORGET, PLANS_KEPT)
                return records + await worker.extract(containers[12:])

            records = run(everything())
        finally:
            run(worker.close())
        result = score(site.truth(), [asdict(record) for record in records])
    assert [r.status for r in records if r.status == "failed"] == []
    assert (result.accuracy, result.lost, result.duplicates) == (1.0, 0, 0), result.wrong
