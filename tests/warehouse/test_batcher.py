import pytest

from warehouse.batcher import Batcher


def test_due_by_rows_or_by_age_of_the_oldest_message():
    b = Batcher(flush_rows=3, flush_seconds=2.0)
    b.add("t", 0, "http_request", 10, {"n": 1}, now=100.0)
    b.add("t", 1, "http_request", 5, {"n": 2}, now=101.0)
    assert b.due(101.9) == []
    assert b.due(102.0) == [("t", 0)]
    assert b.due(103.0) == [("t", 0), ("t", 1)]  # oldest first
    b.add("t", 1, "http_request", 6, {"n": 3}, now=101.5)
    b.add("t", 1, "http_request", 7, {"n": 4}, now=101.5)
    assert b.due(101.5) == [("t", 1)]
    assert b.rows(("t", 1)) == 3 and b.pending_rows == 4


def test_dead_letters_extend_the_range_but_hold_no_record():
    b = Batcher(flush_rows=10, flush_seconds=1.0)
    b.add("t", 0, "e", 3, None, now=0.0)
    b.add("t", 0, "e", 4, {"n": 1}, now=0.0)
    b.add("t", 0, "e", 9, None, now=0.0)  # gaps (transaction markers) are fine
    buf = b.take(("t", 0))
    assert (buf.first, buf.last, buf.records, buf.dead_letters) == (3, 9, [{"n": 1}], 2)
    assert b.take(("t", 0)) is None


def test_offsets_must_grow_and_drop_forgets():
    b = Batcher(flush_rows=10, flush_seconds=1.0)
    b.add("t", 0, "e", 3, {"n": 1}, now=0.0)
    with pytest.raises(ValueError, match="not after"):
        b.add("t", 0, "e", 3, {"n": 1}, now=0.0)
    assert b.drop([("t", 0), ("t", 9)]) == 1
    assert b.partitions() == []
    b.add("t", 0, "e", 1, {"n": 1}, now=0.0)  # after a drop the consumer may go back
    assert b.partitions() == [("t", 0)]


def test_extend_adds_a_run_like_adding_its_messages_one_by_one():
    one, run = Batcher(flush_rows=10, flush_seconds=1.0), Batcher(flush_rows=10, flush_seconds=1.0)
    for offset, record in [(3, None), (4, {"n": 1}), (6, {"n": 2}), (9, None)]:  # gaps: transaction markers
        one.add("t", 0, "e", offset, record, now=5.0)
    run.extend("t", 0, "e", 3, 9, [{"n": 1}, {"n": 2}], 2, now=5.0)
    a, b = one.take(("t", 0)), run.take(("t", 0))
    assert (a.first, a.last, a.records, a.dead_letters, a.since) == (b.first, b.last, b.records, b.dead_letters,
                                                                     b.since) == (3, 9, [{"n": 1}, {"n": 2}], 2, 5.0)


def test_extend_appends_to_the_buffer_and_refuses_going_back_or_impossible_runs():
    b = Batcher(flush_rows=10, flush_seconds=1.0)
    b.extend("t", 0, "e", 0, 1, [{"n": 0}, {"n": 1}], 0, now=1.0)
    b.extend("t", 0, "e", 2, 4, [{"n": 2}], 2, now=9.0)
    assert b.rows(("t", 0)) == 3 and b.due(1.5) == []  # `since` is the first run's
    with pytest.raises(ValueError, match="not after"):
        b.extend("t", 0, "e", 4, 5, [{"n": 5}], 0, now=9.0)
    with pytest.raises(ValueError, match="cannot hold"):
        b.extend("t", 0, "e", 5, 5, [{"n": 5}, {"n": 6}], 0, now=9.0)  # two records at one offset
    with pytest.raises(ValueError, match="cannot hold"):
        b.extend("t", 0, "e", 6, 5, [], 1, now=9.0)
    with pytest.raises(ValueError, match="cannot hold"):
        b.extend("t", 0, "e", 5, 7, [], 0, now=9.0)  # a run of no message
    buf = b.take(("t", 0))
    assert (buf.first, buf.last, len(buf.records), buf.dead_letters) == (0, 4, 3, 2)
