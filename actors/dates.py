"""Dates and times as people write them, made ISO 8601 without inventing precision.

"June 2010" is a month, not the first of June: it becomes ``2010-06``, "2008" stays
``2008``, a date stays a date and a time keeps the offset it was given (a naive time stays
naive). Accepted forms (case-insensitive, a leading weekday ignored):

- ISO: ``2010``, ``2010-06``, ``2010-06-14``, ``2010-06-14T09:30[:00[.250]][Z|+02:00]``;
- ``2010/06/14``, ``2010.06.14``, each with an optional time;
- month names (English, full or three letters): ``June 14, 2010``, ``14 June 2010``,
  ``14th Jun. 2010``, ``June 2010``, each with an optional time (``2:03 PM``, ``at 14:03``)
  and zone (``UTC``, ``GMT+5:30``, ``-0500``);
- numbers: ``14/06/2010`` (day first, the day > 12), ``06/14/2010`` (month first, the day
  > 12), ``06/2010``. When both could be the month (``03/04/2010``) the value is an
  error that says so: give the field ``formats:``.

A field's ``formats:`` (``strptime`` forms, e.g. ``"%d/%m/%Y"``) are tried first; the
precision kept is what the format names (``%Y`` a year, ``%m`` or ``%b`` a month, ``%d`` a
day, ``%H`` or ``%I`` a time).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_WEEKDAY = r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?"
_TIME = (
    r"(?:(?:,|\s+at)?\s*(?:T|\s)?\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,6})\d*)?)?"
    r"\s*(?P<ampm>[ap]\.?m\.?)?)?"
)
_ZONE = r"\s*(?P<zone>z|utc|gmt|(?:utc|gmt)?\s*[+-]\d{1,2}(?::?\d{2})?)?"
_DAY_FORMS = [
    rf"{_WEEKDAY}(?P<year>\d{{4}})[-/.](?P<month>\d{{1,2}})[-/.](?P<day>\d{{1,2}})",
    rf"{_WEEKDAY}(?P<mon>[a-z]+)\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})",
    rf"{_WEEKDAY}(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\.?\s+(?P<mon>[a-z]+)\.?,?\s+(?P<year>\d{{4}})",
    rf"{_WEEKDAY}(?P<first>\d{{1,2}})[/.](?P<second_>\d{{1,2}})[/.](?P<year>\d{{4}})",
]
_DATETIME_FORMS = [re.compile(form + _TIME + _ZONE, re.IGNORECASE) for form in _DAY_FORMS]
_PARTIAL_FORMS = [  # no day: a year, or a month of a year
    re.compile(r"(?P<year>\d{4})(?:-(?P<month>\d{1,2}))?"),
    re.compile(r"(?P<mon>[a-z]+)\.?,?\s+(?P<year>\d{4})", re.IGNORECASE),
    re.compile(r"(?P<month>\d{1,2})/(?P<year>\d{4})"),
]


class AmbiguousDate(ValueError):
    """Day-first or month-first cannot be told from the text alone."""


def parse_date(text: str, formats: Sequence[str] = (), *, dated_only: bool = False) -> str:
    """``text`` as ISO 8601 at the precision it was written with; ``dated_only`` (type
    ``date``) drops a time of day. A ValueError names the text when nothing fits."""
    text = text.strip()
    value = _from_formats(text, formats) if formats else None
    if value is None:
        value = _from_iso(text) or _from_forms(text) or _from_partial(text)
    if value is None:
        raise ValueError(f"not a date/time: {_shown(text)}")
    if dated_only and isinstance(value, datetime):
        return value.date().isoformat()
    return value if isinstance(value, str) else value.isoformat()


def _from_formats(text: str, formats: Sequence[str]) -> datetime | date | str | None:
    for form in formats:
        try:
            parsed = datetime.strptime(text, form)
        except ValueError:
            continue
        if re.search(r"%[HIMSf]", form):
            return parsed
        if "%d" in form or "%j" in form:
            return parsed.date()
        if re.search(r"%[mbB]", form):
            return f"{parsed.year:04d}-{parsed.month:02d}"
        return f"{parsed.year:04d}"
    return None


def _from_iso(text: str) -> datetime | date | None:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    if not re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _from_forms(text: str) -> datetime | date | None:
    for form in _DATETIME_FORMS:
        match = form.fullmatch(text)
        if match is not None:
            return _build(match, text)
    return None


def _from_partial(text: str) -> str | None:
    for form in _PARTIAL_FORMS:
        match = form.fullmatch(text)
        if match is None:
            continue
        parts = match.groupdict()
        month = _month(parts)
        if (parts.get("month") or parts.get("mon")) and not (month and 1 <= month <= 12):
            return None
        return f"{parts['year']}-{month:02d}" if month else parts["year"]
    return None


def _month(parts: dict[str, str | None]) -> int | None:
    if parts.get("month"):
        return int(parts["month"])
    if parts.get("mon"):
        return _MONTHS.get(parts["mon"].lower())
    return None


def _day_and_month(parts: dict[str, str | None], text: str) -> tuple[int, int | None]:
    if parts.get("first") is None:
        return int(parts["day"]), _month(parts)
    first, second = int(parts["first"]), int(parts["second_"])
    if first > 12 >= second:
        return first, second  # 14/06/2010: day first
    if second > 12 >= first:
        return second, first  # 06/14/2010: month first
    if first == second:
        return first, second
    raise AmbiguousDate(
        f"ambiguous date {_shown(text)}: day first or month first? Give the field "
        "formats: ['%d/%m/%Y'] or ['%m/%d/%Y']"
    )


def _build(match: re.Match[str], text: str) -> datetime | date | None:
    parts = match.groupdict()
    day_number, month = _day_and_month(parts, text)
    if month is None:
        return None
    try:
        day = date(int(parts["year"]), month, day_number)
        if parts["hour"] is None:
            return day if parts["zone"] is None else None
        hour = _hour(int(parts["hour"]), parts["ampm"])
        fraction = (parts["fraction"] or "").ljust(6, "0")
        return datetime(
            day.year,
            day.month,
            day.day,
            hour,
            int(parts["minute"]),
            int(parts["second"] or 0),
            int(fraction or 0),
            tzinfo=_zone(parts["zone"]),
        )
    except ValueError:
        return None


def _hour(hour: int, ampm: str | None) -> int:
    if ampm is None:
        return hour
    if not 1 <= hour <= 12:
        raise ValueError("hour out of range for am/pm")
    return hour % 12 + (12 if ampm.lower().startswith("p") else 0)


def _zone(zone: str | None) -> timezone | None:
    if zone is None:
        return None
    zone = zone.strip().lower()
    if zone in {"z", "utc", "gmt"}:
        return UTC
    match = re.fullmatch(r"(?:utc|gmt)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", zone)
    if match is None:
        raise ValueError("bad offset")
    sign = -1 if match.group(1) == "-" else 1
    offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    return timezone(sign * offset)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
