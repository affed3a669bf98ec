"""Reading ahead and writing behind, so that decoding and encoding files overlap with prediction: one background
thread each, bounded, so memory stays a few batches whatever the number of files."""
import contextlib
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, Full, Queue

DEPTH = 2  # batches read ahead of prediction, and written behind it
_END = object()


@contextlib.contextmanager
def read_ahead(items, depth=DEPTH):
    """Iterate `items` (an iterator that reads: decoding happens as it advances) in a background thread, at most
    `depth` items ahead of the caller. Yields an iterator of the items in order; an error raised while reading is
    raised to the caller at that item. Leaving the block stops the reader and waits for it."""
    queue, stop = Queue(maxsize=depth), threading.Event()

    def put(entry):
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def read():
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as error:  # noqa: BLE001  (raised again in the caller's thread)
            put((_END, error))

    def consume():
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item

    thread = threading.Thread(target=read, name="birdseg-read-ahead", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        with contextlib.suppress(Empty):
            while True:  # free a reader blocked on a full queue
                queue.get_nowait()
        thread.join()


class WriteBehind:
    """Runs write jobs in order on one background thread, at most `depth` jobs behind the caller: a caller that gets
    further ahead waits for the oldest. Leaving the block waits for every job and raises the first error."""

    def __init__(self, depth=DEPTH):
        self.depth = depth
        self.pending = deque()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="birdseg-write-behind")

    def submit(self, job, *args):
        self.pending.append(self.pool.submit(job, *args))
        while len(self.pending) > self.depth:
            self.pending.popleft().result()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True)
