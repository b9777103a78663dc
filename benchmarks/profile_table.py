"""The table ``landmark bench profile`` prints: one row per figure, landmark beside bare, the
difference, and where the figure comes from (``benchmarks/README.md`` explains each)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from landmark.benchmarks.profile_meters import COUNTED_EVENTS

Value = float | str | None
Row = tuple[str, Value, Value, str]  # label, landmark, bare, source

TRACE_GROUPS = (
    "renderer main",
    "renderer other threads",
    "browser process",
    "gpu process",
    "network service",
)
MAIN_KINDS = (
    "script",
    "style",
    "layout",
    "paint",
    "raster & composite",
    "image decode",
    "parse",
    "gc",
    "devtools",
    "ipc",
    "network & loading",
    "task overhead",
    "other",
)


def print_profile(document: dict[str, Any]) -> None:
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 132)
    table = Table(title=title(document), title_justify="left")
    for name, justify in (("figure", "left"), ("landmark", "right"), ("bare", "right")):
        table.add_column(name, justify=justify)
    table.add_column("landmark − bare", justify="right")
    table.add_column("from", justify="left", style="dim")
    for heading, rows in text_sections(document):
        table.add_row(f"[bold]{heading}[/bold]", "", "", "", "")
        for row in rows:
            table.add_row(*row)
        table.add_section()
    console.print(table)
    for line in reading(document):
        console.print(line, highlight=False)


def markdown(document: dict[str, Any]) -> list[str]:
    """The same table as Markdown, for RESULTS.md: a bold row per section, then the reading."""
    lines = [
        title(document),
        "",
        "| figure | landmark | bare | landmark − bare | from |",
        "|---|--:|--:|--:|---|",
    ]
    for heading, rows in text_sections(document):
        lines.append(f"| **{_cell(heading)}** | | | | |")
        for label, *figures in rows:
            indent = "&nbsp;&nbsp;" * ((len(label) - len(label.lstrip(" "))) // 2)
            cells = [indent + _cell(label.lstrip(" ")), *map(_cell, figures)]
            lines.append("| " + " | ".join(cells) + " |")
    for line in reading(document):
        lines += ["", line]
    return lines


def title(document: dict[str, Any]) -> str:
    params = document["params"]
    return (
        f"landmark bench profile: {params['items']} containers, {params['mode']} mode, "
        f"site latency {params['latency_ms']:g} ms, {params['pages']} pages each; "
        "per container"
    )


TextRow = tuple[str, str, str, str, str]  # label, landmark, bare, difference, source


def text_sections(document: dict[str, Any]) -> list[tuple[str, list[TextRow]]]:
    """:func:`sections` with every value formatted, so the terminal and Markdown tables
    show the same figures the same way."""
    return [(heading, [_text_row(row) for row in rows]) for heading, rows in sections(document)]


def _text_row(row: Row) -> TextRow:
    label, ours, theirs, source = row
    return label, _text(ours), _text(theirs), _delta(ours, theirs), source


def sections(document: dict[str, Any]) -> list[tuple[str, list[Row]]]:
    lm, bare = document["contenders"]["landmark"], document["contenders"]["bare"]
    return [
        ("end to end", end_to_end(lm, bare)),
        ("landmark only: the coordinator and Ray", ray_rows(document)),
        ("Python, this process", python_rows(lm, bare)),
        ("Playwright calls (each a driver round trip of 1+ CDP commands)", call_rows(lm, bare)),
        ("renderer main threads, all pages (CDP Performance.getMetrics)", cdp_rows(lm, bare)),
        ("CPU by process (psutil)", process_rows(lm, bare)),
        (f"trace of {lm['trace']['containers']} containers: thread CPU", trace_rows(lm, bare)),
        ("network", network_rows(lm, bare)),
    ]  # fmt: skip


def end_to_end(lm: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    def pick(side: dict[str, Any], key: str) -> Value:
        return side["latency_ms"][key]

    return [
        ("containers", lm["containers"], bare["containers"], "records; failed ones fail the run"),
        ("wall per container, ms", lm["wall_ms"], bare["wall_ms"], "pass wall / containers"),
        ("latency mean, ms", pick(lm, "mean"), pick(bare, "mean"), "time with a page in hand"),
        ("latency p50, ms", pick(lm, "p50"), pick(bare, "p50"), "time with a page in hand"),
        ("latency p95, ms", pick(lm, "p95"), pick(bare, "p95"), "time with a page in hand"),
        ("accuracy", lm["accuracy"], bare["accuracy"], "scored against the site's truth"),
    ]


def ray_rows(document: dict[str, Any]) -> list[Row]:
    lm = document["contenders"]["landmark"]
    ray = lm.get("ray") or {}
    coordinator = document.get("coordinator") or {}
    source = coordinator.get("source")
    where = source or coordinator.get("note", "")
    return [
        ("coordinator CPU, ms", coordinator.get("cpu_ms"), None, where),
        ("coordinator wake-ups", coordinator.get("wakes"), None, where if source else ""),
        ("Ray calls", ray.get("calls"), None, f"1 per batch of {ray.get('batch_size')}"),
        ("Ray pickling, both ends, ms", ray.get("pickle_ms"), None, "batch + records, pickle 5"),
        ("Ray transport", "not run", None, "needs Ray: coordinator_bench"),
        ("in-page open (median), ms", _phases(lm.get("phases_ms") or {}), None, "record.timings"),
    ]


def python_rows(lm: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [
        ("CPU, ms", lm["python_cpu_ms"], bare["python_cpu_ms"], "time.process_time"),
        (
            "  on the Playwright wire, ms",
            lm["protocol"]["client_cpu_ms"],
            bare["protocol"]["client_cpu_ms"],
            "encode, decode, dispatch (client patch)",
        ),
    ]
    spy_lm, spy_bare = lm["py_spy"], bare["py_spy"]
    if "areas" not in spy_lm or "areas" not in spy_bare:
        note = spy_lm.get("note") or spy_bare.get("note") or "no samples"
        return [*rows, ("  py-spy", "—", "—", note)]
    areas = list(dict.fromkeys([*spy_lm["areas"], *spy_bare["areas"]]))[:7]
    for area in areas:
        ours = spy_lm["areas"].get(area, 0.0) * lm["python_cpu_ms"]
        theirs = spy_bare["areas"].get(area, 0.0) * bare["python_cpu_ms"]
        rows.append((f"  in {area}, ms", ours, theirs, "py-spy innermost frame x CPU"))
    ours = spy_lm["inclusive"].get("landmark actor", 0.0) * lm["python_cpu_ms"]
    rows.append(("  under landmark actor code, ms", ours, None, "py-spy any frame x CPU"))
    return rows


def call_rows(lm: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    ours, theirs = lm["protocol"], bare["protocol"]
    source = "Connection patch"
    return [
        ("calls", ours["calls"], theirs["calls"], source),
        ("  kinds", _kinds(ours["by_kind"]), _kinds(theirs["by_kind"]), source),
        ("round trip p50, ms", ours["rtt_ms"]["p50"], theirs["rtt_ms"]["p50"], source),
        ("round trip p95, ms", ours["rtt_ms"]["p95"], theirs["rtt_ms"]["p95"], source),
        ("waiting on calls, ms", ours["call_ms"], theirs["call_ms"], "sum of round trips"),
        ("events received", ours["events"], theirs["events"], source),
        ("bytes sent", ours["bytes_out"], theirs["bytes_out"], "Transport patch"),
        ("bytes received", ours["bytes_in"], theirs["bytes_in"], "Transport patch"),
    ]


def cdp_rows(lm: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    keys = (
        ("tasks, ms", "task_ms"),
        ("  script, ms", "script_ms"),
        ("  V8 compile, ms", "v8_compile_ms"),
        ("  style recalc, ms", "recalc_style_ms"),
        ("  layout, ms", "layout_ms"),
        ("  DevTools commands, ms", "devtools_ms"),
        ("  other task time, ms", "task_other_ms"),
        ("style recalcs (count)", "style_recalcs"),
        ("layouts (count)", "layouts"),
        ("documents (count)", "documents"),
    )
    return [(label, lm["browser"][key], bare["browser"][key], "getMetrics") for label, key in keys]


def process_rows(lm: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    names = (
        ("python (this process)", "python"),
        ("driver (node)", "driver"),
        ("browser process", "browser"),
        ("renderers", "renderer"),
        ("GPU, network, utility", "other"),
    )
    rows: list[Row] = [
        (label, lm["os_cpu_ms"][key], bare["os_cpu_ms"][key], "psutil") for label, key in names
    ]
    total = [sum(side["os_cpu_ms"][key] for _, key in names) for side in (lm, bare)]
    rows.append(("total, ms", total[0], total[1], "psutil"))
    rows.append(("the site (not ours), ms", lm["os_cpu_ms"]["site"], bare["os_cpu_ms"]["site"], ""))
    return rows


def trace_rows(lm: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    ours, theirs = lm["trace"], bare["trace"]
    rows: list[Row] = []
    for group in TRACE_GROUPS:
        rows.append(
            (f"{group}, ms", ours["cpu_ms"].get(group), theirs["cpu_ms"].get(group), "trace")
        )
        if group != "renderer main":
            continue
        mine, other = ours["kinds_ms"].get(group, {}), theirs["kinds_ms"].get(group, {})
        for kind in MAIN_KINDS:
            if kind in mine or kind in other:
                rows.append((f"  {kind}, ms", mine.get(kind), other.get(kind), "trace self time"))
    main_lm, main_bare = (
        ours["counts"].get("renderer main", {}),
        theirs["counts"].get("renderer main", {}),
    )
    for name in sorted(COUNTED_EVENTS):
        label = name.removeprefix("Blink.").removesuffix(".UpdateTime")
        rows.append((f"{label} (count)", main_lm.get(name), main_bare.get(name), "trace events"))
    rows.append(("traced wall per container, ms", ours["wall_ms"], theirs["wall_ms"], "trace"))
    return rows


def network_rows(lm: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    ours, theirs = lm["network"]["site_requests"], bare["network"]["site_requests"]
    rows: list[Row] = [("site requests", ours["total"], theirs["total"], "site /api/stats")]
    routes = [name for name in dict.fromkeys([*ours, *theirs]) if name != "total"]
    rows += [
        (f"  {route}", ours.get(route), theirs.get(route), "site /api/stats") for route in routes
    ]
    net_lm, net_bare = lm["trace"]["network"], bare["trace"]["network"]
    rows.append(("page requests", net_lm["requests"], net_bare["requests"], "trace"))
    for kind in dict.fromkeys([*net_lm["requests_by_type"], *net_bare["requests_by_type"]]):
        ours_n = net_lm["requests_by_type"].get(kind)
        theirs_n = net_bare["requests_by_type"].get(kind)
        rows.append((f"  {kind}", ours_n, theirs_n, "trace"))
    rows.append(("  failed or cancelled", net_lm["failed"], net_bare["failed"], "trace"))
    rows.append(("bytes loaded", net_lm["bytes"], net_bare["bytes"], "trace"))
    kinds = list(dict.fromkeys([*net_lm["bytes_by_type"], *net_bare["bytes_by_type"]]))
    for kind in kinds:
        ours_b, theirs_b = net_lm["bytes_by_type"].get(kind), net_bare["bytes_by_type"].get(kind)
        rows.append((f"  {kind} bytes", ours_b, theirs_b, "trace"))
    return rows  # fmt: skip


def reading(document: dict[str, Any]) -> list[str]:
    """The largest differences on the renderers' main threads, in words."""
    lm, bare = document["contenders"]["landmark"], document["contenders"]["bare"]
    ours = lm["trace"]["kinds_ms"].get("renderer main", {})
    theirs = bare["trace"]["kinds_ms"].get("renderer main", {})
    deltas = sorted(
        ((kind, ours.get(kind, 0.0) - theirs.get(kind, 0.0)) for kind in set(ours) | set(theirs)),
        key=lambda item: -item[1],
    )
    total = lm["os_cpu_ms"], bare["os_cpu_ms"]
    chromium = [sum(side[k] for k in ("browser", "renderer", "other")) for side in total]
    lines = [
        f"Chromium CPU per container (psutil): landmark {chromium[0]:.1f} ms, bare "
        f"{chromium[1]:.1f} ms; renderer main threads (getMetrics tasks): "
        f"{lm['browser']['task_ms']:.1f} vs {bare['browser']['task_ms']:.1f} ms.",
        "Largest differences on the renderer main threads (trace self time, landmark − bare): "
        + ", ".join(f"{kind} {delta:+.2f} ms" for kind, delta in deltas[:4]),
    ]
    return lines


def _phases(phases: dict[str, float]) -> str:
    """close, seek and click: the in-page steps of opening a card (click mode only)."""
    shown = [f"{name} {phases[name]:.1f}" for name in ("close", "seek", "click") if name in phases]
    return ", ".join(shown) or "—"


def _kinds(by_kind: dict[str, float]) -> str:
    return ", ".join(f"{kind.split('.')[-1]} {n:.2f}" for kind, n in list(by_kind.items())[:3])


def _cell(text: str) -> str:
    """A Markdown table cell: a ``|`` in a note or path would split it."""
    return text.replace("|", "\\|")


def _text(value: Value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 100):
        return f"{value:,.0f}"
    return f"{value:,.3f}" if abs(value) < 1 else f"{value:,.2f}"


def _delta(ours: Value, theirs: Value) -> str:
    if isinstance(ours, str) or isinstance(theirs, str) or ours is None or theirs is None:
        return ""
    if isinstance(ours, int) and isinstance(theirs, int):
        return f"{ours - theirs:+,d}"
    difference = float(ours) - float(theirs)
    return f"{difference:+,.3f}" if abs(difference) < 1 else f"{difference:+,.2f}"
