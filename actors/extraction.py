"""Reading the fields of an opened container: one in-page call, then typed values.

The browser side (``landmarks.js``) waits for and resolves every field in a single
``page.evaluate``: one CDP round trip per container, however many fields. This module
builds that call's plan from the job's ``FieldSpec``s and turns the raw strings it returns
into typed values (``finish_value``), which is pure Python and needs no browser.
"""

from __future__ import annotations

import asyncio
import math
import re
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

# The hot path: settle if the namespace is there, else say so (no exception, no 2nd call).
_SETTLE_CALL = """([spec, timeoutMs, quietMs, errorSelector]) => window.__landmark
    ? window.__landmark.settle(spec, timeoutMs, quietMs, errorSelector)
    : {missing: true}"""
_RESOLVE_CALL = """(spec) => window.__landmark
    ? {state: "ready", result: window.__landmark.resolve(spec), errorText: null, waitedMs: 0}
    : {missing: true}"""

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
    script, or a fresh navigation): install it, then ask again.
    """
    spec = {"root": root, "fields": plan}
    args = [spec, _ms(timeout), _ms(quiet), error_selector]
    deadline = (timeout + _EVALUATE_GRACE).total_seconds()
    return await _call(page, _SETTLE_CALL, args, deadline)


async def resolve_now(page: Page, root: str | None, plan: list[dict[str, Any]]) -> Settled:
    """Read the fields as the page stands, without waiting: one ``page.evaluate``."""
    spec = {"root": root, "fields": plan}
    return await _call(page, _RESOLVE_CALL, spec, _EVALUATE_GRACE.total_seconds())


async def _call(page: Page, expression: str, arg: Any, deadline: float) -> Settled:
    async with asyncio.timeout(deadline):
        answer = await page.evaluate(expression, arg)
        if answer.get("missing"):
            await ensure_installed(page)
            answer = await page.evaluate(expression, arg)
    if answer.get("missing"):
        raise RuntimeError("landmarks.js could not be installed in the page")
    return parse_settled(answer)


def parse_settled(answer: dict[str, Any]) -> Settled:
    """The page's answer to ``settle`` (or a call that ends in it) as a :class:`Settled`."""
    result = answer.get("result") or {}
    return Settled(
        state=answer["state"],
        fields=dict(result.get("fields") or {}),
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
    "collapse",
    "ensure_installed",
    "field_plan",
    "finish_default",
    "finish_field",
    "finish_value",
    "normalise_label",
    "resolve_now",
    "settle_and_resolve",
]
