"""Start N threads at once (a barrier) and collect what each returns; a crashed thread fails the
test instead of silently shrinking the sample."""

from __future__ import annotations

import threading


def run_threads(count: int, work) -> list:
    barrier = threading.Barrier(count)
    outcomes: list = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        barrier.wait()
        try:
            local = work(index)
        except BaseException as exc:  # a crashed thread must fail the test, not shrink the sample
            with lock:
                failures.append(exc)
            return
        with lock:
            outcomes.extend(local)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return outcomes
