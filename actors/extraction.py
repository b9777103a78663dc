"""Reading the fields of an opened container: one in-page call, then typed values.

The browser side (``landmarks.js``) waits for and resolves every field in a single
``page.evaluate``: one CDP round trip per container, however many fields. This module
builds that call's plan from the job's ``FieldSpec``s and turns the raw strings it returns
into typed values (``finish_value``), which is pure Python and needs no browser.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from landmark.actors.dates import parse_date
from landmark.config.fields import DEFAULT_SEPARATOR, FieldSpec, FieldType, TextOf

if TYPE_CHECKING:
    from playwright.async_api import Page

LANDMARKS_JS: str = (
    resources.files("landmark.actors").joinpath("landmarks.js").read_text(encoding="utf-8")
)

STRATEGIES = ("cached", "landmark", "css")
DEFAULT_ORDER = list(STRATEGIES)

# The same class as WS in landmarks.js (JavaScript's \s plus the zero-width space), so
# both sides normalise a label to the very same string.
_WS = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]+")
# Direction marks are invisible: "ASIN\u200f:\u200e" is the label "ASIN:". Dropped, not spaced.
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# The hot path: settle if the namespace is there, else say so (no exception, no 2nd call);
# the plan travels once per document (see evaluate_planned).
_SETTLE_CALL = """([key, spec, timeoutMs, quietMs, errorSelector]) => {
  const L = window.__landmark;
  if (!L) return {missing: true};
  const plan = L.plan(key, spec);
  if (!plan) return {missingPlan: true};
  return L.settle(plan, timeoutMs, quietMs, errorSelector).then(L.wire);
}"""
_RESOLVE_CALL = """([key, spec]) => {
  const L = window.__landmark;
  if (!L) return {missing: true};
  const plan = L.plan(key, spec);
  if (!plan) return {missingPlan: true};
  return L.wire({state: "ready", result: L.resolve(plan), errorText: null, waitedMs: 0});
}"""

# page.evaluate has no deadline of its own; a page stuck in a busy loop would hang us.
_EVALUATE_GRACE = timedelta(seconds=5)


def collapse(text: str) -> str:
    return _WS.sub(" ", _BIDI.sub("", text)).strip(" ")


def normalise_label(text: str) -> str:
    """Whitespace collapsed, lowercased, a trailing ':' dropped: the twin of the in-page one."""
    return collapse(text).lower().rstrip(":\uff1a").strip(" ")


# -- the plan sent to the page --------------------------------------------------------


def field_plan(
    fields: list[FieldSpec],
    orders: dict[str, list[str]] | None = None,
    cached_paths: dict[str, list[int]] | None = None,
) -> list[dict[str, Any]]:
    """One JSON-ready entry per field; strategies a field cannot use are left out of its order."""
    return [_field_entry(spec, orders or {}, cached_paths or {}) for spec in fields]


def _field_entry(
    spec: FieldSpec, orders: dict[str, list[str]], cached_paths: dict[str, list[int]]
) -> dict[str, Any]:
    path = cached_paths.get(spec.name)
    order = list(orders.get(spec.name) or DEFAULT_ORDER)
    unknown = [name for name in order if name not in STRATEGIES]
    if unknown:
        raise ValueError(f"field {spec.name!r}: unknown strategies {unknown}; know {STRATEGIES}")
    usable = {
        "cached": path is not None,
        "landmark": bool(spec.labels or spec.label_regex),
        "css": spec.css is not None,
    }
    return {
        "name": spec.name,
        "labels": [normalise_label(label) for label in spec.labels],
        "labelRegex": spec.label_regex,
        "relation": spec.relation.value,
        "attr": spec.attr,
        "css": spec.css,
        "order": [name for name in dict.fromkeys(order) if usable[name]],
        "cachedPath": list(path) if path is not None else None,
        "required": spec.required,
        "many": spec.many,
        "own": spec.text is TextOf.OWN,
    }


# -- the one in-page call ----------------------------------------------------------------


@dataclass(slots=True)
class Settled:
    """What the page said: ``fields`` maps a name to {value, strategy, error, path} (raw)."""

    state: str  # "ready" | "error" | "timeout"
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    error_text: str | None = None
    waited_ms: float = 0.0
    root_found: bool = True


async def ensure_installed(page: Page) -> None:
    """Define ``window.__landmark`` in the page's current document (a no-op when it is there)."""
    await page.evaluate(LANDMARKS_JS)


async def settle_and_resolve(
    page: Page,
    root: str | None,
    plan: list[dict[str, Any]],
    timeout: timedelta,  # noqa: ASYNC109 - the in-page wait's own deadline
    quiet: timedelta,
    error_selector: str | None = None,
) -> Settled:
    """Wait for the container's fields and read them all, in one ``page.evaluate``.

    A second and third call happen only when the document lacks the script (no init
    script, or a fresh navigation): install it, then ask again; a second one when the
    document lost the plan it was sent (see :func:`evaluate_planned`).
    """
    spec = {"root": root, "fields": plan}
    rest = [_ms(timeout), _ms(quiet), error_selector]
    deadline = (timeout + _EVALUATE_GRACE).total_seconds()
    async with asyncio.timeout(deadline):
        return parse_settled(await call_planned(page, _SETTLE_CALL, spec, rest), plan)


async def resolve_now(page: Page, root: str | None, plan: list[dict[str, Any]]) -> Settled:
    """Read the fields as the page stands, without waiting: one ``page.evaluate``."""
    spec = {"root": root, "fields": plan}
    async with asyncio.timeout(_EVALUATE_GRACE.total_seconds()):
        return parse_settled(await call_planned(page, _RESOLVE_CALL, spec, []), plan)


# -- the plan, once per document ------------------------------------------------------------

PLANS_KEPT = 16  # as many as landmarks.js keeps per document


class _Held:
    """The plan keys a page's current document holds, as far as Python knows: filled as
    plans are sent, emptied when the main frame navigates (a new document starts with none).
    Only a guess, and a safe one: a document that lacks a plan says so and is sent it.
    (No ``__slots__``: Playwright keeps its wrapper of ``navigated`` on the instance.)"""

    def __init__(self) -> None:
        self.keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def add(self, key: str) -> None:
        self.keys[key] = None
        self.keys.move_to_end(key)
        while len(self.keys) > PLANS_KEPT:
            self.keys.popitem(last=False)

    def clear(self) -> None:
        self.keys.clear()

    def navigated(self, frame: Any) -> None:
        if frame.parent_frame is None:
            self.keys.clear()


_HELD: weakref.WeakKeyDictionary[Any, _Held] = weakref.WeakKeyDictionary()


def _held(page: Any) -> _Held:
    held = _HELD.get(page)
    if held is None:
        held = _HELD[page] = _Held()
        on = getattr(page, "on", None)  # a stand-in page (tests) may have no events
        if on is not None:
            on("framenavigated", held.navigated)
    return held


def plan_key(spec: dict[str, Any]) -> str:
    """The plan's own digest: the same plan has the same key in every page and process, and
    any change (a learned order, a cached path) makes a new one, sent once."""
    text = json.dumps(spec, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


async def evaluate_planned(page: Page, expression: str, spec: dict[str, Any], rest: list) -> Any:
    """``page.evaluate(expression, [key, spec_or_null, *rest])``: the plan ``spec`` is sent
    only when the page's document is not known to hold it, else just its key. A document
    that lost it (navigated, reloaded, evicted it) answers ``{missingPlan: true}`` and is
    sent it again: one more call, never a failure. ``{missing: true}`` (no landmarks.js)
    is returned as is, for the caller to install it."""
    key = plan_key(spec)
    held = _held(page)
    sent = key not in held
    answer = _decoded(await page.evaluate(expression, [key, spec if sent else None, *rest]))
    if not sent and _said(answer, "missingPlan"):
        sent = True
        answer = _decoded(await page.evaluate(expression, [key, spec, *rest]))
    if _said(answer, "missing") or _said(answer, "missingPlan"):
        held.clear()
    else:
        held.add(key)
    return answer


async def call_planned(page: Page, expression: str, spec: dict[str, Any], rest: list) -> Any:
    """:func:`evaluate_planned`, installing landmarks.js first if the document lacks it."""
    answer = await evaluate_planned(page, expression, spec, rest)
    if _said(answer, "missing"):
        await ensure_installed(page)
        answer = await evaluate_planned(page, expression, spec, rest)
    if _said(answer, "missing") or _said(answer, "missingPlan"):
        raise RuntimeError("landmarks.js could not be installed in the page")
    return answer


def _decoded(answer: Any) -> Any:
    """An answer comes as landmarks.js's ``wire()`` JSON text; a flag as a plain object."""
    return json.loads(answer) if isinstance(answer, str) else answer


def _said(answer: Any, flag: str) -> bool:
    return isinstance(answer, dict) and bool(answer.get(flag))


def parse_settled(answer: dict[str, Any], plan: list[dict[str, Any]] | None = None) -> Settled:
    """The page's answer to ``settle`` (or a call that ends in it) as a :class:`Settled`.

    The page leaves out what it need not send (``wire()`` in landmarks.js): every field
    gets its ``value``, ``strategy``, ``error`` and ``path`` back here, None when absent, and
    a field read through its cached path gets that path from ``plan``, which sent it.
    """
    result = answer.get("result") or {}
    cached = {entry["name"]: entry.get("cachedPath") for entry in plan or ()}
    fields = {}
    for name, raw in (result.get("fields") or {}).items():
        strategy = raw.get("strategy")
        path = raw.get("path")
        if path is None and strategy == "cached":
            path = cached.get(name)
        fields[name] = {
            **raw,
            "value": raw.get("value"),
            "strategy": strategy,
            "error": raw.get("error"),
            "path": list(path) if path is not None else None,
        }
    return Settled(
        state=answer["state"],
        fields=fields,
        error_text=answer.get("errorText"),
        waited_ms=float(answer.get("waitedMs") or 0.0),
        root_found=bool(result.get("rootFound", False)),
    )


def _ms(duration: timedelta) -> float:
    return max(0.0, duration.total_seconds() * 1000)


# -- typed values ---------------------------------------------------------------------------


# What a page says when a field is simply not there, so that its ``default`` applies; a
# job that is wrong (a bad selector, a bad regex) keeps its error instead.
ABSENT = frozenset(
    {"label not found", "css matched nothing", "value empty", "not found", "cache stale",
     "root not found", "no strategy to try"}
)  # fmt: skip


@dataclass(slots=True)
class Finished:
    """A field's final word: its value or its error, and a note when the page disagreed
    with itself (other candidates of equal standing gave other values)."""

    value: Any = None
    error: str | None = None
    note: str | None = None


def finish_field(spec: FieldSpec, raw: dict[str, Any], page_url: str) -> Finished:
    """The page's raw answer for one field (``{value, error, others, label}``), finished."""
    if raw.get("value") is None:
        error = raw.get("error") or "not found"
        if spec.default is not None and error in ABSENT:
            return Finished(*finish_default(spec, page_url))
        return Finished(error=error)
    value, error = finish_value(spec, raw["value"], page_url)
    if error is not None:
        return Finished(error=error)
    rivals = [finish_value(spec, other, page_url)[0] for other in raw.get("others") or []]
    rivals = [rival for rival in rivals if rival is not None and rival != value]
    if not rivals:
        return Finished(value)
    note = (
        f"ambiguous: {raw.get('label') or spec.name!r} also gives "
        f"{', '.join(_shown(str(r)) for r in rivals)} (kept {_shown(str(value))}); "
        "narrow it with containers.scope or a css"
    )
    return Finished(value, note=note)


def finish_value(spec: FieldSpec, raw: str | list[str], page_url: str) -> tuple[Any, str | None]:
    """Apply the field's pattern and type to the raw text: (value, None) or (None, reason).

    A ``many`` field's raw value is a list (one item per element the page found) or a text
    to split on the separator; each item is finished on its own, and the first bad item
    fails the field, named by its position, rather than being dropped from the list.
    """
    if not spec.many:
        return _finish_one(spec, raw if isinstance(raw, str) else " ".join(raw), page_url)
    items = raw if isinstance(raw, list) else re.split(spec.separator or DEFAULT_SEPARATOR, raw)
    values = []
    for position, item in enumerate(i for i in items if i and collapse(i)):
        value, error = _finish_one(spec, item, page_url)
        if error is not None:
            return None, f"item {position + 1}: {error}"
        values.append(value)
    return (values, None) if values else (None, "value empty")


def finish_default(spec: FieldSpec, page_url: str) -> tuple[Any, str | None]:
    """The field's ``default`` for a page that has no value: typed, never mapped."""
    assert spec.default is not None
    value, error = _typed(spec, spec.default, page_url)
    if error is not None:
        return None, f"default: {error}"
    return ([value] if spec.many else value), None


def _finish_one(spec: FieldSpec, raw: str, page_url: str) -> tuple[Any, str | None]:
    text = raw
    if spec.pattern is not None:
        match = re.search(spec.pattern, raw)
        if match is None or match.group(1) is None:
            return None, "pattern did not match"
        text = match.group(1)
    text = collapse(text)
    if not text:
        return None, "value empty"
    if spec.map:
        mapped = next((v for p, v in spec.map.items() if re.search(p, text, re.I)), None)
        if mapped is None:
            return None, f"no map entry matches {_shown(text)}"
        text = mapped
    return _typed(spec, text, page_url)


def _typed(spec: FieldSpec, text: str, page_url: str) -> tuple[Any, str | None]:
    try:
        if spec.type in (FieldType.DATE, FieldType.DATETIME):
            return parse_date(text, spec.formats, dated_only=spec.type is FieldType.DATE), None
        return _CONVERTERS[spec.type](text, page_url), None
    except ValueError as error:
        return None, str(error)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _as_string(text: str, _url: str) -> str:
    return text


_GROUPED = re.compile(r"\d{1,3}(?:[,'_ \u00a0\u202f]\d{3})+")


def _ungroup(digits: str) -> str:
    """'1,234,567' → '1234567'; a lone comma that is not thousands grouping stays (and fails)."""
    head, dot, tail = digits.partition(".")
    if _GROUPED.fullmatch(head):
        head = re.sub(r"[,'_ \u00a0\u202f]", "", head)
    return head + dot + tail


def _signed(text: str) -> tuple[str, str]:
    text = text.replace("\u2212", "-").strip()
    sign = ""
    if text[:1] in "+-":
        sign, text = text[0], text[1:].strip()
    return sign, text


def _as_integer(text: str, _url: str) -> int:
    sign, body = _signed(text)
    body = _ungroup(body)
    if not re.fullmatch(r"\d+", body):
        raise ValueError(f"not an integer: {_shown(text)}")
    return int(sign + body)


def _as_number(text: str, _url: str) -> float:
    sign, body = _signed(text)
    body = _ungroup(body)
    if not re.fullmatch(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", body):
        raise ValueError(f"not a number: {_shown(text)}")
    number = float(sign + body)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {_shown(text)}")
    return number


def _as_url(text: str, page_url: str) -> str:
    url = urljoin(page_url, text.strip())
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {_shown(text)}")
    return url


_CONVERTERS = {
    FieldType.STRING: _as_string,
    FieldType.INTEGER: _as_integer,
    FieldType.NUMBER: _as_number,
    FieldType.URL: _as_url,
}

__all__ = [
    "ABSENT",
    "LANDMARKS_JS",
    "Finished",
    "Settled",
    "call_planned",
    "collapse",
    "ensure_installed",
    "evaluate_planned",
    "field_plan",
    "finish_default",
    "finish_field",
    "finish_value",
    "normalise_label",
    "plan_key",
    "resolve_now",
    "settle_and_resolve",
]
