"""The leader's answer handling that keeps a divergent follower's log repair from livelocking (pysyncobj 0.3.17)."""

from horae.cluster.log_repair import NextIndexFloor


def test_a_later_my_log_ends_here_answer_does_not_undo_a_mismatch():
    floor = NextIndexFloor()
    # One burst: the follower (log ends at 696, divergent from 600) refuses the first message at 696 (term mismatch),
    # then says "my log ends at 696" to each later one. Unfixed, the last answer (697) wins every time.
    assert floor.answer("s1", term=5, next_index=696, success=False, reset=True) == 696
    assert floor.answer("s1", term=5, next_index=697, success=False, reset=True) == 696
    assert floor.answer("s1", term=5, next_index=697, success=False, reset=True) == 696
    # Next burst probes from 696: mismatch at 695, and so on down to where the logs agree.
    assert floor.answer("s1", term=5, next_index=695, success=False, reset=True) == 695
    assert floor.answer("s1", term=5, next_index=697, success=False, reset=True) == 695


def test_a_success_or_a_new_term_forgets_the_floor_and_nodes_are_apart():
    floor = NextIndexFloor()
    floor.answer("s1", term=5, next_index=600, success=False, reset=True)
    floor.answer("s2", term=5, next_index=900, success=False, reset=True)
    assert floor.answer("s2", term=5, next_index=950, success=False, reset=True) == 900
    assert floor.answer("s1", term=5, next_index=700, success=True, reset=False) == 700
    assert floor.answer("s1", term=5, next_index=800, success=False, reset=True) == 800  # caught up, then behind again
    assert floor.answer("s2", term=6, next_index=950, success=False, reset=True) == 950  # another leadership
    # Answers without reset (chunks of a large entry, a snapshot in transfer) pass through.
    assert floor.answer("s2", term=6, next_index=10, success=False, reset=False) == 10
    assert floor.answer("s2", term=6, next_index=990, success=False, reset=True) == 950
