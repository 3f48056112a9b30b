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
a rank that is working, and every microsecond between a message arriving and the next one
leaving delays the whole ring: a wait that read the clock and built a tuple for the
watchdog made a 1 MB ring allreduce on 4 ranks 3-6% slower than a bare MPI_Wait. So the
waiting thread only stores three attributes (no clock, no lock), and the watchdog wakes
four times per timeout. The price is precision: a wait fails between 1 and 1.25 timeouts
after it began.
"""

import sys
import threading
import time

CHECKS_PER_TIMEOUT = 4  # the watchdog looks this often per timeout: a wait fails 1 to 1.25 timeouts in
GRACE_CHECKS = 1  # looks a cancelled wait gets to return before the job is aborted
MIN_CHECK_EVERY = 0.05  # seconds; the watchdog never wakes more often than this


class Watchdog:
    """Ends blocking waits that outlive their timeout (see the module docstring).

    The waiting thread stores what it waits for before it blocks and clears it after:

        watchdog.waits, watchdog.step, watchdog.requests = waits, step, requests
        ... block ...
        watchdog.requests = None

    and no more (no clock, no lock). Every timeout / CHECKS_PER_TIMEOUT seconds the watchdog
    looks at `requests`: a wait is the same sequence object (a list or tuple of requests)
    from one look to the next (the watchdog holds it, so no other wait can get its id), and
    one it has seen CHECKS_PER_TIMEOUT looks in a row has lasted at least the timeout. Then
    it cancels the requests and sets `expired`, which the waiting thread checks when its wait
    returns. describe(waits, step, seconds) gives the message; abort() ends the job.
    """

    def __init__(self, timeout, describe, abort):
        self.timeout = timeout
        self._describe = describe
        self._abort = abort
        self.requests = None  # the wait in progress, or None
        self.waits = self.step = None  # who waits and at which step, for the message
        self.expired = False
        self._thread = threading.Thread(target=self._run, name="minidl-mpi-watchdog", daemon=True)
        self._thread.start()

    def _run(self):
        watched, looks = None, 0
        while True:
            every = max(self.timeout / CHECKS_PER_TIMEOUT, MIN_CHECK_EVERY)
            time.sleep(every)
            requests = self.requests
            if requests is None or requests is not watched:
                watched, looks = requests, 0
                continue
            looks += 1
            if looks < CHECKS_PER_TIMEOUT:
                continue
            waits, step, waited = self.waits, self.step, looks * every
            self.expired = True
            for request in requests:
                try:
                    request.Cancel()
                except Exception:  # noqa: BLE001 - a request that completed meanwhile is no longer valid
                    pass
            time.sleep(every * GRACE_CHECKS)
            if self.requests is requests:  # the same wait is still blocked: a send nobody receives
                message = self._describe(waits, step, waited)
                print(f"{message} (a send MPI cannot cancel: ending the job)", file=sys.stderr, flush=True)
                self._abort()
            watched, looks = None, 0
