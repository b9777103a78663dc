"""Measuring memory the way it matters here: whole process trees, and the node as Ray sees it.

Per-process figures
-------------------
A BrowserActor is a Ray worker process plus a Playwright driver plus a
Chromium with a dozen renderer, GPU and utility processes. What it costs is
the sum over that tree, so a sample walks descendants (``ProcessTable``).

Summed RSS double-counts shared pages: every Chromium process maps the same
binary and shared-memory segments, so the sum can overstate the tree by a
few hundred MiB. It is still the right figure here: it errs high, which makes
us shed *earlier*, never later; it ranks actors correctly ("which tree is
heaviest?") because every tree is overstated the same way; and it is cheap.
USS/PSS would be exact but need a read of ``/proc/<pid>/smaps_rollup`` per
process, tens of milliseconds for a few Chromiums: too slow to repeat every
half second for many trees.

The node figure
---------------
``read_node_memory`` reproduces what Ray's OOM killer (the raylet's memory
monitor, ``memory_monitor_utils.cc``) compares with ``memory_usage_threshold``,
RAM only (Ray adds swap only when ``count_swap_in_memory_monitor`` is set):

* host: ``MemTotal - MemAvailable`` (psutil ``total - available``), not the
  "used" column of free(1), which counts all buffers and cache as free,
  including shared memory (Ray's object store in /dev/shm) that cannot be
  reclaimed, and so reads low;
* cgroup (container) limit, v2 ``memory.max`` or v1 ``memory.limit_in_bytes``:
  used is ``memory.current`` (v2) or ``memory.usage_in_bytes`` (v1) minus the
  page cache, ``inactive_file + active_file`` (v1: ``total_inactive_file``,
  ``total_active_file``), because the kernel reclaims cache before it kills.
  The cgroup figures are used only when the cgroup limit is below host memory
  (an unset limit reads "max", or a huge number on v1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")

# Processes that belong to Ray itself on a node; see _is_ray_process.
RAY_PROCESS_NAMES = frozenset({"raylet", "gcs_server"})
RAY_CMDLINE_MARKERS = ("ray::", "/ray/dashboard/", "/ray/_private/", "ray/autoscaler/")

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


@dataclass(frozen=True, slots=True)
class MemoryReading:
    """Node memory as Ray's OOM killer counts it; ``source`` says which view was binding."""

    used: int
    total: int
    source: Literal["cgroup", "host"]

    @property
    def fraction(self) -> float:
        return self.used / self.total if self.total > 0 else 0.0


def tree_pids(pid: int) -> set[int]:
    """``pid`` and all its living descendants; empty if ``pid`` is gone."""
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=True)
    except _GONE:
        return set()
    return {pid, *(child.pid for child in children)}


def rss_of(pids: Iterable[int]) -> int:
    """Summed RSS of these processes; one that exits mid-walk counts as zero."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except _GONE:
            continue
    return total


def pss_of(pids: Iterable[int]) -> int:
    """Summed PSS (proportional set size) from ``/proc/PID/smaps_rollup``: shared pages are
    split between the processes sharing them, so the sum is what the tree really costs.
    Summed RSS counts Chromium's shared pages and Ray's object-store mapping once per
    process (here about 2.5× too high). It costs a page-table walk per process (tens of
    ms for a few dozen), so callers sample it less often than RSS. Falls back to RSS where
    smaps_rollup does not exist."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
                total += next(
                    int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:")
                )
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
        except PermissionError:
            total += rss_of([pid])
    return total


@dataclass(frozen=True, slots=True)
class ProcessTable:
    """Every process on the node at one moment: its children, its RSS, and whether it is Ray's.

    A sample needs several trees (each actor's, and the union of everything). psutil's
    ``children()`` rescans all of ``/proc`` on every call, so walking a dozen trees that way
    cost a dozen scans per sample; a table is one scan, and every tree is then a lookup.
    """

    children: dict[int, list[int]]
    rss: dict[int, int]  # every process alive at the scan, with its RSS
    ray: frozenset[int]

    def tree(self, pid: int) -> set[int]:
        """``pid`` and its descendants as of the scan; empty if it was not alive then."""
        return self.trees([pid])

    def trees(self, pids: Iterable[int]) -> set[int]:
        """The union of the trees rooted at ``pids``."""
        found: set[int] = set()
        todo = [pid for pid in pids if pid in self.rss]
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(self.children.get(pid, ()))
        return found

    def rss_of(self, pids: Iterable[int]) -> int:
        return sum(self.rss.get(pid, 0) for pid in pids)


class ProcessScanner:
    """Reads a :class:`ProcessTable` in one pass over ``/proc``. Whether a process is Ray's
    is decided once per process (its command line does not change what it is: a worker is
    under ``ray/_private`` before and after Ray retitles it ``ray::``), so a scan reads only
    ``stat`` and ``statm`` for the processes it has seen before."""

    def __init__(self) -> None:
        self._is_ray: dict[tuple[int, float], bool] = {}

    def scan(self) -> ProcessTable:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        seen: dict[tuple[int, float], bool] = {}
        for process in psutil.process_iter(["ppid", "create_time", "memory_info"]):
            info = process.info
            if info["ppid"] is None or info["create_time"] is None:
                continue  # gone or hidden mid-scan
            key = (process.pid, info["create_time"])
            is_ray = self._is_ray.get(key)
            if is_ray is None:
                is_ray = _is_ray_process(process)
            seen[key] = is_ray
            children.setdefault(info["ppid"], []).append(process.pid)
            rss[process.pid] = info["memory_info"].rss if info["memory_info"] else 0
        self._is_ray = seen  # forget the dead, so the cache stays the size of the node
        ray = frozenset(pid for (pid, _), is_ray in seen.items() if is_ray)
        return ProcessTable(children=children, rss=rss, ray=ray)


def _is_ray_process(process: psutil.Process) -> bool:
    try:
        name = process.name()
        cmdline = " ".join(process.cmdline())
    except _GONE:
        return False
    return name in RAY_PROCESS_NAMES or any(marker in cmdline for marker in RAY_CMDLINE_MARKERS)


def read_node_memory(cgroup_root: Path = CGROUP_ROOT) -> MemoryReading:
    """Node memory used/total as Ray's OOM killer measures it (see the module docstring)."""
    host = psutil.virtual_memory()
    host_total = int(host.total)
    host_used = max(0, host_total - int(host.available))
    cgroup = _read_cgroup_memory(cgroup_root)
    if cgroup is not None:
        used, limit = cgroup
        if limit < host_total:
            return MemoryReading(used=min(max(used, 0), limit), total=limit, source="cgroup")
    return MemoryReading(used=host_used, total=host_total, source="host")


def _read_cgroup_memory(root: Path) -> tuple[int, int] | None:
    """(used without page cache, limit) from cgroup v2 or v1, or None if no limit is readable."""
    if (root / "memory.max").exists():  # v2; "max" (no limit) reads as None
        limit = _read_int(root / "memory.max")
        used = _used_without_cache(
            root / "memory.current", root / "memory.stat", "inactive_file", "active_file"
        )
    else:
        v1 = root / "memory"
        limit = _read_int(v1 / "memory.limit_in_bytes")
        used = _used_without_cache(
            v1 / "memory.usage_in_bytes",
            v1 / "memory.stat",
            "total_inactive_file",
            "total_active_file",
        )
    if limit is None or used is None:
        return None
    return used, limit


def _used_without_cache(usage: Path, stat: Path, inactive_key: str, active_key: str) -> int | None:
    current = _read_int(usage)
    stats = _read_stat(stat)
    if current is None or inactive_key not in stats or active_key not in stats:
        return None
    return current - stats[inactive_key] - stats[active_key]


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_stat(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    stats: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            stats[key] = int(value)
    return stats
