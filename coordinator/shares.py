"""How ``landmark serve`` shares its pool's pages among the jobs that want them (pure).

Each actor of the pool has ``pages`` pages. A job that runs gets the same number of them on
every actor: its *share*. The rules, in order:

1. **A running job keeps at least one page**: it is never preempted, only narrowed, so a
   job once started always makes progress and ends.
2. **Waiting jobs are admitted by priority, then by age**, while a page is left for each.
   A job not admitted waits (queued) until a running one ends.
3. **The pages left are shared by weight**, ``2 ** priority`` (priority 0..9): one
   priority step doubles a job's claim. A high-priority job that arrives while a low one
   runs gets most pages at the next share-out (seconds), the low one keeps one.
   Largest remainders settle the fractions, ties to the older job.

Paused jobs take no page: they hold their place and are admitted again on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_PRIORITY = 9


@dataclass(frozen=True, slots=True)
class Claim:
    job: str
    priority: int
    order: int  # submission order: older first among equals
    running: bool  # its Coordinator is up: it keeps a page


def weight(priority: int) -> int:
    return 2 ** max(0, min(MAX_PRIORITY, priority))


def share_out(claims: list[Claim], pages: int) -> dict[str, int]:
    """Pages per actor for each admitted job (jobs missing from the answer wait)."""
    if pages < 1:
        raise ValueError(f"pages must be >= 1, got {pages}")
    running = [c for c in claims if c.running]
    waiting = sorted((c for c in claims if not c.running), key=lambda c: (-c.priority, c.order))
    admitted = running + waiting[: max(0, pages - len(running))]
    if not admitted:
        return {}
    share = {claim.job: 1 for claim in admitted}
    left = pages - len(admitted)
    if left <= 0:
        return share
    total = sum(weight(c.priority) for c in admitted)
    exact = {c.job: left * weight(c.priority) / total for c in admitted}
    for claim in admitted:
        share[claim.job] += math.floor(exact[claim.job])
    rest = pages - sum(share.values())
    by_remainder = sorted(
        admitted, key=lambda c: (-(exact[c.job] - math.floor(exact[c.job])), c.order)
    )
    for claim in by_remainder[:rest]:
        share[claim.job] += 1
    return share
