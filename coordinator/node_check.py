"""What one node of a Ray cluster offers a run, gathered on that node, and what it lacks.

``landmark doctor --address`` sends :func:`gather` to every alive node as a Ray task
pinned there; the node answers with :class:`NodeFacts`. :func:`assess` turns the facts
into findings against the driver's versions, without Ray, so the verdict logic is
testable on its own. This module imports only the standard library at the top: a node
missing a dependency still answers, and says which one is missing.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Literal

LAUNCH_TIMEOUT_S = 60.0  # start Chromium, open a page, close it: a busy node takes seconds
SHM_PATH = "/dev/shm"
SHM_MIN_BYTES = 512 * 2**20  # Chromium's renderers share memory there; Docker's default is 64 MiB
MEMORY_MIN_BYTES = 3 * 2**29  # 1.5 GiB: one Chromium with 4 pages wants roughly 1–1.5 GiB
DEPENDENCIES = ("playwright", "pydantic", "redis", "psutil")

Level = Literal["fail", "warning", "note"]


@dataclass(frozen=True, slots=True)
class Versions:
    """What must agree between the driver and a node (Ray refuses mixed clusters late and
    obscurely: a worker that cannot start leaves its task pending for ever)."""

    python: str
    ray: str
    landmark: str

    @staticmethod
    def here() -> Versions:
        import landmark

        try:
            import ray

            ray_version = ray.__version__
        except ImportError:
            ray_version = "not installed"
        return Versions(platform.python_version(), ray_version, landmark.__version__)


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What a node says about itself; ``None`` where it could not tell."""

    hostname: str
    ip: str
    versions: Versions
    landmark_path: str
    missing: tuple[str, ...] = ()
    browser: str | None = None  # "path (origin)"
    browser_version: str | None = None  # from the launched browser
    launch_s: float | None = None
    browser_error: str | None = None
    shm_total: int | None = None
    shm_free: int | None = None
    memory_available: int | None = None
    memory_total: int | None = None
    cpus: int | None = None
    store_ok: bool | None = None  # None: no Redis store to check
    store_detail: str | None = None


@dataclass(frozen=True, slots=True)
class NodeReport:
    """One alive node as Ray lists it, and its answer (or why there is none)."""

    node_id: str
    address: str
    hostname: str = ""
    head: bool = False
    ray_cpus: float = 0.0
    facts: NodeFacts | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        host = self.facts.hostname if self.facts else self.hostname
        details = ", ".join(part for part in (host, "head" if self.head else "") if part)
        where = f"{self.address} ({details})" if details else self.address
        return f"{where} {self.node_id[:8]}"  # nodes on one machine share address and host


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    text: str


@dataclass(slots=True)
class Assessment:
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: Level, text: str) -> None:
        self.findings.append(Finding(level, text))

    @property
    def failed(self) -> bool:
        return any(finding.level == "fail" for finding in self.findings)


# -- on the node --------------------------------------------------------------------------
def gather(
    browser: str | None = None,
    redis_url: str | None = None,
    launch_timeout_s: float = LAUNCH_TIMEOUT_S,
) -> NodeFacts:
    """Everything :func:`assess` needs, found on this machine. Never raises for a missing
    piece: a node's answer is worth more than a traceback from it."""
    import landmark

    total, free = shm_space()
    available, memory = memory_space()
    browser_facts = check_browser(browser, launch_timeout_s)
    store_ok, store_detail = check_store(redis_url)
    return NodeFacts(
        hostname=socket.gethostname(),
        ip=_node_ip(),
        versions=Versions.here(),
        landmark_path=os.path.dirname(landmark.__file__),
        missing=missing_dependencies(),
        **browser_facts,
        shm_total=total,
        shm_free=free,
        memory_available=available,
        memory_total=memory,
        cpus=os.cpu_count(),
        store_ok=store_ok,
        store_detail=store_detail,
    )


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray, or Ray cannot tell: the hostname still names the node
        return ""


def missing_dependencies() -> tuple[str, ...]:
    import importlib.util

    return tuple(name for name in DEPENDENCIES if importlib.util.find_spec(name) is None)


def shm_space(path: str = SHM_PATH) -> tuple[int | None, int | None]:
    """(size, free) of /dev/shm in bytes, or (None, None) when there is none."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None, None
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize


def memory_space() -> tuple[int | None, int | None]:
    try:
        import psutil
    except ImportError:
        return None, None
    memory = psutil.virtual_memory()
    return memory.available, memory.total


def check_browser(explicit: str | None, timeout_s: float) -> dict:
    """Find the browser a BrowserActor on this node would find, launch it as they do, close
    it: a binary that exists but cannot start (missing libraries, no /dev/shm) fails here,
    not in the first run."""
    try:
        from landmark.actors.browser import find_browser
        from landmark.config.settings import Settings

        found = find_browser(explicit or Settings.from_env().browser)
    except Exception as error:  # BrowserNotFoundError, or no Playwright/pydantic here
        return {"browser_error": f"not found: {_first_line(error)}"}
    where = f"{found.path} ({found.origin})"
    started = time.monotonic()
    try:
        version = asyncio.run(_launch(found, timeout_s))
    except TimeoutError:
        return {"browser": where, "browser_error": f"did not launch within {timeout_s:.0f} s"}
    except Exception as error:  # Playwright's Error: the browser's own complaint
        return {"browser": where, "browser_error": f"cannot launch: {_first_line(error)}"}
    return {
        "browser": where,
        "browser_version": version,
        "launch_s": round(time.monotonic() - started, 1),
    }


async def _launch(found, timeout_s: float) -> str:
    """Chromium started headless with the run's flags, one page rendered, then closed."""
    from playwright.async_api import async_playwright

    from landmark.actors.browser import launch_browser

    async with asyncio.timeout(timeout_s), async_playwright() as playwright:
        browser = await launch_browser(playwright, found, headless=True)
        try:
            page = await browser.new_page()
            await page.set_content("<p>landmark doctor</p>")
            return browser.version
        finally:
            await browser.close()


def check_store(redis_url: str | None) -> tuple[bool | None, str | None]:
    """Whether this node reaches the Redis store: its actors write there."""
    if not redis_url:
        return None, None
    try:
        from landmark.coordinator.redis_store import redis_health
    except ImportError as error:
        return False, f"cannot check ({error})"
    return redis_health(redis_url)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


# -- on the driver ------------------------------------------------------------------------
def browser_flags() -> tuple[str, ...]:
    from landmark.actors.browser import LAUNCH_ARGS

    return LAUNCH_ARGS


def assess(report: NodeReport, driver: Versions) -> Assessment:
    """Findings for one node: a ``fail`` is what would fail a run that uses it."""
    result = Assessment()
    if report.error or report.facts is None:
        result.add("fail", report.error or "no answer")
        return result
    facts = report.facts
    _versions(result, facts.versions, driver)
    if facts.missing:
        result.add("fail", f"not installed here: {', '.join(facts.missing)}")
    if facts.browser_error:
        result.add("fail", f"browser {facts.browser_error}")
    _shm(result, facts)
    _memory(result, facts)
    if report.ray_cpus < 1:
        result.add("warning", "Ray gives this node no CPU: no BrowserActor will be placed here")
    if facts.store_ok is False:
        result.add("fail", f"the store, from this node: {facts.store_detail}")
    return result


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _versions(result: Assessment, node: Versions, driver: Versions) -> None:
    if _minor(node.python) != _minor(driver.python):
        result.add("fail", f"Python {node.python} here, {driver.python} on the driver")
    if node.ray != driver.ray:
        result.add("fail", f"Ray {node.ray} here, {driver.ray} on the driver")
    if node.landmark != driver.landmark:
        result.add(
            "warning",
            f"landmark {node.landmark} installed here, {driver.landmark} on the driver "
            "(the driver's code is shipped and runs; the dependencies are this node's)",
        )


def _shm(result: Assessment, facts: NodeFacts) -> None:
    """A small /dev/shm crashes Chromium's renderers, unless it is told not to use it."""
    if facts.shm_total is not None and facts.shm_total >= SHM_MIN_BYTES:
        return
    size = "no /dev/shm" if facts.shm_total is None else f"/dev/shm is {size_text(facts.shm_total)}"
    if "--disable-dev-shm-usage" in browser_flags():
        result.add("note", f"{size}; fine: browsers launch with --disable-dev-shm-usage")
    else:
        result.add(
            "warning",
            f"{size} (under {size_text(SHM_MIN_BYTES)}): give it more, or launch Chromium "
            "with --disable-dev-shm-usage",
        )


def _memory(result: Assessment, facts: NodeFacts) -> None:
    if facts.memory_available is not None and facts.memory_available < MEMORY_MIN_BYTES:
        result.add(
            "warning",
            f"only {size_text(facts.memory_available)} of memory free: one Chromium with 4 "
            "pages wants about 1–1.5 GiB",
        )


def size_text(count: int | None) -> str:
    if count is None:
        return "unknown"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def verdict(report: NodeReport, assessment: Assessment) -> str:
    """One line: the node, and the first reasons a run on it would fail (or that it is ok)."""
    fails = [f.text for f in assessment.findings if f.level == "fail"]
    warnings = [f.text for f in assessment.findings if f.level == "warning"]
    if fails:
        return f"node {report.name}: FAIL: {'; '.join(fails)}"
    if warnings:
        return f"node {report.name}: ok, with warnings: {'; '.join(warnings)}"
    return f"node {report.name}: ok"
