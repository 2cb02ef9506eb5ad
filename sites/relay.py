"""A TCP relay that adds a fixed delay to each direction without limiting throughput.

This kernel has no netem, so latency between two sites comes from here. Every chunk read from one side is
written to the other side `delay` seconds after it arrived: chunks wait in a timestamped queue while reading
goes on, so a delayed stream still runs at the link's rate (a sleep per chunk would cap it at chunk/delay).

    relay.py --listen 198.18.0.2:7000 --target 198.18.0.1:80 --delay-ms 20
    relay.py --listen 0.0.0.0:61999 --transparent --delay-ms 20   # behind an nft `redirect`: forwards to
                                                                   # each connection's original destination

What it models, and what not (see sites/README.md): the application sees one-way delay D on every byte and a
first exchange that costs an extra round trip (the relay connects onward 3·D after accepting, as a real
handshake would delay the server's accept). Each leg is its own TCP connection with a short RTT, so TCP's slow
start and loss recovery do not see the delay; the bytes held in the delay line are capped (by default at the
kernel's largest receive window, tcp_rmem's maximum), which caps one connection at cap/D as a window would.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import socket
import struct
import sys

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h: the destination before NAT rewrote it


def default_cap() -> int:
    try:
        with open("/proc/sys/net/ipv4/tcp_rmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 6 << 20


def original_destination(sock: socket.socket) -> tuple[str, int]:
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    (port,) = struct.unpack("!H", raw[2:4])
    return socket.inet_ntoa(raw[4:8]), port


class DelayLine:
    """One direction of one connection: bytes that arrived at t go out at t + delay, in order."""

    def __init__(self, conn: Conn, source: Side) -> None:
        self.conn, self.source = conn, source
        self.loop = conn.loop
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.queued = 0
        self.sink: asyncio.Transport | None = None
        self.sink_paused = False
        self.over_cap = False
        self.timer: asyncio.TimerHandle | None = None
        self.done = False  # the end of the stream has been delivered (or can no longer be)

    def push(self, data: bytes | None) -> None:
        """Queue a chunk, or the end of the stream (None)."""
        self.queue.append((self.loop.time() + self.conn.delay, data))
        if data:
            self.queued += len(data)
            if self.queued > self.conn.cap and not self.over_cap:
                self.over_cap = True
                self.source.throttle()
        self._arm()

    def attach(self, sink: asyncio.Transport) -> None:
        self.sink = sink
        self._arm()

    def drop(self) -> None:
        """The receiving side is gone: nothing queued can be delivered."""
        self.queue.clear()
        self.queued = 0
        self.done = True
        if self.timer:
            self.timer.cancel()

    def _arm(self) -> None:
        if self.timer is None and self.queue and self.sink is not None and not self.sink_paused:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)

    def _flush(self) -> None:
        self.timer = None
        sink = self.sink
        assert sink is not None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now and not self.sink_paused:
            _, data = self.queue.popleft()
            if sink.is_closing():
                self.drop()
                return
            if data is None:
                self.done = True
                if sink.can_write_eof():
                    sink.write_eof()
                self.conn.maybe_close()
                return
            self.queued -= len(data)
            sink.write(data)
        if self.over_cap and self.queued <= self.conn.cap // 2:
            self.over_cap = False
            self.source.unthrottle()
        self._arm()

    def pause(self, paused: bool) -> None:
        """The sink's own send buffer is full (or drained): stop (or resume) writing into it."""
        self.sink_paused = paused
        if paused:
            self.source.throttle()
        else:
            self.source.unthrottle()
            self._arm()


class Side(asyncio.Protocol):
    """One of the two sockets of a relayed connection."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.throttles = 0  # reading is paused while any reason to pause holds
        self.outgoing: DelayLine | None = None  # bytes read here
        self.incoming: DelayLine | None = None  # bytes written here

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.made(self)

    def data_received(self, data: bytes) -> None:
        assert self.outgoing is not None
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        assert self.outgoing is not None
        self.outgoing.push(None)
        return True  # keep the other half open: the peer may still be sending

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(self, exc)

    def pause_writing(self) -> None:
        if self.incoming:
            self.incoming.pause(True)

    def resume_writing(self) -> None:
        if self.incoming:
            self.incoming.pause(False)

    def throttle(self) -> None:
        self.throttles += 1
        if self.throttles == 1 and self.transport and not self.transport.is_closing():
            self.transport.pause_reading()

    def unthrottle(self) -> None:
        self.throttles = max(0, self.throttles - 1)
        if self.throttles == 0 and self.transport and not self.transport.is_closing():
            self.transport.resume_reading()


class Conn:
    """An accepted connection, the onward one, and a delay line each way."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.loop = relay.loop
        self.delay, self.cap = relay.delay, relay.cap
        self.client, self.server = Side(self), Side(self)
        self.up = DelayLine(self, self.client)  # client -> server
        self.down = DelayLine(self, self.server)  # server -> client
        self.client.outgoing = self.server.incoming = self.up
        self.server.outgoing = self.client.incoming = self.down
        self.closed = False

    def made(self, side: Side) -> None:
        if side is self.server:
            assert side.transport is not None
            self.up.attach(side.transport)
            return
        assert side.transport is not None
        self.down.attach(side.transport)
        target = self.relay.target
        if target is None:
            target = original_destination(side.transport.get_extra_info("socket"))
        # a real handshake makes the first exchange one round trip later than the data alone would
        wait = 3 * self.delay if self.relay.handshake else 0.0
        self.loop.call_later(wait, lambda: asyncio.ensure_future(self._connect(target)))

    async def _connect(self, target: tuple[str, int]) -> None:
        if self.closed:
            return
        try:
            await self.loop.create_connection(lambda: self.server, target[0], target[1])
        except OSError as err:
            print(f"relay: connect {target[0]}:{target[1]}: {err}", file=sys.stderr, flush=True)
            self.abort()

    def lost(self, side: Side, exc: Exception | None) -> None:
        if exc is not None:
            self.abort()
            return
        # a side closed cleanly: what it sent still goes out, what is bound for it cannot
        side.incoming.drop()  # type: ignore[union-attr]
        if not any(d is None for _, d in side.outgoing.queue) and not side.outgoing.done:  # type: ignore[union-attr]
            side.outgoing.push(None)  # type: ignore[union-attr]
        self.maybe_close()

    def maybe_close(self) -> None:
        if self.up.done and self.down.done:
            self.close(abort=False)

    def abort(self) -> None:
        self.close(abort=True)

    def close(self, abort: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for line in (self.up, self.down):
            if line.timer:
                line.timer.cancel()
        for side in (self.client, self.server):
            if side.transport and not side.transport.is_closing():
                side.transport.abort() if abort else side.transport.close()


class Relay:
    def __init__(self, delay_s: float, target: tuple[str, int] | None, cap: int, handshake: bool) -> None:
        self.delay, self.target, self.cap, self.handshake = delay_s, target, cap, handshake
        self.loop = asyncio.get_running_loop()

    def accepted(self) -> Side:
        return Conn(self).client


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "0.0.0.0", int(port)


async def main_async(args: argparse.Namespace) -> None:
    relay = Relay(args.delay_ms / 1000.0, None if args.transparent else host_port(args.target),
                  args.cap or default_cap(), not args.no_handshake)
    host, port = host_port(args.listen)
    server = await relay.loop.create_server(relay.accepted, host, port, reuse_address=True, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        relay.loop.add_signal_handler(sig, stop.set)
    print(f"relay listening on {host}:{port} delay {args.delay_ms} ms", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="ADDR:PORT to accept on")
    dest = ap.add_mutually_exclusive_group(required=True)
    dest.add_argument("--target", help="HOST:PORT to forward to")
    dest.add_argument("--transparent", action="store_true",
                      help="forward to each connection's original destination (behind an nft redirect)")
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay, each direction")
    ap.add_argument("--cap", type=int, default=0, help="bytes held per direction per connection "
                    "(default: tcp_rmem's maximum)")
    ap.add_argument("--no-handshake", action="store_true", help="connect onward at once")
    asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
