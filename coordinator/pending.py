"""The pending queues of the ledger: which containers are ready to lease, in which order, and
which are backing off until when.

Per-container cost is O(1) amortised (O(log) for heaps), so one coordinator moves
thousands of containers a second:

- ready containers sit in per-*lane* FIFO deques (a lane is a domain by default), merged
  in global FIFO order through a heap of lane heads. A lane whose head ``accept`` rejects
  is closed for the rest of that take, so a domain held back by its budget or breaker
  costs one check per take, not one per queued container, and its containers keep their
  order;
- containers backing off sit in a heap by ``not_before`` and join the back of their lane
  when a take first sees them ready;
- removal from the middle (``prefer``, :meth:`PendingQueue.discard`) is lazy: a queue
  entry is live only while ``_ready_seq``/``_delayed_seq`` still maps its id to the
  entry's sequence number; dead entries are dropped when they reach a head.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable

from landmark.config.records import Container

Accept = Callable[[Container], bool]


class PendingQueue:
    """Pending containers by id; the ledger owns their lanes and bodies (shared dicts)."""

    def __init__(
        self, lane_of: dict[str, str], containers: dict[str, Container], prefer_window: int
    ) -> None:
        self._lane_of = lane_of
        self._containers = containers
        self.prefer_window = prefer_window
        self._seq = itertools.count()
        self._ready_seq: dict[str, int] = {}
        self._delayed_seq: dict[str, int] = {}
        self._lanes: dict[str, deque[tuple[int, str]]] = {}
        self._lane_heap: list[tuple[int, str]] = []
        self._delayed: list[tuple[float, int, str]] = []

    # -- in --------------------------------------------------------------------------------
    def push(self, cid: str) -> None:
        """Ready now, at the back of its lane."""
        self._enqueue_ready(cid)

    def push_later(self, cid: str, not_before: float) -> None:
        """Ready at ``not_before`` (a retry's backoff)."""
        self._enqueue_delayed(cid, not_before)

    def discard(self, cid: str) -> None:
        """Out of the queues, wherever it is (lazily)."""
        self._ready_seq.pop(cid, None)
        self._delayed_seq.pop(cid, None)

    # -- out -------------------------------------------------------------------------------
    def take(
        self, limit: int, now: float, accept: Accept | None, prefer: Accept | None
    ) -> list[str]:
        """Up to ``limit`` ready ids, oldest first; ``prefer`` first picks favoured ones among
        the first ``prefer_window`` entries (lanes in FIFO order). Taken ids leave the queue."""
        self._promote(now)
        taken: list[str] = []
        if not self._ready_seq:
            return taken
        closed: set[str] = set()
        if prefer is not None:
            self._take_preferred(taken, limit, accept, prefer, closed)
        self._take_fifo(taken, limit, accept, closed)
        return taken

    # -- views -----------------------------------------------------------------------------
    def __contains__(self, cid: object) -> bool:
        return cid in self._ready_seq or cid in self._delayed_seq

    def __len__(self) -> int:
        return len(self._ready_seq) + len(self._delayed_seq)

    def has_ready(self) -> bool:
        return bool(self._ready_seq)

    def ids(self) -> list[str]:
        """Every pending id: the ready ones, then those backing off."""
        return [*self._ready_seq, *self._delayed_seq]

    def lane_ids(self, lane: str) -> list[str]:
        queue = self._lanes.get(lane, ())
        ready = [cid for seq, cid in queue if self._ready_seq.get(cid) == seq]
        return ready + [cid for cid in self._delayed_seq if self._lane_of[cid] == lane]

    def ready_lanes(self) -> list[str]:
        """Lanes with a container ready now: where to look for what holds dispatch back."""
        return [lane for lane in list(self._lanes) if self._head(lane) is not None]

    def next_delayed_at(self) -> float | None:
        """When the first backed-off container becomes ready, or None."""
        delayed = self._delayed
        while delayed and self._delayed_seq.get(delayed[0][2]) != delayed[0][1]:
            heapq.heappop(delayed)
        return delayed[0][0] if delayed else None

    def problems(self, pending: set[str]) -> list[str]:
        """O(n) self-check for tests, against the ledger's set of pending ids."""
        found = []
        if self._ready_seq.keys() & self._delayed_seq.keys():
            found.append("ready+delayed overlap")
        if pending != self._ready_seq.keys() | self._delayed_seq.keys():
            found.append("pending = ready | delayed")
        live = {
            cid
            for queue in self._lanes.values()
            for seq, cid in queue
            if self._ready_seq.get(cid) == seq
        }
        if live != self._ready_seq.keys():
            found.append("every ready container queued once")
        lanes_in_heap = {lane for _, lane in self._lane_heap}
        nonempty = {
            lane
            for lane, queue in self._lanes.items()
            if any(self._ready_seq.get(c) == s for s, c in queue)
        }
        if not nonempty <= lanes_in_heap:
            found.append("every live lane in the heap")
        delayed = {cid for _, seq, cid in self._delayed if self._delayed_seq.get(cid) == seq}
        if delayed != self._delayed_seq.keys():
            found.append("every delayed container in the heap")
        return found

    # -- the machinery ---------------------------------------------------------------------
    def _enqueue_ready(self, cid: str) -> None:
        seq = next(self._seq)
        self._ready_seq[cid] = seq
        lane = self._lane_of[cid]
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = deque()
        if not queue:
            heapq.heappush(self._lane_heap, (seq, lane))
        queue.append((seq, cid))

    def _enqueue_delayed(self, cid: str, not_before: float) -> None:
        seq = next(self._seq)
        self._delayed_seq[cid] = seq
        heapq.heappush(self._delayed, (not_before, seq, cid))

    def _promote(self, now: float) -> None:
        """Backed-off containers whose time has come join the back of their lane."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, seq, cid = heapq.heappop(delayed)
            if self._delayed_seq.get(cid) == seq:
                del self._delayed_seq[cid]
                self._enqueue_ready(cid)

    def _head(self, lane: str) -> tuple[int, str] | None:
        """The live head of a lane, dropping dead entries; drops the lane when empty."""
        queue = self._lanes.get(lane)
        if queue is None:
            return None
        ready = self._ready_seq
        while queue:
            seq, cid = queue[0]
            if ready.get(cid) == seq:
                return seq, cid
            queue.popleft()
        del self._lanes[lane]
        return None

    def _next_lane(self) -> tuple[int, str] | None:
        """Pop the lane whose live head is oldest (fixing stale heap entries on the way)."""
        heap = self._lane_heap
        while heap:
            seq, lane = heapq.heappop(heap)
            head = self._head(lane)
            if head is None:
                continue
            if head[0] == seq:
                return head
            heapq.heappush(heap, (head[0], lane))
        return None

    def _take_preferred(
        self,
        taken: list[str],
        limit: int,
        accept: Accept | None,
        prefer: Accept,
        closed: set[str],
    ) -> None:
        popped: list[tuple[int, str]] = []
        budget = self.prefer_window
        ready = self._ready_seq
        while budget > 0 and len(taken) < limit:
            head = self._next_lane()
            if head is None:
                break
            lane = self._lane_of[head[1]]
            popped.append((head[0], lane))
            for seq, cid in itertools.islice(self._lanes[lane], budget):
                budget -= 1
                if ready.get(cid) != seq or not prefer(self._containers[cid]):
                    continue
                if accept is not None and not accept(self._containers[cid]):
                    closed.add(lane)
                    break
                del ready[cid]  # lazily removed from its lane
                taken.append(cid)
                if len(taken) >= limit:
                    break
        for entry in popped:
            heapq.heappush(self._lane_heap, entry)

    def _take_fifo(
        self, taken: list[str], limit: int, accept: Accept | None, closed: set[str]
    ) -> None:
        heap = self._lane_heap
        blocked: list[tuple[int, str]] = []
        ready = self._ready_seq
        while len(taken) < limit:
            head = self._next_lane()
            if head is None:
                break
            lane = self._lane_of[head[1]]
            while True:
                if lane in closed:
                    blocked.append(head)
                    break
                if accept is not None and not accept(self._containers[head[1]]):
                    closed.add(lane)
                    continue
                self._lanes[lane].popleft()
                del ready[head[1]]
                taken.append(head[1])
                head = self._head(lane)
                if head is None:
                    break
                if len(taken) >= limit or (heap and heap[0][0] < head[0]):
                    heapq.heappush(heap, (head[0], lane))
                    break
        for seq, cid in blocked:
            heapq.heappush(heap, (seq, self._lane_of[cid]))
