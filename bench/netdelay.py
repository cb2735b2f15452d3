"""A TCP proxy that adds network latency: every chunk waits half a round trip each way.

The fleet benchmark puts devices behind it to see what a real network between a device and
Redis or PostgreSQL costs. Latency is all it adds: bandwidth is not limited, and order is
kept, because a reader stamps each chunk with its arrival time and a writer per direction
sends the chunks in order, each no earlier than its stamp plus the delay. So a stream of many
chunks pays the delay once, as on a real link, not once per chunk.

It runs on asyncio in its own thread (`DelayProxy`) or, so that its CPU shows apart from the
benchmark's and never competes with it for the GIL, as a process of its own:
    .venv/bin/python -m bench.netdelay --target 127.0.0.1:6379 --rtt-ms 20 [--port P]
which prints `listening on PORT` once it accepts connections, and `round trips N` on SIGUSR1:
the exchanges clients have started, a count that, unlike a rate, other load cannot move.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import threading

from allscreen.embedded_redis import free_port

CHUNK = 1 << 16  #: bytes read at a time: one socket buffer's worth, so a chunk never waits for more


class DelayProxy:
    """Forwards 127.0.0.1:`port` to `target`, delaying each direction by `rtt_ms` / 2."""

    def __init__(self, target: tuple[str, int], rtt_ms: float, port: int | None = None) -> None:
        self.target = target
        self.rtt_ms = rtt_ms
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        #: Exchanges started by clients: a client chunk that follows a server reply on its
        #: connection (or opens it). Pipelined requests count once: they share a round trip.
        self.round_trips = 0

    @property
    def one_way(self) -> float:
        """Seconds each chunk waits in each direction."""
        return self.rtt_ms / 2000

    async def serve(self) -> asyncio.Server:
        """Listen on the running loop; the caller keeps the loop running."""
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        return self._server

    async def _connect(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        for w in (client_w, up_w):
            _no_delay(w)
        turn = ["server"]  # who spoke last on this connection
        try:
            await asyncio.gather(
                self._pipe(client_r, up_w, turn, "client"),
                self._pipe(up_r, client_w, turn, "server"),
            )
        finally:
            # Only now: each direction half-closes on its own, and a reply may still be on its
            # way after the request side has ended.
            client_w.close()
            up_w.close()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, turn: list[str], side: str
    ) -> None:
        """Copy `src` to `dst`: a reader stamps chunks, a writer sends each once it is due.

        `side` says who writes into `src`; `turn` (shared by both directions of a connection)
        who spoke last, to count the round trips clients start.
        """
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            try:
                while data := await src.read(CHUNK):
                    chunks.put_nowait((loop.time() + self.one_way, data))
                    if side == "client" and turn[0] == "server":
                        self.round_trips += 1
                    turn[0] = side
            except OSError:
                pass
            finally:
                chunks.put_nowait((loop.time() + self.one_way, b""))

        async def write() -> None:
            try:
                while True:
                    due, data = await chunks.get()
                    if (wait := due - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                # Half-close: the peer sees end of stream once everything before it has arrived.
                with contextlib.suppress(OSError):
                    if dst.can_write_eof():
                        dst.write_eof()

        reader = asyncio.ensure_future(read())
        await write()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    def start(self) -> DelayProxy:
        """Serve from a daemon thread of this process (for tests and light use)."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve())
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="netdelay", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop listening, drop open connections and end the thread started by `start`."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None
        self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _no_delay(writer: asyncio.StreamWriter) -> None:
    # asyncio sets TCP_NODELAY already; kept explicit because Nagle would add up to 40 ms
    # to small replies and turn a latency measurement into a Nagle measurement.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def parse_target(text: str) -> tuple[str, int]:
    """`host:port` as a pair; exits with one line when it is not one."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        sys.exit(f"--target must be HOST:PORT, got {text!r}")
    return host, int(port)


def main() -> None:
    """Run one proxy in the foreground until killed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--rtt-ms", type=float, required=True, help="round trip added, in ms")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = ap.parse_args()
    if args.rtt_ms < 0:
        sys.exit("--rtt-ms must be 0 or more")
    proxy = DelayProxy(parse_target(args.target), args.rtt_ms, args.port or None)

    async def run() -> None:
        server = await proxy.serve()
        # SIGUSR1 asks how many round trips clients have started so far (one line on stdout).
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGUSR1, lambda: print(f"round trips {proxy.round_trips}", flush=True)
        )
        print(f"listening on {proxy.port}", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
