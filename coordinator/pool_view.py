"""One job's view of the service's pool: what lets a Coordinator run on shared actors
unchanged.

The Crew creates workers with ``actor_class.options(...).remote(job, name, ...)`` and then
calls ``handle.start/extract/discover/...``. :class:`PoolShare` stands in for the actor
class: its ``remote`` picks a pool member for the job's worker ``name`` and answers a
:class:`JobView`, whose calls are the member's, with the job's key added. ``start()`` opens
the job's session on the member; killing the view closes that session and leaves the member
(and the other jobs on it) alone.

The service pushes the pool's members whenever they change (:meth:`PoolShare.set_members`):
a member that died is replaced by the service, and the job's Coordinator, seeing its view
die, starts another view, which goes to the replacement.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ray.exceptions import RayError


@dataclass(frozen=True, slots=True)
class Member:
    """A live PoolActor: its name, handle and node."""

    name: str
    handle: Any
    node: str | None = None


class _KeyedMethod:
    """``view.extract.remote(batch)`` → ``member.extract.remote(key, batch)``."""

    def __init__(self, method: Any, key: str, *bound: Any) -> None:
        self._method = method
        self._args = (key, *bound)

    def remote(self, *args: Any) -> Any:
        return self._method.remote(*self._args, *args)

    def options(self, **options: Any) -> _KeyedMethod:
        return _KeyedMethod(self._method.options(**options), *self._args)


class JobView:
    """A pool member as one job's worker (``actors.protocol.WorkerActor``'s calls)."""

    def __init__(self, share: PoolShare, member: Member, name: str, open_args: tuple) -> None:
        self.member = member
        self.name = name
        self._share = share
        key, handle = share.key, member.handle
        self.start = _KeyedMethod(handle.open_job, key, *open_args)
        self.discover = _KeyedMethod(handle.discover, key)
        self.extract = _KeyedMethod(handle.extract, key)
        self.recycle = _KeyedMethod(handle.recycle, key)
        self.learner_snapshot = _KeyedMethod(handle.learner_snapshot, key)
        self.close = _KeyedMethod(handle.close_job, key)
        self.stats = _KeyedMethod(handle.stats, key)
        self.ping = handle.ping

    def release(self) -> None:
        """What killing a worker means for a shared actor: close this job's session there
        (without waiting) and free the member for the job's next view."""
        self._share.released(self.name)
        with contextlib.suppress(RayError, ValueError):
            self.member.handle.close_job.remote(self._share.key)


class PoolShare:
    """Stands in for a Ray actor class in :class:`~coordinator.crew.Crew`."""

    def __init__(self, key: str, members: list[Member] | None = None, pages: int = 1) -> None:
        """``pages``: the job's first share of each actor's pages (the service then sends
        every change to its Coordinator)."""
        self.key = key
        self.pages = pages
        self.members: list[Member] = list(members or [])
        self._views: dict[str, str] = {}  # the job's worker name -> member name

    def set_members(self, members: list[Member]) -> None:
        self.members = list(members)

    def options(self, **_: Any) -> PoolShare:
        """Placement is the pool's: the job's options (CPUs, node affinity) do not apply."""
        return self

    def remote(
        self,
        job: Any,
        name: str,
        out_dir: str | None = None,
        learner_snapshot: dict[str, Any] | None = None,
        allowed_hosts: list[str] | None = None,
    ) -> JobView:
        """A view of the member this job uses least; the session opens on ``start()``."""
        member = self._least_used()
        self._views[name] = member.name
        open_args = (job, name, out_dir, learner_snapshot, allowed_hosts)
        return JobView(self, member, name, open_args)

    def _least_used(self) -> Member:
        if not self.members:
            raise RuntimeError("the pool has no live actor; the service is replacing them")
        use = Counter(self._views.values())
        return min(self.members, key=lambda member: (use[member.name], member.name))

    def released(self, name: str) -> None:
        self._views.pop(name, None)
