"""Reading ahead and writing behind: order kept, memory bounded, errors raised where the caller is."""
import threading
import time

import pytest

from birdseg.pipeline import WriteBehind, read_ahead


def test_read_ahead_yields_every_item_in_order_at_most_depth_ahead():
    produced = []

    def reading():
        for index in range(10):
            produced.append(index)
            yield index

    seen = []
    with read_ahead(reading(), depth=2) as items:
        for item in items:
            time.sleep(0.01)  # the reader gets as far ahead as it may
            assert len(produced) - len(seen) <= 2 + 2, "read too far ahead"  # the queue, one in hand, one handed out
            seen.append(item)
    assert seen == list(range(10))


def test_an_error_while_reading_reaches_the_caller_at_its_item():
    def reading():
        yield 1
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"), read_ahead(reading()) as items:
        for item in items:
            seen.append(item)
    assert seen == [1]


def test_leaving_early_stops_the_reader():
    def endless():
        index = 0
        while True:
            index += 1
            yield index

    with read_ahead(endless(), depth=1) as items:
        assert next(items) == 1
    assert not [thread for thread in threading.enumerate() if thread.name == "birdseg-read-ahead"]


def test_write_behind_runs_jobs_in_order_and_raises_their_error_on_leaving():
    done = []
    with WriteBehind(depth=2) as writing:
        for index in range(6):
            writing.submit(lambda value: (time.sleep(0.005), done.append(value)), index)
            assert index - len(done) <= 3, "no more than depth jobs (and the one running) behind"
    assert done == list(range(6))

    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), WriteBehind() as writing:
        writing.submit(fail)
