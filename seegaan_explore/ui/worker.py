"""One job at a time on the newest request: a request still waiting is replaced, one running is told
it was superseded, so that a user who keeps clicking waits only for the last click.

The idea is that of an interactive renderer's asynchronous front (NVlabs' StyleGAN3 visualizer stamps
each set of arguments and drops results of older stamps): here a token numbers the requests and the
job asks ``superseded()`` between its stages, so that it stops early instead of finishing unseen work.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
_STARTED: weakref.WeakSet[LatestWins] = weakref.WeakSet()  # closed at exit (see :meth:`LatestWins.close`)


class LatestWins:
    """Runs ``job(request, superseded)`` on the newest request, in a daemon thread started on the first
    request (or, with ``threaded=False`` or ``request(..., sync=True)``, in the caller's thread).

    ``superseded()`` turns true once a newer request arrives: the job checks it between its stages and
    shows nothing once it is. The job reports its own errors; one that escapes in the thread is logged
    and the thread goes on with the next request. After each job, while nothing waits, the thread runs
    ``idle_job(interrupted)`` once (work ahead of the user's next request); ``interrupted()`` turns true
    as soon as a request arrives, so a request waits at most for the idle job's current step.
    """

    def __init__(self, job: Callable[[Any, Callable[[], bool]], None], *, threaded: bool = True,
                 name: str = "seegaan-worker", idle_job: Callable[[Callable[[], bool]], None] | None = None):
        self._job = job
        self._idle_job = idle_job if threaded else None
        self._threaded = threaded
        self._name = name
        self._condition = threading.Condition()
        self._token = 0  # of the newest request
        self._pending: tuple[int, Any] | None = None
        self._busy = False
        self._idle_due = False  # a job ran (or run_idle_job asked) since the idle job last did
        self._closed = False
        self._thread: threading.Thread | None = None

    def request(self, request: Any, sync: bool = False) -> None:
        """Run ``request`` next, in place of any still waiting; ``sync`` runs it in the calling thread."""
        with self._condition:
            self._token += 1
            self._pending = (self._token, request)
            self._condition.notify_all()
        if sync or not self._threaded:
            self._run_pending()
        if self._threaded and self._thread is None and (not sync or self._idle_job is not None):
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            _STARTED.add(self)
            self._thread.start()

    def run_idle_job(self) -> None:
        """Run the idle job once more as soon as nothing waits (something it waited for has come)."""
        with self._condition:
            self._idle_due = self._idle_job is not None
            self._condition.notify_all()

    def interrupted(self) -> bool:
        """A request waits, or the worker was closed: the idle job stops at its next step."""
        return self._pending is not None or self._closed

    def idle(self, timeout: float) -> bool:
        """Block until no request waits or runs; False if that took longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Run no later request, tell the current job it is superseded (the idle job: interrupted) and
        wait up to ``timeout`` s for the thread to end: an interpreter that exits while the thread is
        inside a torch computation aborts (a C++ "terminate called"), failing the process: every
        started worker is closed at exit for that reason."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._closed and not self._idle_due:
                    self._condition.wait()
                if self._closed:
                    return
                idle, self._idle_due = self._pending is None, False
            try:
                if idle:
                    self._idle_job(self.interrupted)
                else:
                    self._run_pending()
            except Exception:  # noqa: BLE001 -- the job failed to report it: keep serving the next request
                log.exception("%s: a job failed", self._name)

    def _run_pending(self) -> None:
        with self._condition:
            if self._pending is None:
                return
            token, request = self._pending
            self._pending, self._busy = None, True
        try:
            self._job(request, lambda: self._closed or self._token != token)
        finally:
            with self._condition:
                self._busy = False
                self._idle_due = self._idle_job is not None
                self._condition.notify_all()


@atexit.register
def _close_started() -> None:
    for worker in list(_STARTED):
        worker.close()


def release_freed_memory() -> None:
    """Hand the memory freed by finished work back to the system (glibc keeps it in its arenas): a
    dashboard runs one kernel per viewer, and work done ahead frees much of what it allocated. A
    no-op where the C library is not glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
