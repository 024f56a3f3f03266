import asyncio
import random

from horae.scheduler import FireHeap, Scheduler


def test_fire_heap_pops_in_time_order_through_updates_and_removals():
    heap, reference = FireHeap(), {}
    rng = random.Random(7)
    for _ in range(20_000):
        name = f"job-{rng.randrange(300)}"
        roll = rng.random()
        if roll < 0.6:
            fire_ms = rng.randrange(10**6)
            heap.set(name, fire_ms)
            reference[name] = fire_ms
        elif roll < 0.8:
            heap.remove(name)
            reference.pop(name, None)
        elif reference:
            fire_ms, popped = heap.pop()
            assert fire_ms == min(reference.values())
            assert reference.pop(popped) == fire_ms
        assert len(heap) == len(reference)
        assert heap.get(name) == reference.get(name)


async def test_scheduler_launches_due_jobs_in_order_and_honours_moves():
    now = [1_000.0]
    launched: list[tuple[str, int]] = []
    scheduler = Scheduler(lambda name, slot: launched.append((name, slot)), lead_seconds=0, clock=lambda: now[0])
    scheduler.set("b", 1_000_200)
    scheduler.set("a", 1_000_100)
    scheduler.set("c", 1_000_300)
    scheduler.set("c", 1_000_050)  # moved earlier
    scheduler.remove("b")
    scheduler.start()
    try:
        await asyncio.sleep(0)
        assert launched == []
        now[0] = 1_000.25
        scheduler.set("d", 1_000_999)  # any change wakes the loop
        for _ in range(100):
            if len(launched) == 2:
                break
            await asyncio.sleep(0.01)
        assert launched == [("c", 1_000_050), ("a", 1_000_100)]
        assert len(scheduler) == 1
    finally:
        await scheduler.stop()


async def test_a_stop_that_comes_as_a_change_wakes_the_loop_stops_it():
    """On Python 3.11 asyncio.wait_for returned normally when cancelled in the loop turn that set its event: the
    scheduler outlived its stop and went on firing after its server lost the leadership."""
    now = [1_000.0]
    launched: list[tuple[str, int]] = []
    scheduler = Scheduler(lambda name, slot: launched.append((name, slot)), lead_seconds=0, clock=lambda: now[0])
    scheduler.set("far", 9_000_000)
    scheduler.start()
    await asyncio.sleep(0)  # the loop now waits for a change
    scheduler.set("soon", 1_000_500)  # sets the event...
    await asyncio.sleep(0)  # ...the waiter is woken, and in the same turn:
    await asyncio.wait_for(scheduler.stop(), 2.0)
    assert not scheduler.running
    now[0] = 1_001.0
    scheduler.set("due", 1_000_900)
    await asyncio.sleep(0.05)
    assert launched == []
