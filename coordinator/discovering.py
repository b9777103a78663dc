"""Discovery on the coordinator's side: one task per source, each on a ready actor, each
chunk awaited with a deadline, retried on another actor when one dies or hangs.

A source that yields nothing after its attempts still gets a record (``source:URL``,
failed, with the reason), and the summary lists it: a gallery that could not be scrolled
is never mistaken for an empty one.

A source whose discovery stopped before the gallery's end — the actor's ``CutShort``
chunk: ``timeouts.discovery`` or ``containers.limit`` — is done, and the summary lists it
under ``discovery_cut`` with the reason. The actor keeps that deadline itself; here it is
kept again, one chunk's wait later, so an actor that does not stop is given up and the
run still ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ray.exceptions import OutOfMemoryError, RayActorError, RayError

from landmark.actors.protocol import CutShort
from landmark.coordinator.crew import short_error

if TYPE_CHECKING:
    from landmark.coordinator.actor import Coordinator

logger = logging.getLogger("landmark.coordinator")


class DiscoveryOverran(Exception):
    """An actor went on sending a source's chunks past the discovery deadline."""


class DiscoveryRunner:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.skip: set[str] = set()  # sources a previous run of the job finished
        self.running = 0
        self.tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._cancelled = False
        timeouts = coordinator.job.timeouts
        # a chunk comes after a page load, a first-card wait and a scroll step at most
        self.chunk_s = (
            timeouts.navigation.total_seconds()
            + 2 * timeouts.wait_max.total_seconds()
            + timeouts.lease_margin.total_seconds()
        )
        # the actor stops at its deadline between steps, so within one more chunk's wait
        self.discovery_s = timeouts.discovery.total_seconds()

    def start(self, sources: list[str]) -> None:
        for source in sources:
            if source in self.skip:
                continue
            self.running += 1  # counted now: the loop must not see a finished run first
            task = asyncio.create_task(self._discover(source))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def notify(self) -> None:
        """An actor became ready or went away: waiting discoveries look again."""
        self._changed.set()

    def cancel(self) -> None:
        self._cancelled = True
        for task in list(self.tasks):
            task.cancel()

    async def _discover(self, source: str) -> None:
        coordinator = self.coordinator
        reason = "no live actor to discover it"
        try:
            for _attempt in range(coordinator.job.retries.max_attempts):
                actor = await self._an_actor()
                if actor is None:
                    return  # the run is ending: the source stays undiscovered, resumable
                try:
                    await self._scroll(actor, source)
                    coordinator.scheduler.gallery_opened(actor, source)
                    coordinator.store.source_done(source)
                    return
                except DiscoveryOverran:
                    self._overran(actor, source)
                    return
                except TimeoutError:
                    reason = f"{actor} sent nothing for {self.chunk_s:g}s"
                    coordinator.actor_lost(actor, f"discovery hung: {reason}")
                except (RayActorError, OutOfMemoryError) as error:
                    reason = short_error(error)
                    coordinator.actor_lost(actor, f"discovery: {reason}")
                except RayError as error:  # the page failed (crash, network): try again
                    reason = short_error(error)
                    if getattr(getattr(error, "cause", None), "retryable", True) is False:
                        break  # e.g. robots.txt disallows the source: every actor would say so
                except KeyError:  # the actor was given up between the pick and the call
                    reason = f"{actor} went away"
            self._failed(source, reason)
        finally:
            self.running -= 1
            coordinator.wake()

    async def _an_actor(self) -> str | None:
        """A ready actor, waiting for one while actors start (the run ends the wait)."""
        scheduler = self.coordinator.scheduler
        while not self._cancelled:
            actor = scheduler.discovery_actor()
            if actor is not None:
                return actor
            if self.coordinator.failure is not None:
                return None
            self._changed.clear()
            await self._changed.wait()
        return None

    async def _scroll(self, actor: str, source: str) -> None:
        """Take ``source``'s chunks as they come: each within ``chunk_s``, and the whole
        within ``discovery_s`` (counted from the first chunk if that came later) plus one
        more chunk's wait, past which DiscoveryOverran says the actor did not stop."""
        chunks = self.coordinator.crew.handle(actor).discover.remote(source)
        started = time.monotonic()
        end: float | None = None  # the whole discovery's deadline, once the first chunk came
        while True:
            wait = self.chunk_s if end is None else min(self.chunk_s, end - time.monotonic())
            try:
                ref = await asyncio.wait_for(chunks.__anext__(), max(0.0, wait))
            except StopAsyncIteration:
                return
            except TimeoutError:
                if end is not None and time.monotonic() >= end:
                    raise DiscoveryOverran(source) from None
                raise
            chunk = await asyncio.wait_for(ref, self.chunk_s)
            if end is None:
                end = max(time.monotonic(), started + self.discovery_s) + self.chunk_s
            if self._cancelled:
                return
            if isinstance(chunk, CutShort):
                self._cut(source, chunk.kind, chunk.reason)
            else:
                self.coordinator.add(chunk)

    def _overran(self, actor: str, source: str) -> None:
        """The source's time is spent: what came is kept, the actor that would not stop is
        replaced, and the source is done (cut short), not tried again."""
        allowed = f"{self.discovery_s:g}s"
        self.coordinator.actor_lost(actor, f"discovery went on past its {allowed}")
        self._cut(source, "deadline", f"discovery deadline {allowed} reached; {actor} did not stop")
        self.coordinator.store.source_done(source)

    def _cut(self, source: str, kind: str, reason: str) -> None:
        """Discovery of ``source`` stopped before its end: its containers are extracted as
        usual, and the summary and the progress line say it was cut short, and why. A limit
        the job set is no surprise; a deadline is worth a warning."""
        level = logging.WARNING if kind == "deadline" else logging.INFO
        logger.log(level, "discovery of %s cut short: %s", source, reason)
        self.coordinator.stats.cut_short(source, kind, reason)

    def _failed(self, source: str, reason: str) -> None:
        coordinator = self.coordinator
        logger.warning("source %s failed discovery: %s", source, reason)
        coordinator.stats.discovery_failures += 1
        coordinator.stats.failed_sources[source] = reason
        coordinator.write_all(coordinator.scheduler.source_failed(source, reason))
