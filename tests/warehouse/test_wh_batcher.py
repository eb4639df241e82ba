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
