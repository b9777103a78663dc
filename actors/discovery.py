"""Discovery: scroll a gallery page and yield its containers in chunks as they appear.

The scrolling itself is in-page (``gallery.js``): one ``step`` call collects the cards,
scrolls a screen and waits — on a MutationObserver, with a deadline — for the list to
grow. Each call here is bounded again from the outside, because a page whose script
never returns would otherwise hold the worker for ever.

The whole of one source's discovery is bounded too: an endless feed never runs out of
cards, so scrolling stops at ``containers.limit`` or at ``timeouts.discovery`` (counted
from the call, checked between steps), and the stream ends with a ``CutShort`` chunk
that says which. What was found until then is extracted as usual.

A source page that robots.txt disallows (``politeness.robots_txt: obey``) is not opened:
discovery raises ``DiscoveryRefused``, a DiscoveryError that says it is not worth retrying.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from playwright.async_api import Error as PlaywrightError

from landmark.actors.dom_cache import DomCache
from landmark.actors.learner import Deadlines, PerformanceLearner
from landmark.actors.protocol import CutShort
from landmark.actors.robots import RobotsDisallowed
from landmark.actors.session import BrowserGone, BrowserSession, OffSiteError, Slot
from landmark.config.job import IdSource, JobSpec, OpenMode
from landmark.config.records import Container, domain_of, text_hash

EVALUATE_GRACE_S = 5.0  # beyond the in-page deadline: the round trip on a busy machine


class DiscoveryError(RuntimeError):
    """The gallery could not be scrolled; the message says why (no traceback needed)."""

    retryable = True


class DiscoveryRefused(DiscoveryError):
    """The source page may not be opened at all (its robots.txt disallows it): another
    attempt, on any actor, would get the same answer."""

    retryable = False


class Discovery:
    def __init__(
        self,
        job: JobSpec,
        session: BrowserSession,
        learner: PerformanceLearner,
        cache: DomCache,
    ) -> None:
        self.job = job
        self.session = session
        self.learner = learner
        self.cache = cache
        self.deadlines = Deadlines(learner, job.timeouts)
        self.discovered = 0

    async def discover(self, source: str) -> AsyncIterator[list[Container]]:
        """Scroll ``source``'s gallery and yield new containers in chunks as they appear."""
        spec = self.job.containers
        if spec.open is OpenMode.SELF:
            yield [Container.for_page(source, 0, spec.id_from_value(source))]
            return
        deadline = time.monotonic() + self.job.timeouts.discovery.total_seconds()
        slot = await self._acquire(source)
        domain = domain_of(source)
        try:
            if slot.gallery != source:
                await self.session.goto(slot, source)
                slot.gallery = source
            await self._wait_for_cards(slot, domain)
            seen: set[str] = set()
            run = uuid.uuid4().hex  # the page sends each card once per run (gallery.js)
            fresh = self._new_containers(source, await self._cards_now(slot, domain, run), seen)
            if fresh:  # before the first step, which may wait a whole idle period at the end
                self.discovered += len(fresh)
                yield fresh
            while True:
                step = await self._step(slot, domain, run)
                fresh = self._new_containers(source, step["cards"], seen)
                if fresh:
                    self.discovered += len(fresh)
                    yield fresh
                cut = None if step["exhausted"] else self._cut_short(len(seen), deadline)
                if step["exhausted"] or cut is not None:  # (a CutShort is an empty list)
                    self.cache.remember_layout(
                        DomCache.key(domain, "gallery", None), step["scroller"], spec.selector
                    )
                    if cut is not None:
                        yield cut
                    return
        except RobotsDisallowed as refused:
            kind = DiscoveryError if refused.retryable else DiscoveryRefused
            raise kind(f"discovery of {source} refused: {refused}") from None
        except TimeoutError:
            slot.poisoned, slot.gallery = True, None
            message = f"discovery of {source} timed out: the page stopped answering"
            raise DiscoveryError(message) from None
        except (PlaywrightError, OffSiteError) as error:
            slot.gallery = None
            if not self.session.browser_alive():
                raise BrowserGone(f"the browser died discovering {source}") from None
            raise DiscoveryError(f"discovery of {source} failed: {first_line(error)}") from None
        finally:
            await self.session.release(slot)

    def _cut_short(self, found: int, deadline: float) -> CutShort | None:
        """Why scrolling stops before the gallery's end, if it does: the job's limit, or
        the discovery deadline (an endless feed would otherwise scroll for ever)."""
        limit = self.job.containers.limit
        if limit is not None and found >= limit:
            return CutShort("limit", f"containers.limit ({limit}) reached")
        if time.monotonic() >= deadline:
            allowed = self.job.timeouts.discovery.total_seconds()
            reason = f"discovery deadline {allowed:g}s reached after {found} containers"
            return CutShort("deadline", reason)
        return None

    async def _acquire(self, source: str) -> Slot:
        async with asyncio.timeout(self.job.timeouts.container.total_seconds()):
            return await self.session.acquire(source)

    async def _step(self, slot: Slot, domain: str, run: str) -> dict[str, Any]:
        """Scroll a screen: the cards not sent before in this ``run``, and whether the
        gallery ended."""
        idle = self.deadlines(domain, "discover_idle", self.job.timeouts.discovery_idle)
        args = self.gallery_args(idle, domain) | {"run": run}
        async with asyncio.timeout(idle.total_seconds() + self._grace()):
            step = await slot.page.evaluate("(a) => window.__landmarkGallery.step(a)", args)
        if step["grewAfterMs"] is not None:
            self.learner.observe(domain, "discover_idle", step["grewAfterMs"] / 1000)
        return step

    async def _cards_now(self, slot: Slot, domain: str, run: str) -> list[dict]:
        args = self.gallery_args(self.job.timeouts.discovery_idle, domain) | {"run": run}
        async with asyncio.timeout(self._grace()):
            return await slot.page.evaluate("(a) => window.__landmarkGallery.cards(a)", args)

    def _grace(self) -> float:
        return EVALUATE_GRACE_S + self.job.timeouts.navigation.total_seconds()

    async def _wait_for_cards(self, slot: Slot, domain: str) -> None:
        """The first card, before the scroll container is chosen: it is found from a card."""
        timeout = self.deadlines(domain, "first_card")
        started = time.monotonic()
        args = {
            "cardSelector": self.job.containers.selector,
            "readyMs": timeout.total_seconds() * 1000,
        }
        async with asyncio.timeout(timeout.total_seconds() + self._grace()):
            found = await slot.page.evaluate("(a) => window.__landmarkGallery.ready(a)", args)
        if not found:
            raise DiscoveryError(
                f"no container matching {self.job.containers.selector!r} appeared on "
                f"{slot.page.url} within {timeout.total_seconds():g}s"
            )
        self.learner.observe(domain, "first_card", time.monotonic() - started)

    def gallery_args(self, idle: timedelta, domain: str) -> dict[str, Any]:
        """Arguments for gallery.js; the scroll container is the job's, else the one discovery
        settled on for this domain (DomCache), else gallery.js finds it again."""
        spec = self.job.containers
        layout = self.cache.layout(DomCache.key(domain, "gallery", None))
        return {
            "cardSelector": spec.selector,
            "scrollContainer": spec.scroll_container or (layout and layout.scroll_container),
            "linkSelector": spec.link_selector,
            "idAttr": spec.id_attr if spec.id_from is IdSource.ATTR else None,
            "wantText": spec.id_from is IdSource.TEXT_HASH,
            "idleMs": idle.total_seconds() * 1000,
        }

    def _new_containers(self, source: str, cards: list[dict], seen: set[str]) -> list[Container]:
        spec = self.job.containers
        limit = spec.limit
        fresh = []
        for card in cards:
            if limit is not None and len(seen) >= limit:
                break
            if spec.id_from is IdSource.ATTR:
                identity = spec.id_from_value(card["attr"]) or card["attr"]
            elif spec.id_from is IdSource.LINK:
                identity = spec.id_from_value(card["href"]) or card["href"]
            else:
                text = card["text"] or ""
                identity = spec.id_from_value(text) or text_hash(text)
            if not identity or identity in seen:
                continue
            seen.add(identity)
            fresh.append(
                Container(
                    id=identity,
                    source=source,
                    position=len(seen) - 1,
                    open=spec.open.value,
                    url=card["href"],
                )
            )
        return fresh


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
