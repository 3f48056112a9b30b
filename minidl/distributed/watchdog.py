"""A timeout for waits that block inside MPI.

MPI's own waits (MPI_Wait, MPI_Waitall) wait forever. Most of minidl's waits therefore poll
their requests from Python and give up after the timeout (comm.poll). The ring allreduce's
steps instead block inside MPI: when ranks share cores, MPI hands the core over to the
rank we wait for much faster than a Python polling loop can (docs/distributed.md measures
it). The timeout is then kept by a watchdog thread, one per Communicator, which looks at
the wait in progress every quarter of the timeout.

Past the deadline it cancels the wait's requests. MPI can cancel a receive that has not
been matched, so the wait returns and the waiting rank raises DistributedTimeout naming
the rank it waited for, as a polled wait would. A send whose receiver never comes cannot
be cancelled (MPI-4 deprecated that, and mpich ignores it): if the wait has not returned
a little later, the watchdog prints the same message and aborts the job, which is what
MPI does anyway once any rank fails.

Cheap on purpose. With more ranks than cores every wake-up of the thread takes a core from
a rank that is working, and every microsecond between posting a message and waiting for
it delays the hand-over: a lock per wait and a thread waking ten times a second cost the
ring 5-10% at 1 MB. So the waiting thread only stores attributes (no lock), and the
watchdog wakes rarely. The price is precision: a wait fails between 1 and 1.25 timeouts
after it began.
"""

import sys
import threading
import time

GRACE_FRACTION = 0.25  # of the timeout: how long a cancelled wait gets to return before the job is aborted
MIN_CHECK_EVERY = 0.05  # seconds; the watchdog never wakes more often than this


class Watchdog:
    """Ends blocking waits that outlive their deadline (see the module docstring).

    The waiting thread calls `begin(requests, timeout, context)` before it blocks and `end()`
    after: a few attribute stores. `expired` tells it afterwards whether the watchdog
    cancelled its wait. describe(context, waited) gives the timeout message (for the abort,
    printed from here).
    """

    def __init__(self, describe, abort):
        self._describe = describe
        self._abort = abort  # abort(): end the whole job (MPI_Abort)
        self.requests = None  # the wait in progress, or None
        self.context = None  # what the waiting thread said about it, for the message
        self.started = self.deadline = 0.0
        self.expired = False
        self._thread = threading.Thread(target=self._run, name="minidl-mpi-watchdog", daemon=True)
        self._thread.start()

    def begin(self, requests, timeout, context):
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.context = context
        self.requests = requests

    def end(self):
        self.requests = None

    def _run(self):
        while True:
            time.sleep(max((self.deadline - self.started) / 4, MIN_CHECK_EVERY))
            requests = self.requests
            if requests is None or time.monotonic() < self.deadline:
                continue
            self.expired = True
            for request in requests:
                try:
                    request.Cancel()
                except Exception:  # noqa: BLE001 - a request that completed meanwhile is no longer valid
                    pass
            time.sleep(max((self.deadline - self.started) * GRACE_FRACTION, MIN_CHECK_EVERY))
            if self.requests is requests:  # the same wait is still blocked: a send nobody receives
                print(
                    f"{self._describe(self.context, time.monotonic() - self.started)} "
                    "(a send MPI cannot cancel: ending the job)",
                    file=sys.stderr,
                    flush=True,
                )
                self._abort()
