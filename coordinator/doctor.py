"""``landmark doctor``: what this machine offers the tool, and what is missing.

With ``--address`` it joins a Ray cluster the way a run does (token auth on, the package
shipped as ``py_modules``) and checks every alive node from the node itself: a run fails
on the worst node, not on the driver's machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version

from landmark.actors.browser import BrowserNotFoundError, find_browser
from landmark.config.settings import Settings
from landmark.coordinator.node_check import (
    LAUNCH_TIMEOUT_S,
    NodeFacts,
    NodeReport,
    Versions,
    assess,
    gather,
    size_text,
    verdict,
)
from landmark.coordinator.ray_setup import RayStartError, init_ray

# Per node: Ray sets up the shipped package, starts a worker, Chromium launches (≤ 60 s).
NODE_DEADLINE_S = LAUNCH_TIMEOUT_S + 90.0
GET_TIMEOUT_S = 10.0  # fetching an answer that is already there


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _store_status(url: str | None) -> tuple[str, bool]:
    """The store runs would use, and whether it answers (the password never shown)."""
    if not url:
        return "local: state and records under each run's output folder", True
    from landmark.coordinator.redis_store import redis_health
    from landmark.coordinator.store_config import redact_url

    healthy, detail = redis_health(url)
    return f"redis {redact_url(url)}: {detail}", healthy


def doctor(
    browser: str | None = None,
    store: str | None = None,
    address: str | None = None,
    *,
    node_deadline_s: float = NODE_DEADLINE_S,
) -> int:
    """Check this machine, or with ``address`` every node of that Ray cluster; exit 1 when
    something a run needs is missing."""
    settings = Settings.from_env()
    if not address or address == "local":
        return _local(settings, browser, store)
    return _cluster(address, browser, store or settings.redis_url, node_deadline_s)


def _local(settings: Settings, browser: str | None, store: str | None) -> int:
    """Print one line per dependency."""
    print(f"python      {platform.python_version()} ({platform.system()} {platform.machine()})")
    for package in ("ray", "playwright", "pydantic", "redis", "psutil"):
        print(f"{package:<11} {_package_version(package)}")
    status = 0
    try:
        found = find_browser(browser or settings.browser)
        print(f"browser     {found.path} ({found.origin}): {found.version()}")
    except BrowserNotFoundError as error:
        print(f"browser     MISSING: {error}")
        status = 1
    line, healthy = _store_status(store or settings.redis_url)
    print(f"store       {line}")
    print(f"headless    {settings.headless}")
    return status if healthy else 1


# -- a cluster ----------------------------------------------------------------------------
def _cluster(address: str, browser: str | None, redis_url: str | None, deadline_s: float) -> int:
    """Join, check every node, leave. An unreachable cluster is one line on stderr."""
    import ray

    joined_here = not ray.is_initialized()
    if (failure := _join(address)) is not None:
        print(f"landmark doctor: {failure}", file=sys.stderr)
        return 1
    try:
        return _check_cluster(address, browser, redis_url, deadline_s)
    finally:
        if joined_here:
            ray.shutdown()


@contextlib.contextmanager
def _held_stderr() -> Iterator[Callable[[], str]]:
    """Ray's C++ client logs each refused retry on stderr (twenty lines for a wrong token):
    hold what is written to file descriptor 2 back; the caller reads it and decides."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)

        def read() -> str:
            sys.stderr.flush()
            held.seek(0)
            return held.read().decode(errors="replace")

        try:
            yield read
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _join(address: str) -> str | None:
    """Join as a run does; None when joined, else the one line that says why not."""
    with _held_stderr() as logged:
        try:
            init_ray(address, actors=0)
            failure = None
        except RayStartError as error:
            failure = _join_failure(error, logged())
        text = logged()
    if failure is None:
        sys.stderr.write(text)  # the join worked: Ray's warnings are given back
    return failure


def _join_failure(error: RayStartError, logged: str) -> str:
    """One line: Ray's message, and what its retries said when that was a refused token."""
    message = _one_line(error)
    if "InvalidAuthToken" in logged or "Unauthenticated" in logged:
        message += (
            ": the cluster refused this client's token (give the cluster's token in "
            "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        )
    return message


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _check_cluster(
    address: str, browser: str | None, redis_url: str | None, deadline_s: float
) -> int:
    import ray

    driver = Versions.here()
    nodes = sorted(
        (node for node in ray.nodes() if node.get("Alive")),
        key=lambda node: "node:__internal_head__" not in node.get("Resources", {}),
    )  # the head first
    print(f"cluster     {address}: {len(nodes)} alive node(s)")
    print(f"driver      Python {driver.python}, Ray {driver.ray}, landmark {driver.landmark}")
    line, store_ok = _store_status(redis_url)
    print(f"store       {line} (from the driver)")
    print(f"checking    each node launches its browser; at most {deadline_s:g} s", flush=True)
    reports = check_nodes(nodes, browser, redis_url, deadline_s)
    return report_nodes(reports, driver, store_ok=store_ok)


def check_nodes(
    nodes: list[dict], browser: str | None, redis_url: str | None, deadline_s: float
) -> list[NodeReport]:
    """One :func:`gather` task per node, pinned there (``soft=False``) and asking for no CPU
    so that a node busy with a run still answers; whatever has not answered by the deadline
    is cancelled and reported as such."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not nodes:
        return []
    task = ray.remote(num_cpus=0, max_retries=0)(gather)
    refs = {}
    for node in nodes:
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        refs[node["NodeID"]] = task.options(
            scheduling_strategy=strategy, name="landmark-doctor"
        ).remote(browser, redis_url)
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=deadline_s)
    return [_node_report(node, refs[node["NodeID"]], set(ready), deadline_s) for node in nodes]


def _node_report(node: dict, ref, ready: set, deadline_s: float) -> NodeReport:
    import ray

    facts, error = None, None
    if ref in ready:
        try:
            facts = ray.get(ref, timeout=GET_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError) as failure:
            error = f"the check failed there: {_one_line(failure)[:300]}"
    else:
        with contextlib.suppress(ray.exceptions.RayError):  # it may answer just now
            ray.cancel(ref, force=True)
        error = (
            f"the check did not answer within {deadline_s:g} s (a worker that cannot start "
            "there, e.g. another Python or Ray, or the package upload stuck: see `ray logs`)"
        )
    return NodeReport(
        node_id=node["NodeID"],
        address=node.get("NodeManagerAddress", "?"),
        hostname=node.get("NodeManagerHostname", ""),
        head="node:__internal_head__" in node.get("Resources", {}),
        ray_cpus=float(node.get("Resources", {}).get("CPU", 0.0)),
        facts=facts,
        error=error,
    )


def report_nodes(reports: list[NodeReport], driver: Versions, *, store_ok: bool = True) -> int:
    """A table and a verdict per node, then one line for the cluster; 1 when a run would
    fail: a node fails, no node is alive, or the driver cannot reach the store."""
    failed = sum(_report_node(report, driver) for report in reports)
    print()
    problems = [f"{failed} would fail a run"]
    if not store_ok:
        problems.append("the driver cannot reach the store")
    if not reports:
        problems.append("no alive node: nothing could run")
    print(f"cluster     {len(reports)} node(s): {len(reports) - failed} ok, {', '.join(problems)}")
    return 1 if failed or not store_ok or not reports else 0


def _report_node(report: NodeReport, driver: Versions) -> bool:
    """Print one node's table and verdict; whether it would fail a run."""
    assessment = assess(report, driver)
    print()
    print(f"node        {report.name}")
    for label, value in _rows(report):
        print(f"  {label:<9} {value}")
    for finding in assessment.findings:
        if finding.level == "note":
            print(f"  {'note':<9} {finding.text}")
    print(f"verdict     {verdict(report, assessment)}")
    return assessment.failed


def _rows(report: NodeReport) -> list[tuple[str, str]]:
    facts = report.facts
    if facts is None:
        return [("answer", "none")]
    shipped = "runtime_resources" in facts.landmark_path
    return [
        ("python", facts.versions.python),
        ("ray", facts.versions.ray),
        ("landmark", f"{facts.versions.landmark} ({_origin(facts, shipped)})"),
        ("browser", _browser_text(facts)),
        ("/dev/shm", f"{size_text(facts.shm_total)}, {size_text(facts.shm_free)} free"),
        ("memory", f"{size_text(facts.memory_available)} free of {size_text(facts.memory_total)}"),
        ("cpus", f"{facts.cpus} (Ray: {report.ray_cpus:g})"),
        ("store", _node_store_text(facts)),
    ]


def _origin(facts: NodeFacts, shipped: bool) -> str:
    return "shipped by the driver" if shipped else f"imported from {facts.landmark_path}"


def _browser_text(facts: NodeFacts) -> str:
    if facts.browser_error:
        return f"{facts.browser or 'MISSING'}: {facts.browser_error}"
    return f"{facts.browser}: launched, version {facts.browser_version} in {facts.launch_s} s"


def _node_store_text(facts: NodeFacts) -> str:
    if facts.store_ok is None:
        return "local (nothing to reach)"
    return f"redis: {facts.store_detail}"
