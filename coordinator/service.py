"""The service behind ``landmark serve``: jobs submitted over HTTP run concurrently on one
warm pool of actors, each under its share of the pool's pages.

Each running job has its own Coordinator (the one ``landmark run`` uses, with its ledger,
store, per-domain limits and exactly-once records), given a
:class:`~coordinator.pool_view.PoolShare` instead of actors of its own. The service decides
who runs and with how many pages (:mod:`~coordinator.shares`), pushes changes to the
Coordinators, replaces pool actors that die (:mod:`~coordinator.pool`), and keeps every
job's meta on disk (:mod:`~coordinator.service_jobs`).

A stop (SIGTERM) stops every Coordinator the way Ctrl-C stops a run: batches in flight
finish, what is pending stays in the job's store. The next service resumes those jobs from
their stores: nothing is lost and nothing is extracted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ray.exceptions import OutOfMemoryError, RayActorError, RayError

from landmark.config.job import JobSpec
from landmark.coordinator.actor import RemoteCoordinator
from landmark.coordinator.crew import short_error
from landmark.coordinator.pool import Pool
from landmark.coordinator.pool_view import PoolShare
from landmark.coordinator.preflight import check_output
from landmark.coordinator.ray_setup import NAMESPACE, coordinator_name
from landmark.coordinator.service_jobs import JobMeta, JobRegistry
from landmark.coordinator.service_types import JobState, JobStateError, UnknownJobError
from landmark.coordinator.shares import Claim, share_out
from landmark.coordinator.store import JobIdentity
from landmark.coordinator.store_config import StoreConfig

logger = logging.getLogger("landmark.serve")

TICK_S = 0.5  # shares, starts and progress; also woken at once by a submit or a control call
POOL_CHECK_S = 2.0
PROGRESS_CALL_S = 5.0
STOP_WAIT_S = 60.0  # SIGTERM: how long the Coordinators may take to finish their batches
COORDINATOR_RESTARTS = 3


class JobRun:
    """A job the service knows: its meta, and while it runs, its Coordinator."""

    def __init__(self, meta: JobMeta, spec: JobSpec, out_dir: Path) -> None:
        self.meta = meta
        self.spec = spec
        self.out_dir = out_dir
        self.coordinator: Any = None
        self.pool_share: PoolShare | None = None
        self.task: asyncio.Task | None = None
        self.progress: dict[str, Any] = {}
        self.share = 0
        self.pushed: tuple[int, int] | None = None  # (pool version, share) the Coordinator has

    def status(self) -> dict[str, Any]:
        meta, progress = self.meta, self.progress
        done, failed = progress.get("done", 0), progress.get("failed", 0)
        known = progress.get("known", 0)
        rate = progress.get("rate", 0.0) if meta.state is JobState.RUNNING else 0.0
        left = known - done - failed
        eta = round(left / rate, 1) if rate > 0 and left > 0 else None
        return {
            "id": meta.id,
            "name": meta.name,
            "priority": meta.priority,
            "state": meta.state.value,
            "submitted_at": meta.submitted_at.isoformat(),
            "started_at": meta.started_at.isoformat() if meta.started_at else None,
            "ended_at": meta.ended_at.isoformat() if meta.ended_at else None,
            "done": done,
            "failed": failed,
            "pending": progress.get("pending", 0),
            "known": known,
            "rate": round(rate, 2),
            "eta_s": eta,
            "verdict": progress.get("verdict", "ok"),
            "cache_hits": progress.get("cached", 0),
            "latency_ms": progress.get("latency_ms", {}),
            "share": self.share,
            "restarts": meta.restarts,
            "error": meta.error,
        }


class Service:
    def __init__(self, data_dir: Path, pool: Pool, pages: int) -> None:
        self.data_dir = Path(data_dir)
        self.registry = JobRegistry(self.data_dir)
        self.pool = pool
        self.pages = pages
        self.runs: dict[str, JobRun] = {}
        self.started = time.monotonic()
        self.stopping = False
        self._order = 0
        self._taken_back = False
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._pool_view: list[dict[str, Any]] = []
        self._verdicts: dict[str, dict[str, Any]] = {}
        self._rates: list[tuple[float, int]] = []  # (monotonic, records done), the last minute

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Take back the jobs on disk (if not done yet), start the pool, begin sharing."""
        if not self._taken_back:
            self.take_back_jobs()
        await self.pool.start()
        self._loop_task = asyncio.create_task(self._loop())

    def take_back_jobs(self) -> None:
        """The jobs of an earlier service on this data folder: finished ones to read, the
        rest queued again (they resume from their stores). Quick (files only), so the API can
        answer for them while the pool starts."""
        self._taken_back = True
        for meta, spec in self.registry.load_all():
            run = JobRun(meta, spec, self.registry.out_dir(meta.id))
            self.runs[meta.id] = run
            self._order = max(self._order, meta.order + 1)
            if meta.state is JobState.RUNNING:  # stopped with the last service: resume it
                meta.state = JobState.QUEUED
                meta.restarts += 1
                self.registry.save(meta)
                logger.info("job %s (%s) resumes from its store", meta.id, meta.name)
            run.progress = self._final_counts(run)

    async def stop(self) -> None:
        """Stop every running job resumably (batches in flight finish), then the pool."""
        self.stopping = True
        running = [run for run in self.runs.values() if run.coordinator is not None]
        for run in running:
            with contextlib.suppress(RayError):
                run.coordinator.stop.remote()
        tasks = [run.task for run in running if run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        if self._loop_task is not None:
            self._loop_task.cancel()
        self.pool.stop()

    @property
    def ready(self) -> bool:
        """The pool is up and the jobs on disk are taken back: a job submitted now starts at
        once (one submitted before waits for this)."""
        return self._loop_task is not None and bool(self.pool.members)

    # -- ServiceBackend ----------------------------------------------------------------------
    async def submit(self, job: JobSpec, priority: int) -> dict[str, Any]:
        if self.stopping:
            raise JobStateError("the service is stopping; submit again once it is back")
        meta = await asyncio.to_thread(self.registry.create, job, priority, self._order)
        self._order += 1
        run = JobRun(meta, job, self.registry.out_dir(meta.id))
        self.runs[meta.id] = run
        logger.info("job %s (%s) queued, priority %d", meta.id, meta.name, priority)
        self._wake.set()
        return run.status()

    def jobs(self) -> list[dict[str, Any]]:
        runs = sorted(self.runs.values(), key=lambda run: -run.meta.order)
        return [run.status() for run in runs]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._run(job_id).status()

    def spec(self, job_id: str) -> JobSpec:
        return self._run(job_id).spec

    def record_log(self, job_id: str) -> Path:
        run = self._run(job_id)
        return run.out_dir / run.spec.output.record_log

    async def pause(self, job_id: str) -> dict[str, Any]:
        run = self._unfinished(job_id, "pause")
        if run.coordinator is not None:
            await self._control(run, "pause")
        self._set_state(run, JobState.PAUSED)
        return run.status()

    async def resume(self, job_id: str) -> dict[str, Any]:
        run = self._unfinished(job_id, "resume")
        if run.meta.state is not JobState.PAUSED:
            raise JobStateError(f"job {job_id} is {run.meta.state.value}, not paused")
        if run.coordinator is not None:
            await self._control(run, "resume")
            self._set_state(run, JobState.RUNNING)
        else:
            self._set_state(run, JobState.QUEUED)
        return run.status()

    async def cancel(self, job_id: str) -> dict[str, Any]:
        run = self._unfinished(job_id, "cancel")
        if run.coordinator is not None:
            await self._control(run, "cancel")  # the run ends; its follower records it
        else:
            run.meta.ended_at = datetime.now(UTC)
            self._set_state(run, JobState.CANCELLED)
        return run.status()

    def stats(self) -> dict[str, Any]:
        states = {state.value: 0 for state in JobState}
        for run in self.runs.values():
            states[run.meta.state.value] += 1
        running = [run for run in self.runs.values() if run.meta.state is JobState.RUNNING]
        latencies = [run.progress.get("latency_ms") or {} for run in running]
        worst = max(
            self._verdicts.values(), key=lambda v: v.get("memory_fraction") or 0, default={}
        )
        return {
            "ready": self.ready,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "jobs": states,
            "throughput": round(sum(run.progress.get("rate", 0.0) for run in running), 2),
            "records_last_minute": self._records_last_minute(),
            "latency_ms": {
                q: max((lat.get(q, 0.0) for lat in latencies), default=0.0)
                for q in ("p50", "p95", "p99")
            },
            "memory": {
                "fraction": worst.get("memory_fraction"),
                "verdict": worst.get("verdict", "ok"),
                "nodes": len(self._verdicts),
            },
            "pages_per_actor": self.pages,
            "actors": self._pool_view,
            "actors_replaced": self.pool.replaced,
        }

    # -- the loop: pool health, shares, starts, progress -------------------------------------
    async def _loop(self) -> None:
        last_check = 0.0
        while not self.stopping:
            now = time.monotonic()
            if now - last_check >= POOL_CHECK_S:
                last_check = now
                await self._check_pool()
            self._share_out()
            await self._push_shares()
            await self._read_progress()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)

    async def _check_pool(self) -> None:
        try:
            self._pool_view = await self.pool.check()
            self._verdicts = await self.pool.verdicts()
        except Exception as error:  # the loop must go on: the next check tries again
            logger.warning("checking the pool failed: %s", short_error(error))

    def _share_out(self) -> None:
        claims = [
            Claim(run.meta.id, run.meta.priority, run.meta.order, run.coordinator is not None)
            for run in self.runs.values()
            if run.meta.state in (JobState.QUEUED, JobState.RUNNING)
        ]
        shares = share_out(claims, self.pages)
        for job_id, share in shares.items():
            run = self.runs[job_id]
            run.share = share
            if run.coordinator is None and run.meta.state is JobState.QUEUED:
                self._start(run)

    async def _push_shares(self) -> None:
        version = self.pool.version
        for run in list(self.runs.values()):
            if run.coordinator is None or run.share < 1:
                continue
            if run.pushed == (version, run.share):
                continue
            try:
                ref = run.coordinator.set_pool.remote(self.pool.members, run.share)
                await asyncio.wait_for(ref, PROGRESS_CALL_S)
            except (TimeoutError, RayError):
                continue  # tried again next tick; a dead Coordinator is its follower's
            run.pushed = (version, run.share)

    async def _read_progress(self) -> None:
        running = [run for run in self.runs.values() if run.coordinator is not None]

        async def one(run: JobRun) -> None:
            with contextlib.suppress(TimeoutError, RayError):
                progress = run.coordinator.progress.remote()
                run.progress = await asyncio.wait_for(progress, PROGRESS_CALL_S)

        await asyncio.gather(*(one(run) for run in running))
        done = sum(run.progress.get("done", 0) + run.progress.get("failed", 0)
                   for run in self.runs.values())  # fmt: skip
        now = time.monotonic()
        self._rates.append((now, done))
        while self._rates and now - self._rates[0][0] > 60.0:
            self._rates.pop(0)

    def _records_last_minute(self) -> int:
        if len(self._rates) < 2:
            return 0
        return max(0, self._rates[-1][1] - self._rates[0][1])

    # -- one job -----------------------------------------------------------------------------
    def _start(self, run: JobRun) -> None:
        run.meta.started_at = run.meta.started_at or datetime.now(UTC)
        self._set_state(run, JobState.RUNNING)
        run.task = asyncio.create_task(self._follow(run))

    async def _follow(self, run: JobRun) -> None:
        """Run the job's Coordinator to its end; a Coordinator that dies is replaced (it
        resumes from the store) up to ``COORDINATOR_RESTARTS`` times."""
        try:
            for attempt in range(COORDINATOR_RESTARTS + 1):
                try:
                    run.coordinator = await asyncio.to_thread(self._new_coordinator, run)
                    summary = await run.coordinator.run.remote()
                except (RayActorError, OutOfMemoryError) as error:
                    if self.stopping:
                        return
                    logger.warning("job %s: its Coordinator died (%s)", run.meta.id,
                                   short_error(error))  # fmt: skip
                    run.meta.restarts += 1
                    run.coordinator = None
                    if attempt == COORDINATOR_RESTARTS:
                        self._failed(run, f"its Coordinator died {attempt + 1} times")
                    continue
                await self._ended(run, summary)
                return
        except Exception as error:  # a job that cannot run says why; the service goes on
            logger.warning("job %s failed: %s", run.meta.id, short_error(error))
            self._failed(run, short_error(error))
        finally:
            run.coordinator = None
            run.pushed = None
            self._close_sessions(run)
            self._wake.set()

    def _close_sessions(self, run: JobRun) -> None:
        """The job's browsers on every pool actor, closed whatever ended it (a Coordinator
        that died could not close them itself); a stop leaves none behind either."""
        for member in self.pool.members:
            with contextlib.suppress(RayError, ValueError):
                member.handle.close_job.remote(run.meta.id)

    def _new_coordinator(self, run: JobRun) -> Any:
        """The job's Coordinator on the service's node, on its share of the pool. Blocking
        (the store is prepared, Ray is called): run in a thread."""
        from landmark.coordinator.driver import driver_node, prepare_store

        members = self.pool.members
        budget = run.spec.budget.model_copy(
            update={
                "actors": max(1, len(members)),
                "pages_per_actor": self.pages,
                "pages_at_start": self.pages,  # shares are the service's: no page governor
            }
        )
        output = run.spec.output.model_copy(update={"dir": run.out_dir})
        job = run.spec.model_copy(update={"budget": budget, "output": output})
        names = (job.output.results, job.output.summary, job.output.record_log)
        check_output(run.out_dir, names)
        sources = job.source_urls()
        store = StoreConfig.for_job(job, run.out_dir, None)
        say = lambda message: logger.info("job %s: %s", run.meta.id, message)  # noqa: E731
        prepare_store(store, JobIdentity.of(job, sources), fresh=False, say=say)
        share = PoolShare(run.meta.id, members, pages=max(1, run.share))
        run.pool_share = share
        run.pushed = None  # the new Coordinator gets the share at the next tick
        options = {
            "name": coordinator_name(f"{job.name}@{run.meta.id}"),
            "namespace": NAMESPACE,
            "scheduling_strategy": driver_node(),
        }
        return RemoteCoordinator.options(**options).remote(job, sources, store, None, True, share)

    async def _ended(self, run: JobRun, summary: dict[str, Any]) -> None:
        stopped = summary.get("stopped")
        if stopped == "interrupted" and self.stopping:
            return  # SIGTERM: the job stays running on disk, and resumes with the service
        await asyncio.to_thread(self._write_outputs, run, summary)
        run.meta.ended_at = datetime.now(UTC)
        by_status = summary.get("by_status", {})
        run.progress = {
            **run.progress,
            "done": summary.get("records", 0) - by_status.get("failed", 0),
            "failed": by_status.get("failed", 0),
            "pending": summary.get("pending", 0),
            "known": summary.get("records", 0) + summary.get("pending", 0),
            "rate": 0.0,
        }
        if summary.get("completed"):
            self._set_state(run, JobState.DONE)
        elif stopped == "cancelled":
            self._set_state(run, JobState.CANCELLED)
        else:
            self._failed(run, summary.get("failure") or f"the run stopped ({stopped})")
        logger.info("job %s (%s) %s: %d records", run.meta.id, run.meta.name,
                    run.meta.state.value, summary.get("records", 0))  # fmt: skip

    @staticmethod
    def _write_outputs(run: JobRun, summary: dict[str, Any]) -> None:
        from landmark.coordinator.exporters import ExportError, export_results

        summary["out_dir"] = str(run.out_dir)
        path = run.out_dir / run.spec.output.summary
        path.write_text(json.dumps(summary, indent=2, default=str))
        try:
            export_results(run.spec, run.out_dir)
        except ExportError as error:
            logger.warning("job %s: %s", run.meta.id, error)

    def _final_counts(self, run: JobRun) -> dict[str, Any]:
        """A finished job's counts after a restart, from its summary."""
        path = run.out_dir / run.spec.output.summary
        if not run.meta.state.finished or not path.is_file():
            return {}
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads(path.read_text())
            failed = summary.get("by_status", {}).get("failed", 0)
            records = summary.get("records", 0)
            return {"done": records - failed, "failed": failed, "known": records, "pending": 0}
        return {}

    # -- helpers -----------------------------------------------------------------------------
    def _run(self, job_id: str) -> JobRun:
        try:
            return self.runs[job_id]
        except KeyError:
            raise UnknownJobError(job_id) from None

    def _unfinished(self, job_id: str, action: str) -> JobRun:
        run = self._run(job_id)
        if run.meta.state.finished:
            raise JobStateError(f"job {job_id} is {run.meta.state.value}: nothing to {action}")
        return run

    async def _control(self, run: JobRun, call: str) -> None:
        try:
            await asyncio.wait_for(getattr(run.coordinator, call).remote(), PROGRESS_CALL_S)
        except (TimeoutError, RayError) as error:
            raise JobStateError(f"job {run.meta.id}: {call} failed: {short_error(error)}") from None
        self._wake.set()

    def _set_state(self, run: JobRun, state: JobState) -> None:
        run.meta.state = state
        self.registry.save(run.meta)

    def _failed(self, run: JobRun, error: str) -> None:
        run.meta.error = error
        run.meta.ended_at = datetime.now(UTC)
        self._set_state(run, JobState.FAILED)
