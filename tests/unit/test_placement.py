"""Placement and the node watch, without Ray: which node the next actor goes to, how many
pages it opens there, how many more actors fit, and what a node that joins or leaves does to
the roster."""

from __future__ import annotations

from landmark.config.units import parse_limit
from landmark.coordinator.node_watch import SUSPECT_S, NodeInfo, NodeWatch
from landmark.coordinator.placement import ASSUMED_PAGE_BYTES, Occupant, Placement, Plan
from landmark.coordinator.roster import ActorPhase, Roster

GIB = 2**30
THROTTLE = parse_limit("80%")


def nodes(*specs: tuple[str, float]) -> dict[str, NodeInfo]:
    return {node: NodeInfo(node, cpus, 8 * GIB) for node, cpus in specs}


def verdict(used_gib: float, total_gib: float = 10, state: str = "ok", **rss: int):
    return {"verdict": state, "memory_used": used_gib * GIB, "memory_total": total_gib * GIB,
            "actors_rss": rss}  # fmt: skip


def test_actors_go_to_the_node_with_the_most_free_cpus_then_the_most_headroom() -> None:
    cluster = nodes(("a", 4), ("b", 4))
    occupants = [Occupant("a", 4, 800 * 2**20)]
    plan = Plan.of(cluster, occupants, {"a": verdict(2), "b": verdict(2)}, THROTTLE)
    assert plan.place(4) == Placement("b", 4)  # b: 4 free CPUs against a's 3

    even = [Occupant("a", 4, 800 * 2**20), Occupant("b", 4, 800 * 2**20)]
    plan = Plan.of(cluster, even, {"a": verdict(6), "b": verdict(2)}, THROTTLE)
    assert plan.place(4).node == "b"  # the same CPUs free: b has the memory


def test_pages_are_sized_to_the_nodes_headroom_at_the_measured_cost_per_page() -> None:
    page = 500 * 2**20  # measured: an actor of 2 pages weighs 1000 MiB
    occupants = [Occupant("a", 2, 2 * page)]
    # throttle line at 8 GiB, 7 GiB used: 1 GiB below it holds 2 pages of 500 MiB
    plan = Plan.of(nodes(("a", 8)), occupants, {"a": verdict(7, **{"x": 2 * page})}, THROTTLE)
    assert plan.page_bytes == page
    assert plan.place(4) == Placement("a", 2)
    assert plan.capacity() == 2  # two more actors of one page each fit, not 7


def test_a_node_under_pressure_or_without_a_free_cpu_or_memory_takes_no_actor() -> None:
    cluster = nodes(("hot", 4), ("full", 1), ("tight", 4))
    occupants = [Occupant("full", 4, None)]
    verdicts = {"hot": verdict(1, state="throttle"), "tight": verdict(7.95)}
    plan = Plan.of(cluster, occupants, verdicts, THROTTLE)
    assert plan.rooms == []
    assert plan.place(4) is None and plan.capacity() == 0


def test_actors_still_starting_count_against_their_nodes_memory() -> None:
    cluster = nodes(("a", 8))
    starting = [Occupant("a", 4, None)] * 2  # not weighed yet: 8 pages at the assumed cost
    plan = Plan.of(cluster, starting, {"a": verdict(1)}, THROTTLE)
    headroom = 8 * GIB - 1 * GIB - 8 * ASSUMED_PAGE_BYTES
    assert plan.rooms[0].headroom == headroom
    assert plan.place(4) == Placement("a", 4)


def test_a_node_nobody_measured_gets_full_actors_up_to_its_cpus() -> None:
    plan = Plan.of(nodes(("new", 2)), [], {}, THROTTLE)
    assert plan.place(4) == Placement("new", 4)
    assert plan.capacity() == 2


def test_the_watch_reports_joins_and_losses_after_its_first_reading() -> None:
    watch = NodeWatch()
    a, b = NodeInfo("a", 1, 0), NodeInfo("b", 1, 0)
    assert not watch.update([a], at_s=0.0)  # the starting point
    changes = watch.update([a, b], at_s=5.0)
    assert [n.id for n in changes.joined] == ["b"] and changes.left == []
    assert watch.actor_started("a", 6.0) is None  # was there from the start
    assert watch.actor_started("b", 7.5) == 2.5
    assert watch.actor_started("b", 9.0) is None  # only the first counts
    changes = watch.update([a], at_s=10.0)
    assert changes.left == ["b"] and not changes.joined
    assert [e["event"] for e in watch.events] == ["joined", "left"]
    assert watch.events[0]["first_actor_after_s"] == 2.5


def test_a_suspect_node_takes_no_actor_until_its_time_is_up_or_an_actor_starts_there() -> None:
    watch = NodeWatch()
    watch.update([NodeInfo("a", 2, 0), NodeInfo("b", 2, 0)], at_s=0.0)
    watch.suspect("b", at_s=10.0)  # its last actor died: the node may be going
    assert watch.avoided(10.0 + SUSPECT_S - 1) == {"b"}
    plan = Plan.of(watch.nodes, [], {}, THROTTLE, avoid=watch.avoided(11.0))
    assert [room.node for room in plan.rooms] == ["a"] and plan.capacity() == 2
    assert watch.avoided(10.0 + SUSPECT_S) == set()
    watch.suspect("a", at_s=20.0)
    watch.actor_started("a", 21.0)  # Ray placed one there all the same: it works
    assert watch.avoided(21.0) == {"b"}  # a is cleared; b still waits out its time


def test_the_roster_starts_no_more_than_the_room_while_an_actor_is_up() -> None:
    roster = Roster(3, pages=4, extra_slots=2)
    roster.room = 1
    first = roster.to_start(0.0)
    assert len(first) == 1
    roster.started(first[0])
    roster.room = 0
    assert roster.to_start(1.0) == [] and roster.next_start_at(1.0) is None
    roster.room = 1
    assert len(roster.to_start(2.0)) == 1


def test_with_nothing_up_and_no_room_one_actor_is_tried_all_the_same() -> None:
    roster = Roster(3, pages=4)
    roster.room = 0
    assert len(roster.to_start(0.0)) == 1  # its start fails if nothing fits: a visible stall


def test_a_joined_node_ends_a_start_backoff() -> None:
    roster = Roster(2, pages=4, backoff_s=8.0)
    names = roster.to_start(0.0)
    roster.started(names[0])
    roster.start_failed(names[1], 0.0, "no CPU")
    assert roster.to_start(1.0) == []  # backing off until 8 s
    roster.capacity_grew()
    again = roster.to_start(1.0)
    assert len(again) == 1 and roster.entries[again[0]].phase is ActorPhase.STARTING


def test_a_placed_actor_takes_its_pages_plus_a_batch_in_slots() -> None:
    roster = Roster(1, pages=4, extra_slots=3)
    (name,) = roster.to_start(0.0)
    roster.place(name, 2)
    assert (roster.entries[name].pages, roster.entries[name].slots) == (2, 5)
