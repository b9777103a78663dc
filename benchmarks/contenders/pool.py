"""Running contenders in their worker processes while sampling what they cost.

The harness talks to one ``ContenderProcess`` per contender kind. Around each
run a ``Sampler`` thread records, every ``interval``, the summed RSS of the
worker's whole process tree (Python, Playwright driver, Chromium; for
landmark also raylet, GCS, actors), the node's memory as Ray's OOM killer
counts it, and the whole machine's CPU %. Sampling the tree from outside is
what makes the memory figures comparable across contenders.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

import landmark
from landmark.actors.process_tree import read_node_memory, rss_of, tree_pids
from landmark.benchmarks.contenders.spec import MARKER, READY, Kind, Outcome, RunSpec

# The folder that holds the ``landmark`` package (a checkout's root, or site-packages): on
# a child's PYTHONPATH it imports the same landmark, never our folders as top-level names.
PROJECT_ROOT = Path(landmark.__file__).resolve().parent.parent
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


@dataclass(slots=True)
class Samples:
    """Time series of one run: seconds since start, tree RSS, node memory used, machine CPU %."""

    t: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    node_used: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        if not self.rss:
            return {}
        start, end, peak = self.rss[0], self.rss[-1], max(self.rss)
        busy = self.cpu[1:] or self.cpu  # the first reading covers the time before the run
        return {
            "rss_start": start,
            "rss_end": end,
            "rss_max": peak,
            "rss_growth_pct": round((end - start) / start * 100, 1) if start else None,
            "node_used_max": max(self.node_used),
            "cpu_mean": round(sum(busy) / len(busy), 1) if busy else None,
            "cpu_max": max(busy) if busy else None,
            "samples": len(self.rss),
        }

    def series(self) -> dict[str, list]:
        return {"t": self.t, "rss": self.rss, "node_used": self.node_used, "cpu": self.cpu}


class Sampler:
    """Samples a process tree in a thread until ``stop()``; a context manager."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.samples = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._began = 0.0

    def __enter__(self) -> Sampler:
        psutil.cpu_percent(interval=None)  # starts the CPU interval
        self._began = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        samples = self.samples
        samples.t.append(round(time.monotonic() - self._began, 2))
        samples.rss.append(rss_of(tree_pids(self.pid)))
        samples.node_used.append(read_node_memory().used)
        samples.cpu.append(psutil.cpu_percent(interval=None))


class WorkerError(RuntimeError):
    """The worker died or did not answer in time; the message says which and where its log is."""


class ContenderProcess:
    """One worker process for one contender kind; ``run(spec)`` returns its outcome."""

    def __init__(self, kind: Kind, log_path: Path) -> None:
        self.kind = kind
        self.log_path = log_path
        self._log: IO[str] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> ContenderProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a", encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "landmark.benchmarks.contenders.worker", self.kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            start_new_session=True,
            cwd=PROJECT_ROOT,
        )
        threading.Thread(target=self._read, name=f"bench-{self.kind}", daemon=True).start()
        self._expect(READY, START_TIMEOUT_S)
        return self

    def run(self, spec: RunSpec, interval: float = 0.5) -> tuple[Outcome, Samples]:
        """Run ``spec``; a dead or hung worker gives an outcome with ``error``, restarts next."""
        if self._process is None or self._process.poll() is not None:
            self.start()
        assert self._process is not None and self._process.stdin is not None
        with Sampler(self.pid, interval) as sampler:
            try:
                self._process.stdin.write(spec.model_dump_json() + "\n")
                self._process.stdin.flush()
                path = self._expect(MARKER, spec.timeout_s)
            except (WorkerError, OSError) as error:
                self.stop()
                return Outcome(label=spec.label, kind=spec.kind, error=str(error)), sampler.samples
        return Outcome.from_json(
            json.loads(Path(path).read_text(encoding="utf-8"))
        ), sampler.samples

    def stop(self) -> None:
        """Close stdin (the worker exits), then kill its process group if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin:
                process.stdin.close()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for line in process.stdout:
            if line.startswith("@@"):
                self._lines.put(line.rstrip("\n"))
            elif self._log is not None:
                with contextlib.suppress(ValueError):
                    self._log.write(line)
        self._lines.put(None)

    def _expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                raise WorkerError(
                    f"{self.kind} worker gave no answer in {timeout:g}s (log: {self.log_path})"
                )
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise WorkerError(f"{self.kind} worker exited (log: {self.log_path})")
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)

    def __enter__(self) -> ContenderProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
