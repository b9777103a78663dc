"""The instruments of ``landmark bench profile`` (``benchmarks/profile.py``), one per question.

- :class:`ProtocolMeter`: every message the Playwright client sends to its driver and
  every one it receives, counted, sized and timed, by patching the client's
  ``Connection`` and ``Transport`` classes for the profile process only. Each client
  call is one request/reply with the driver, which turns it into one or more CDP
  commands: the count is what our code asks for, the time is what it waits.
- :class:`PageMetrics`: CDP ``Performance.getMetrics`` of one page on a CDP session of
  its own: main-thread task, script, compile, style and layout time as the renderer
  itself counts them. The counters restart with every document, so a reading is taken
  before every navigation and the documents are summed.
- :func:`analyse_trace`: a Chromium trace (all its processes) reduced to self CPU time
  per thread group and per kind of work (script, style, layout, paint, raster, ...),
  and the bytes the pages loaded, by type.
- :class:`PySpy`: py-spy sampling this process, when py-spy is installed (the
  ``profile`` extra); without it the profile says so and goes on.

None of this changes what the measured code does; the patches are undone on exit.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- Playwright's own wire ------------------------------------------------------------------


@dataclass(slots=True)
class ProtocolTally:
    """What one pass sent and received over the Playwright client's connection."""

    calls: Counter[str] = field(default_factory=Counter)  # "Frame.evaluateExpression": n
    call_s: Counter[str] = field(default_factory=Counter)  # summed round trips per kind
    replies_s: list[float] = field(default_factory=list)  # each round trip
    events: Counter[str] = field(default_factory=Counter)  # "Page.frameNavigated": n
    fire_and_forget: int = 0  # __waitInfo__ and such: no reply
    bytes_out: int = 0
    bytes_in: int = 0
    cpu_s: float = 0.0  # this thread's time encoding, sending, decoding, dispatching

    def as_dict(self, containers: int) -> dict[str, Any]:
        per = max(1, containers)
        ordered = sorted(self.replies_s)
        calls = sum(self.calls.values())
        return {
            "calls_total": calls,
            "calls": calls / per,
            "by_kind": {kind: n / per for kind, n in self.calls.most_common()},
            "call_ms": sum(self.call_s.values()) * 1000 / per,
            "call_ms_by_kind": {k: s * 1000 / per for k, s in self.call_s.most_common()},
            "rtt_ms": {
                "mean": sum(ordered) * 1000 / len(ordered) if ordered else None,
                "p50": quantile(ordered, 0.5) * 1000 if ordered else None,
                "p95": quantile(ordered, 0.95) * 1000 if ordered else None,
            },
            "events": sum(self.events.values()) / per,
            "events_by_kind": {kind: n / per for kind, n in self.events.most_common()},
            "fire_and_forget": self.fire_and_forget / per,
            "bytes_out": self.bytes_out / per,
            "bytes_in": self.bytes_in / per,
            "client_cpu_ms": self.cpu_s * 1000 / per,
        }


class ProtocolMeter:
    """Counts the Playwright client's messages into the tally being watched (one at a time:
    the contenders run one after the other). Messages of ignored objects (the profile's own
    CDP sessions) are left out, so the figures are what the measured code asked for."""

    def __init__(self) -> None:
        self.tally: ProtocolTally | None = None
        self._ignored: set[str] = set()
        self._ignored_calls: set[int] = set()  # ids of their calls, whose replies have no guid
        self._last_out = 0  # the size of the message being sent / received right now
        self._last_in = 0
        self._decode_s = 0.0

    def ignore(self, guid: str) -> None:
        self._ignored.add(guid)

    @contextlib.contextmanager
    def watching(self, tally: ProtocolTally) -> Iterator[ProtocolTally]:
        """Count into ``tally`` for the duration (a contender's tally, over its chunks)."""
        self.tally = tally
        try:
            yield tally
        finally:
            self.tally = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[ProtocolMeter]:
        """Patch the client's classes for the duration; the originals come back on exit."""
        from playwright._impl.connection import Connection
        from playwright._impl.transport import Transport

        saved = {
            (Connection, "send_message_to_server"): Connection.send_message_to_server,
            (Connection, "dispatch"): Connection.dispatch,
            (Transport, "serialize_message"): Transport.serialize_message,
            (Transport, "deserialize_message"): Transport.deserialize_message,
        }
        Connection.send_message_to_server = self._sending(Connection.send_message_to_server)
        Connection.dispatch = self._dispatching(Connection.dispatch)
        Transport.serialize_message = self._encoding(Transport.serialize_message)
        Transport.deserialize_message = self._decoding(Transport.deserialize_message)
        try:
            yield self
        finally:
            for (owner, name), original in saved.items():
                setattr(owner, name, original)

    def _encoding(self, original):
        meter = self

        def serialize_message(transport, message):
            data = original(transport, message)
            meter._last_out = len(data)
            return data

        return serialize_message

    def _decoding(self, original):
        meter = self

        def deserialize_message(transport, data):
            if meter.tally is None:  # not measuring: no clock calls (py-spy samples them)
                return original(transport, data)
            began = time.thread_time()
            message = original(transport, data)
            meter._last_in = len(data)
            meter._decode_s = time.thread_time() - began
            return message

        return deserialize_message

    def _sending(self, original):
        meter = self

        def send_message_to_server(connection, owner, method, params, options):
            tally = meter.tally
            if tally is None or owner._guid in meter._ignored:
                future = original(connection, owner, method, params, options)
                if owner._guid in meter._ignored and connection._callbacks:
                    meter._ignored_calls.add(next(reversed(connection._callbacks)))
                return future
            kind = f"{owner._type}.{method}"
            meter._last_out = 0
            cpu, began = time.thread_time(), time.perf_counter()
            future = original(connection, owner, method, params, options)
            tally.cpu_s += time.thread_time() - cpu
            tally.bytes_out += meter._last_out
            if future.done():  # fire-and-forget: completed at once, never answered
                tally.fire_and_forget += 1
                return future
            tally.calls[kind] += 1

            def replied(_future) -> None:
                took = time.perf_counter() - began
                tally.replies_s.append(took)
                tally.call_s[kind] += took

            future.add_done_callback(replied)
            return future

        return send_message_to_server

    def _dispatching(self, original):
        meter = self

        def dispatch(connection, message):
            tally = meter.tally
            ignored = message.get("guid") in meter._ignored
            if message.get("id") in meter._ignored_calls:
                meter._ignored_calls.discard(message["id"])
                ignored = True
            if tally is None or ignored:
                return original(connection, message)
            if not message.get("id"):
                target = connection._objects.get(message.get("guid") or "")
                owner = target._type if target is not None else "?"
                tally.events[f"{owner}.{message.get('method')}"] += 1
            tally.bytes_in += meter._last_in
            cpu = time.thread_time()
            try:
                return original(connection, message)
            finally:
                tally.cpu_s += time.thread_time() - cpu + meter._decode_s
                meter._last_in, meter._decode_s = 0, 0.0

        return dispatch


# -- the renderer's own counters ---------------------------------------------------------------

# Counters that restart with each document (per-frame agents in the renderer).
DOCUMENT_COUNTERS = (
    "TaskDuration",
    "TaskOtherDuration",
    "ScriptDuration",
    "V8CompileDuration",
    "LayoutDuration",
    "RecalcStyleDuration",
    "DevToolsCommandDuration",
    "LayoutCount",
    "RecalcStyleCount",
)
GAUGES = ("Nodes", "JSEventListeners", "JSHeapUsedSize", "LayoutObjects", "Documents")


class PageMetrics:
    """``Performance.getMetrics`` of one page, summed over its documents.

    A new document (another ``NavigationStart``) restarts the counters, so its reading is
    added whole; within one document the difference from the last reading is added. Work
    a document does after the last reading before it is replaced is lost: ``guard_goto``
    takes a reading before every navigation so that nothing else is."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._last: dict[str, float] | None = None
        self.totals: Counter[str] = Counter()
        self.gauges: dict[str, float] = {}
        self.documents = 0
        self.active = True  # guard_goto reads only while the tracker is active

    @classmethod
    async def attach(cls, page: Any, meter: ProtocolMeter) -> PageMetrics:
        session = await page.context.new_cdp_session(page)
        meter.ignore(session._impl_obj._guid)
        await session.send("Performance.enable")
        tracker = cls(session)
        await tracker.read()
        return tracker

    async def read(self, count: bool = True) -> None:
        """Add what the page did since the last reading (``count=False``: only take the new
        reading as the base, e.g. after the page sat idle while the other contender ran)."""
        answer = await self._session.send("Performance.getMetrics")
        values = {metric["name"]: metric["value"] for metric in answer["metrics"]}
        last = self._last
        fresh = last is None or values.get("NavigationStart") != last.get("NavigationStart")
        if last is not None and count:
            for name in DOCUMENT_COUNTERS:
                now = values.get(name, 0.0)
                self.totals[name] += now if fresh else max(0.0, now - last.get(name, 0.0))
            self.documents += fresh
        self.gauges = {name: values.get(name, 0.0) for name in GAUGES}
        self._last = values

    def guard_goto(self, page: Any) -> None:
        """Read the metrics before each ``page.goto`` of this page (patched on the instance):
        a reading before a document goes keeps its work in the sum."""
        original = page.goto
        tracker = self

        async def goto(*args: Any, **kwargs: Any) -> Any:
            if tracker.active:
                with contextlib.suppress(Exception):  # a page closing under us: no reading
                    await tracker.read()
            return await original(*args, **kwargs)

        page.goto = goto

    async def detach(self) -> None:
        """Stop reading (the page may go on navigating) and close the CDP session."""
        self.active = False
        with contextlib.suppress(Exception):
            await self._session.detach()


def browser_figures(trackers: list[PageMetrics], containers: int) -> dict[str, Any]:
    """The pages' counters summed, per container: seconds become milliseconds."""
    per = max(1, containers)
    total: Counter[str] = Counter()
    gauges: Counter[str] = Counter()
    for tracker in trackers:
        total.update(tracker.totals)
        gauges.update(tracker.gauges)
    ms = {
        "task_ms": "TaskDuration",
        "task_other_ms": "TaskOtherDuration",
        "script_ms": "ScriptDuration",
        "v8_compile_ms": "V8CompileDuration",
        "layout_ms": "LayoutDuration",
        "recalc_style_ms": "RecalcStyleDuration",
        "devtools_ms": "DevToolsCommandDuration",
    }
    figures: dict[str, Any] = {key: total[name] * 1000 / per for key, name in ms.items()}
    figures["layouts"] = total["LayoutCount"] / per
    figures["style_recalcs"] = total["RecalcStyleCount"] / per
    figures["documents"] = sum(tracker.documents for tracker in trackers) / per
    figures["pages"] = len(trackers)
    figures["at_end"] = dict(gauges)  # summed over the pages
    return figures


# -- a Chromium trace -------------------------------------------------------------------------

# Events counted (per container) whatever their rank: how often the page ran a script, a
# timer, forced style and layout, recalculated style, laid out, painted.
COUNTED_EVENTS = frozenset(
    {
        "FunctionCall",
        "TimerFire",
        "Blink.ForcedStyleAndLayout.UpdateTime",  # a script asked for style or layout
        "UpdateLayoutTree",
        "Layout",
        "Paint",
    }
)
TRACE_CATEGORIES = (
    "toplevel",
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8.execute",
    "blink",
    "cc",
    "gpu",
    "viz",
    "loading",
)

# Kinds of work by trace-event name: the first kind with a fragment found in the name wins
# (style before layout: "UpdateLayoutTree" is style; script before raster: "...AnimationFrame").
WORK_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("task overhead", ("RunTask",)),  # the envelope's self time: what no finer event covers
    ("gc", ("MinorGC", "MajorGC", "GC_", "BlinkGC", "CppGC")),
    ("devtools", ("DevTools", "Inspector", "Devtools")),
    ("script", ("FunctionCall", "EvaluateScript", "Microtask", "TimerFire", "EventDispatch",
                "AnimationFrame", "IdleCallback", "XHR", "CompileScript", "CompileCode",
                "CacheScript", "EvaluateModule", "MutationObserver", "v8.", "V8.", "v8::",
                "ScriptController", "ScheduledAction")),
    ("style", ("UpdateLayoutTree", "RecalculateStyles", "StyleSheet", "Style")),
    ("layout", ("Layout", "HitTest", "IntersectionObserver")),
    ("paint", ("Paint", "Layerize", "UpdateLayer")),
    ("image decode", ("Decode",)),
    ("parse", ("ParseHTML", "HTMLDocumentParser")),
    ("raster & composite", ("Raster", "Composit", "Commit", "Frame", "Tile", "Display", "Draw",
                            "Swap", "cc::", "viz::", "Proxy", "LayerTree", "Skia", "gpu::",
                            "Gpu", "GLES", "SharedImage", "AnimationHost", "ScrollTree",
                            "Graphics.Pipeline")),
    ("network & loading", ("URLLoader", "Cors", "Resource", "network::", "Http", "Socket",
                           "Net")),
    ("ipc", ("mojo", "Mojo", "IPC", "SimpleWatcher", "EpollEvent", "ChannelAssociated")),
)  # fmt: skip


def work_kind(name: str) -> str:
    """The kind of work a trace event is, by its name; 'other' when no fragment matches (the
    JSON lists the biggest events of each thread group by name, to check the kinds by)."""
    for kind, fragments in WORK_KINDS:
        if any(fragment in name for fragment in fragments):
            return kind
    return "other"


def thread_group(process: str, thread: str) -> str:
    """Where a thread's CPU goes in the table: the renderers' main threads apart from their
    other threads, then the browser, the GPU, the network service and the rest."""
    if process == "Renderer":
        return "renderer main" if thread == "CrRendererMain" else "renderer other threads"
    if process == "Browser":
        return "browser process"
    if process.startswith("GPU"):
        return "gpu process"
    if "NetworkService" in process or "network" in process.lower():
        return "network service"
    if "tracing" in process.lower():
        return "tracing itself"
    return "other processes"


def analyse_trace(data: bytes, containers: int) -> dict[str, Any]:
    """Self CPU (thread time) per thread group and per kind of work, per container, and the
    bytes loaded per container by type. Complete ("X") events with a thread duration are
    nested by wall time on each thread; an event's self time is its thread time less its
    children's."""
    parsed = json.loads(data)
    events = parsed["traceEvents"] if isinstance(parsed, dict) else parsed
    processes, threads = _names(events)
    by_thread: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for event in events:
        if event.get("ph") == "X" and "tdur" in event and "dur" in event:
            by_thread[(event["pid"], event["tid"])].append(event)
    per = max(1, containers)
    groups: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for (pid, tid), thread_events in by_thread.items():
        group = thread_group(processes.get(pid, "?"), threads.get((pid, tid), "?"))
        busy, own = _self_times(thread_events)
        groups[group] += busy
        counts[group].update(event["name"] for event in thread_events)
        for name, micros in own.items():
            kinds[group][work_kind(name)] += micros
            names[group][name] += micros
    return {
        "containers": containers,
        "cpu_ms": {group: us / 1000 / per for group, us in groups.most_common()},
        "kinds_ms": {
            group: {kind: us / 1000 / per for kind, us in counts.most_common()}
            for group, counts in kinds.items()
        },
        "top_events_ms": {
            group: {name: us / 1000 / per for name, us in counts.most_common(12)}
            for group, counts in names.items()
        },
        "counts": {group: _counted(tally, per) for group, tally in counts.items()},
        "network": _network(events, per),
        "events": len(events),
    }


def _counted(tally: Counter[str], per: int, top: int = 30) -> dict[str, float]:
    """The ``top`` most frequent events, and the COUNTED_EVENTS whatever their rank."""
    kept = {name for name, _n in tally.most_common(top)} | COUNTED_EVENTS
    return {name: n / per for name, n in tally.most_common() if name in kept}


def _names(events: list[dict]) -> tuple[dict[int, str], dict[tuple[int, int], str]]:
    processes: dict[int, str] = {}
    threads: dict[tuple[int, int], str] = {}
    for event in events:
        if event.get("ph") != "M":
            continue
        name = (event.get("args") or {}).get("name")
        if event.get("name") == "process_name" and name:
            processes[event["pid"]] = name
        elif event.get("name") == "thread_name" and name:
            threads[(event["pid"], event["tid"])] = name
    return processes, threads


def _self_times(events: list[dict]) -> tuple[float, Counter[str]]:
    """(busy thread time of the top-level events, self thread time by event name), in µs."""
    events.sort(key=lambda event: (event["ts"], -event["dur"]))
    own: Counter[str] = Counter()
    busy = 0.0
    stack: list[list[Any]] = []  # [end, name, thread time, children's thread time]

    def close_until(ts: float) -> None:
        while stack and stack[-1][0] <= ts:
            _end, name, cpu, children = stack.pop()
            own[name] += max(0.0, cpu - children)

    for event in events:
        close_until(event["ts"])
        cpu = float(event["tdur"])
        if stack:
            stack[-1][3] += cpu
        else:
            busy += cpu
        stack.append([event["ts"] + event["dur"], event["name"], cpu, 0.0])
    close_until(float("inf"))
    return busy, own


def _network(events: list[dict], per: int) -> dict[str, Any]:
    """The pages' http(s) requests per container by MIME type, the bytes they brought (as
    sent over the wire: ``ResourceFinish``, or the data received when it says 0), and how
    many failed or were cancelled. Chromium's own chrome:// loads are left out."""
    url_of: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    finished: dict[str, float] = {}
    received: Counter[str] = Counter()
    failed = 0
    for event in events:
        data, name = _data(event), event.get("name")
        request = data.get("requestId", "")
        if name == "ResourceSendRequest":
            url_of[request] = data.get("url", "")
        elif name == "ResourceReceiveResponse":
            kind_of[request] = _mime_kind(data.get("mimeType", ""))
        elif name == "ResourceReceivedData":
            received[request] += float(data.get("encodedDataLength") or 0)
        elif name == "ResourceFinish":
            finished[request] = float(data.get("encodedDataLength") or 0)
            failed += bool(data.get("didFail")) and url_of.get(request, "").startswith("http")
    requests: Counter[str] = Counter()
    loaded: Counter[str] = Counter()
    for request, url in url_of.items():
        if not url.startswith("http"):
            continue
        kind = kind_of.get(request, "no response")
        requests[kind] += 1
        loaded[kind] += finished.get(request) or received[request]
    return {
        "requests": sum(requests.values()) / per,
        "bytes": sum(loaded.values()) / per,
        "failed": failed / per,
        "requests_by_type": {kind: n / per for kind, n in requests.most_common()},
        "bytes_by_type": {kind: n / per for kind, n in loaded.most_common()},
    }


def _data(event: dict) -> dict:
    data = (event.get("args") or {}).get("data")
    return data if isinstance(data, dict) else {}


def _mime_kind(mime: str) -> str:
    for part, kind in (("image", "image"), ("json", "json"), ("html", "html"), ("css", "css")):
        if part in mime:
            return kind
    return "script" if "javascript" in mime else (mime or "unknown")


# -- py-spy ------------------------------------------------------------------------------------

PY_SPY_RATE = 1000  # samples a second (py-spy reads our stack from its own process)
PY_SPY_ATTACH_S = 10.0


class PySpy:
    """``py-spy record`` on this process. Python-level stacks of the thread running Python:
    time inside C code counts to the Python frame calling it. Under CPU contention a thread
    waiting for a core still holds the GIL, so read the shares, not the sample counts."""

    def __init__(self, process: subprocess.Popen[bytes], out: Path) -> None:
        self._process = process
        self._out = out

    @staticmethod
    def binary() -> str | None:
        found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return found if Path(found).exists() else None

    @classmethod
    def start(cls, pid: int, out: Path) -> PySpy | None:
        """Started and attached (its first line on stdout), or None when it cannot attach."""
        spy = cls.binary()
        if spy is None:
            return None
        command = [spy, "record", "-p", str(pid), "-o", str(out), "--format", "raw"]
        # --gil: only samples of the thread holding the GIL, i.e. running Python; a thread
        # blocked in a system call is not counted. Blocking mode (py-spy pauses us for each
        # sample): --nonblocking reads torn stacks under load.
        command += ["-r", str(PY_SPY_RATE), "--gil"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if not _first_output(process, PY_SPY_ATTACH_S):  # "py-spy> Sampling process ..."
            _stop(process)
            return None
        return cls(process, out)

    def stop(self) -> str:
        """Its raw stacks (``stack count`` lines; empty when it took no sample)."""
        _stop(self._process)
        return self._out.read_text(encoding="utf-8") if self._out.exists() else ""


def _first_output(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return False
    return bool(process.stdout.readline()) and process.poll() is None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


# Areas of the innermost frame by its file, which py-spy gives relative to sys.path
# ("asyncio/events.py") or absolute: matched as "/" + path.
AREAS = (
    ("/playwright/", "playwright client"),
    ("/actors/", "landmark actor"),
    ("/benchmarks/", "bench harness + meters"),
    ("/config/", "landmark config"),
    ("/pydantic", "pydantic"),
    ("/asyncio/", "asyncio loop"),
    ("/selectors.py", "asyncio loop"),
    ("/json/", "json"),
    ("/psutil/", "psutil"),
)


def summarise_stacks(raw: str, top: int = 10) -> dict[str, Any]:
    """py-spy's raw output (``stack count`` lines) as shares of the samples: by the area of
    the innermost frame (``areas``: where the CPU went), by the areas anywhere on the stack
    (``inclusive``: e.g. psutil called from landmark's own code counts for both), and the
    innermost frames themselves."""
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        stack_frames = stack.split(";")
        total += samples
        frames[_short(stack_frames[-1])] += samples
        areas[_area(stack_frames[-1])] += samples
        for area in {_area(frame) for frame in stack_frames}:
            inclusive[area] += samples
    if not total:
        return {"samples": 0, "note": "py-spy took no sample"}
    return {
        "samples": total,
        "rate_hz": PY_SPY_RATE,
        "areas": {area: n / total for area, n in areas.most_common()},
        "inclusive": {area: n / total for area, n in inclusive.most_common()},
        "frames": {frame: n / total for frame, n in frames.most_common(top)},
    }


def _area(frame: str) -> str:
    where = "/" + frame.split(" (", 1)[-1]
    return next((area for part, area in AREAS if part in where), "other")


def _short(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (to/file.py:12)'."""
    if " (" not in frame:
        return frame
    name, location = frame.split(" (", 1)
    return f"{name} ({'/'.join(Path(location.rstrip(')')).parts[-2:])})"


def quantile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank quantile of sorted values (as ``actor_bench.quantile``)."""
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
