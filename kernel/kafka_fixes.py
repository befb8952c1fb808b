"""Two leaks of kafka-python 3.0 (the latest, 3.0.12) while a broker does not answer, mended.

- **A failed connection attempt leaves its socket open** (``kafka.net.inet.KafkaNetSocket.
  connect`` makes a socket and awaits the connect; when that fails, nothing closes it). The
  socket stays in a reference cycle with the exception's traceback until the cyclic garbage
  collector runs, which a ``motcua`` process runs rarely (``motcua.cli.tune_gc``) and an idle
  one almost never: one client reconnecting to a stopped broker held 11 more file descriptors
  after 15 s, and a process of several clients would reach the usual limit of 1,024 within
  minutes of an outage. ``close_failed_connects`` makes the attempt close its socket when the
  connect fails (docs/decisions.md, "kafka-python's leaks while a broker is down").
- **A client whose constructor fails leaves its network client running**: a producer, consumer
  or admin client starts its network client (an IO thread, sockets) and then bootstraps; when
  that raises (no broker answered), the network client goes on, out of reach. ``built`` makes
  the client through the ``kafka_client`` factory and closes what it made when the constructor
  fails.

Both replaced methods of the library (``connect`` here, the record loop in
``kernel/kafka_fetch.py``) repeat a release's own code, so they are put in only on a release
they were checked against (``VERIFIED``; ``verified``): on another, the library's own stays,
with a warning on standard error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import kafka
from kafka.net.compat import KafkaNetClient
from kafka.net.inet import KafkaNetSocket

T = TypeVar("T")

# The library's own method, kept for the test that says when an upgrade changed it.
LIBRARY_CONNECT = KafkaNetSocket.connect

# The kafka-python releases whose code the replaced methods (here and in kernel/kafka_fetch.py)
# repeat. With another, each keeps the library's own method and says so once: a copy of an
# older body could break every client, where the library's own costs CPU or leaks a socket.
# The tests that compare the copies with the library fail until a new release is checked.
VERIFIED = frozenset({"3.0.12"})


def verified(what: str) -> bool:
    """Whether the installed kafka-python is one the copies were checked against; if not, one
    warning on standard error (this runs at import, before motcua's logs are set up) says that
    the library's own ``what`` is kept."""
    if kafka.__version__ in VERIFIED:
        return True
    logging.getLogger("motcua.kafka").warning(
        "kafka-python %s is not one motcua's copies were checked against (%s): its own %s "
        "is kept.", kafka.__version__, ", ".join(sorted(VERIFIED)), what)
    return False


def built(make: Callable[..., T], config: Mapping[str, Any]) -> T:
    """``make(**config)`` (a kafka-python producer, consumer or admin client), closing the
    network client it made if the constructor raises."""
    made: list[KafkaNetClient] = []

    def kafka_client(**configs: Any) -> KafkaNetClient:
        made.append(KafkaNetClient(**configs))
        return made[-1]

    try:
        return make(**config, kafka_client=kafka_client)
    except BaseException:
        for client in made:
            with contextlib.suppress(Exception):
                client.close()
        raise


async def _connect(self: KafkaNetSocket, net: Any, addrinfo: tuple[Any, ...],
                   socket_options: Any = (), timeout_at: float | None = None) -> Any:
    """``KafkaNetSocket.connect`` (kafka-python 3.0.12's body), closing the socket when the
    connect fails."""
    family, sock_type, proto, _canonname, sockaddr = addrinfo
    sock = self.socket(family, sock_type, proto)
    try:
        sock.setblocking(False)
        for option in socket_options:
            sock.setsockopt(*option)
        return await self.sock_connect(net, sock, sockaddr, timeout_at=timeout_at)
    except BaseException:
        sock.close()
        raise


def close_failed_connects() -> None:
    """Make kafka-python close the socket of a connection attempt that fails (idempotent; only
    on a release in ``VERIFIED``). Proxy sockets (subclasses with a ``connect`` of their own)
    are left as they are."""
    if verified("connect"):
        KafkaNetSocket.connect = _connect
