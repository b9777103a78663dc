"""DomCache: what worked last time on this layout, tried first on the next container.

Items of one gallery share a layout (spatial locality), so the element path
that led to a field's label on one item usually leads to it on the next. The
cache keeps, per layout key (domain + open mode + root selector):

* the scroll container and card selector discovery settled on;
* per field, the child-index path from the container's root to the *label*
  element (not the value: a path to a value cannot notice a missing row and
  would return the neighbour's value; the page verifies the label's text
  before trusting the path).

Entries expire after a TTL and a field's path is dropped as soon as the page
reports it stale. Navigating between items does not drop anything: the key is
the layout (domain, open mode, panel), which items of one gallery share, and a
page that navigates to another site uses another key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(slots=True)
class LayoutEntry:
    stored_at: float
    field_paths: dict[str, list[int]] = field(default_factory=dict)
    scroll_container: str | None = None
    card_selector: str | None = None


class DomCache:
    def __init__(self, ttl: timedelta = timedelta(minutes=10), clock=time.monotonic) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._layouts: dict[str, LayoutEntry] = {}
        self.hits = 0
        self.misses = 0
        self.stale = 0

    def _entry(self, key: str) -> LayoutEntry | None:
        entry = self._layouts.get(key)
        if entry is not None and self._clock() - entry.stored_at > self._ttl:
            del self._layouts[key]
            return None
        return entry

    def field_paths(self, key: str) -> dict[str, list[int]]:
        entry = self._entry(key)
        return dict(entry.field_paths) if entry else {}

    def record_fields(
        self,
        key: str,
        strategies: dict[str, str | None],
        paths: dict[str, list[int] | None],
        offered: set[str],
    ) -> None:
        """Count hits (a cached path resolved the field) and keep the paths that worked."""
        entry = self._entry(key) or self._layouts.setdefault(key, LayoutEntry(self._clock()))
        for name, strategy in strategies.items():
            if strategy == "cached":
                self.hits += 1
                continue
            self.misses += 1
            if name in offered:
                self.stale += 1
                entry.field_paths.pop(name, None)
            path = paths.get(name)
            if strategy == "landmark" and path is not None:
                entry.field_paths[name] = path
        entry.stored_at = self._clock()

    def remember_layout(self, key: str, scroll_container: str | None, card_selector: str) -> None:
        entry = self._entry(key) or self._layouts.setdefault(key, LayoutEntry(self._clock()))
        entry.scroll_container = scroll_container
        entry.card_selector = card_selector

    def layout(self, key: str) -> LayoutEntry | None:
        return self._entry(key)

    @staticmethod
    def key(domain: str, open_mode: str, root: str | None) -> str:
        return f"{domain}|{open_mode}|{root or ''}"

    def stats(self) -> dict[str, float]:
        lookups = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "stale": self.stale,
            "hit_ratio": round(self.hits / lookups, 4) if lookups else 0.0,
        }
