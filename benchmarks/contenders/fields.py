"""Reading the Gallery's fields the simple, site-specific way (bare Playwright and Crawlee).

Landmark resolves fields generically from the job file; the hand-written
contenders get to know this one site: rows are ``<span …-label>`` followed by
the value, hidden decoy rows are skipped, the media link is ``a[download]``.
Label texts come from the same example job landmark runs with, so every
contender looks for the same words and returns the same typed values.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

IMAGE_KEY = "__image__"

# One in-page call: visible label -> value text for every row under ``scope``, and the download.
READ_ROWS_JS = """
(scope) => {
  const root = scope || document;
  const norm = (t) => t.replace(/\\s+/g, ' ').trim().replace(/:$/, '').toLowerCase();
  const out = {};
  for (const label of root.querySelectorAll('[class$="-label"]')) {
    if (label.closest('[hidden],[aria-hidden="true"]')) continue;
    const value = label.nextElementSibling;
    const key = norm(label.textContent);
    if (value && !(key in out)) out[key] = value.textContent.trim();
  }
  const link = root.querySelector('a[download]');
  out['__image__'] = link ? link.href : null;
  return out;
}
"""

EXAMPLE_JOB = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))


@lru_cache(maxsize=1)
def field_specs() -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """(name, labels as written in the job, type) of every field the example job extracts."""
    from landmark.config.loading import load_job

    job = load_job(EXAMPLE_JOB)
    return tuple((f.name, tuple(f.labels), str(f.type.value)) for f in job.fields)


def field_names() -> list[str]:
    return [name for name, _, _ in field_specs()]


def fields_from_rows(rows: dict[str, Any]) -> dict[str, Any]:
    """Map the page's label/value pairs onto the job's typed fields (missing -> None)."""
    fields: dict[str, Any] = {}
    for name, labels, kind in field_specs():
        if kind == "url":
            fields[name] = rows.get(IMAGE_KEY)
            continue
        raw = next((rows[key] for key in map(_norm, labels) if key in rows), None)
        fields[name] = convert(raw, kind)
    return fields


def convert(raw: str | None, kind: str) -> Any:
    """The job's types: datetimes as ISO-8601 seconds, integers as int; bad values -> None."""
    if raw is None:
        return None
    try:
        if kind == "datetime":
            return datetime.fromisoformat(raw.strip()).isoformat(timespec="seconds")
        if kind == "integer":
            return int(raw.replace(",", "").strip())
    except ValueError:
        return None
    return raw


def _norm(text: str) -> str:
    return " ".join(text.split()).rstrip(":").lower()
