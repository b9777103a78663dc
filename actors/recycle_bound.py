"""When a context's memory calls for a recycle: growth past what a fresh context needs.

A recycle helps when a long-lived context has grown: leaked listeners, caches, detached
DOM. It cannot help when the pages' own work is what is big. In click mode, a page that
holds card 6,000 of a gallery that never drops a card has 6,000 cards in its DOM; a fresh
context must scroll that far again to reach the next card, and is as big when it gets
there. Observed on a 10,000-card gallery (2 actors × 4 pages, 0 ms): past about 5,000
cards each browser tree stayed over the fixed 1.5 GiB bound, each actor recycled about
once a minute, every page scrolled back down each time, and the run fell from about 20
to about 6 containers/s.

So the bound is the larger of the setting (``browser.recycle_rss``) and ``GROWTH`` × the
PSS of the fresh context at work: its first reading after a start or a recycle, taken once
its pages have reached their containers (readings come every few dozen containers). That
first reading never recycles: a context that was just made has nothing to shed. A deeper
gallery raises the bound by GROWTH per recycle, so the recycles it causes are few, while a
leak still shows as growth. The node's memory stays the MetricsActor's: when the node is
short, it recycles the heaviest actor whatever this bound says.
"""

from __future__ import annotations

from dataclasses import dataclass

GROWTH = 1.5  # a fresh context's PSS × this: more is growth a recycle can give back


@dataclass(slots=True)
class RecycleBound:
    """The PSS over which a context is recycled, and the reading that decides it."""

    setting: int  # browser.recycle_rss, bytes
    fresh: int | None = None  # the first reading of the current context, bytes

    @property
    def bound(self) -> int:
        if self.fresh is None:
            return self.setting
        return max(self.setting, int(self.fresh * GROWTH))

    def restart(self) -> None:
        """A new context (recycled or relaunched): its first reading is the new base."""
        self.fresh = None

    def over(self, used: int) -> str | None:
        """Why a context at ``used`` bytes of PSS should recycle, or None if it should not."""
        if self.fresh is None:
            self.fresh = used
            return None
        if used <= self.bound:
            return None
        grown = "the bound" if self.bound == self.setting else f"{GROWTH}× its fresh reading"
        return f"tree PSS {used >> 20} MiB over {self.bound >> 20} MiB ({grown})"
