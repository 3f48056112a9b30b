"""The simulated network: latency + bytes / bandwidth per message, and a server link that saturates.

Every message between a worker and a server shard costs

    latency + bytes / bandwidth                     on the worker's own link (never shared)

and also passes through the shard's link, which all workers share and which carries one
message at a time at `server_bandwidth`, in the order they were sent (one queue for traffic
into the shard, one for traffic out: links are full duplex). While the shard's link is idle a
message arrives after latency + bytes / min(bandwidth, server_bandwidth); when N workers push
at once, the last one waits for the N - 1 before it: the server link saturates, and 16-bit
compression, which halves the bytes, doubles what it can carry.

Messages between one worker and one shard never overtake each other (as MPI guarantees for
two ranks): a small pull request sent right after a large push arrives after it.
The byte counts are the MPI transport's: a 48-byte header plus the (possibly compressed) payload.
"""

import math

from minidl.distributed.parameter_server import HEADER_BYTES


class Link:
    """A FIFO link that carries one message at a time: its `free` time, and the bytes it carried."""

    __slots__ = ("bandwidth", "free", "bytes", "busy")

    def __init__(self, bandwidth):
        self.bandwidth = bandwidth
        self.free = 0.0
        self.bytes = 0
        self.busy = 0.0  # seconds spent carrying messages

    def carry(self, ready, nbytes):
        """A message that reaches the link at `ready`: returns when it has gone through."""
        start = ready if ready > self.free else self.free
        duration = nbytes / self.bandwidth
        self.free = start + duration
        self.bytes += nbytes
        self.busy += duration
        return self.free


class Network:
    """latency (s), bandwidth (bytes/s) of each worker's link, server_bandwidth (bytes/s) of each shard's link.

    math.inf for a bandwidth means "no limit"; latency 0 and infinite bandwidths make the
    network free (every message arrives the moment it is sent).
    """

    def __init__(self, latency=5e-4, bandwidth=1.25e9, server_bandwidth=1.25e9):
        for name, value in (("bandwidth", bandwidth), ("server_bandwidth", server_bandwidth)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"network: {name} must be > 0 bytes/s (math.inf for no limit), got {value!r}")
        if not (isinstance(latency, (int, float)) and math.isfinite(latency) and latency >= 0):
            raise ValueError(f"network: latency must be a number of seconds >= 0, got {latency!r}")
        self.latency = float(latency)
        self.bandwidth = float(bandwidth)
        self.server_bandwidth = float(server_bandwidth)

    @classmethod
    def free(cls):
        """A network that costs nothing: for checking what compute times alone predict."""
        return cls(latency=0.0, bandwidth=math.inf, server_bandwidth=math.inf)

    def as_dict(self):
        return {"latency": self.latency, "bandwidth": self.bandwidth, "server_bandwidth": self.server_bandwidth}

    def __repr__(self):
        net = f"latency={self.latency:g}, bandwidth={self.bandwidth:g}, server_bandwidth={self.server_bandwidth:g}"
        return f"Network({net})"


class Channels:
    """The links of one simulated cluster: shard links in and out, and the per-pair ordering."""

    def __init__(self, network, num_workers, num_servers):
        self.network = network
        self.into_shard = [Link(network.server_bandwidth) for _ in range(num_servers)]
        self.out_of_shard = [Link(network.server_bandwidth) for _ in range(num_servers)]
        self.last_to_shard = {}  # (worker, shard) -> arrival time of the last message: no overtaking
        self.last_to_worker = {}
        self.bytes_to_servers = 0
        self.bytes_to_workers = 0
        self.messages_to_servers = 0
        self.messages_to_workers = 0

    def to_shard(self, now, worker, shard, payload_bytes):
        """Arrival time at `shard` of a message `worker` sends at `now`."""
        nbytes = HEADER_BYTES + payload_bytes
        self.bytes_to_servers += nbytes
        self.messages_to_servers += 1
        return self._deliver(now, nbytes, self.into_shard[shard], self.last_to_shard, (worker, shard))

    def to_worker(self, now, shard, worker, payload_bytes):
        """Arrival time at `worker` of a message `shard` sends at `now`."""
        nbytes = HEADER_BYTES + payload_bytes
        self.bytes_to_workers += nbytes
        self.messages_to_workers += 1
        return self._deliver(now, nbytes, self.out_of_shard[shard], self.last_to_worker, (worker, shard))

    def _deliver(self, now, nbytes, shard_link, last, pair):
        net = self.network
        ready = now + net.latency
        own = ready + nbytes / net.bandwidth
        through = shard_link.carry(ready, nbytes)
        arrival = own if own > through else through
        previous = last.get(pair, 0.0)
        if previous > arrival:
            arrival = previous
        last[pair] = arrival
        return arrival
