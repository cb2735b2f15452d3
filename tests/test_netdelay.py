"""The benchmarks' delaying proxy: it adds its round trip and delivers every byte, in order."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from bench.netdelay import DelayProxy
from tests.conftest import REDIS_URL, need

RTT_MS = 40.0


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A real TCP server that sends back what it reads, then closes after the client's EOF."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield port
    listener.close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[DelayProxy]:
    """A proxy with RTT_MS of round trip in front of the echo server."""
    p = DelayProxy(("127.0.0.1", echo_port), RTT_MS).start()
    yield p
    p.stop()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "connection closed early"
        out += chunk
    return bytes(out)


def test_each_ping_pong_through_the_proxy_takes_at_least_its_round_trip_and_is_counted(
    proxy: DelayProxy,
) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(3):
            t0 = time.perf_counter()
            sock.sendall(b"ping%d" % i)
            assert _recv_exactly(sock, 5) == b"ping%d" % i
            assert (time.perf_counter() - t0) * 1000 >= RTT_MS
    assert proxy.round_trips == 3


def test_bytes_arrive_intact_and_in_order_and_the_reply_outlives_the_senders_eof(
    proxy: DelayProxy,
) -> None:
    payload = os.urandom(3 << 20)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        received = bytearray()

        def read_all() -> None:
            while chunk := sock.recv(65536):
                received.extend(chunk)

        reader = threading.Thread(target=read_all)
        reader.start()
        # Many sends of odd sizes, so the proxy sees many chunks, then end of stream: the echo
        # that is still in flight must arrive before the proxy passes on the server's close.
        for start in range(0, len(payload), 7919):
            sock.sendall(payload[start : start + 7919])
        sock.shutdown(socket.SHUT_WR)
        reader.join(30)
    assert bytes(received) == payload


def test_a_redis_command_goes_through_the_proxy_with_its_delay() -> None:
    parts = urlsplit(REDIS_URL)
    target = (parts.hostname or "127.0.0.1", parts.port or 6379)
    try:
        socket.create_connection(target, timeout=2).close()
    except OSError as exc:
        need(f"no Redis at {REDIS_URL} ({exc}); `scripts/dev services` starts one")
    p = DelayProxy(target, RTT_MS).start()
    try:
        client = redis.Redis(host="127.0.0.1", port=p.port, socket_timeout=10)
        client.ping()  # connects: the handshake is not what is measured
        t0 = time.perf_counter()
        assert client.ping() is True
        assert (time.perf_counter() - t0) * 1000 >= RTT_MS
        client.close()
    finally:
        p.stop()
