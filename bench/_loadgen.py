"""Open-loop fixed-rate HTTP load generator for the gateway benchmark (one process).

    .venv/bin/python bench/_loadgen.py --url http://127.0.0.1:8080/v1/chat/completions \
        --key sk-... --model stub --rate 200 --duration 20 --warmup 3

Sends non-streaming chat completions at a fixed rate: request i is due at t0 + i/rate,
whether or not earlier ones have answered (open loop, so a slow server cannot slow the
generator down and hide its own queueing: "coordinated omission"). Keep-alive HTTP/1.1
connections are reused from a pool and opened on demand up to --max-conns; a request that
finds none free waits for one. ``latency_ms`` runs from writing the request to the last
byte of the answer; ``latency_from_due_ms`` runs from the request's due time, so it adds
the generator's own lag and any wait for a connection (what an overloaded server makes
callers wait). A request is an error when the status is
not 200, the body has no "choices", the connection fails, or no answer comes within
--timeout. Prints one JSON object on stdout.

Raw asyncio protocol + httptools on uvloop keeps the generator's own cost to tens of
microseconds per request, so it can drive several thousand requests/s on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import sys
import time
from urllib.parse import urlsplit

import httptools

BODY = {
    "messages": [
        {"role": "system", "content": "You are a concise assistant for a travel agency."},
        {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
    ],
    "max_tokens": 32,
    "temperature": 0,
}


class ConnError(Exception):
    pass


class Conn(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bool, float]] | None = None
        self.body = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, data: bytes, timeout: float) -> asyncio.Future[tuple[int, bool, float]]:
        loop = self.pool.loop
        fut = self.waiter = loop.create_future()
        self.body = bytearray()
        self.timer = loop.call_later(timeout, self._timeout)
        assert self.transport is not None
        self.transport.write(data)
        return fut

    def _timeout(self) -> None:
        self._fail(TimeoutError("no answer before the timeout"))
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        fut, self.waiter = self.waiter, None
        if fut is not None and not fut.done():
            fut.set_exception(error)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnError(f"bad HTTP response: {error}"))
            assert self.transport is not None
            self.transport.abort()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        done = time.perf_counter()  # uvloop's loop.time() only has millisecond resolution
        if self.timer is not None:
            self.timer.cancel()
        status = self.parser.get_status_code()
        ok = status == 200 and b'"choices"' in self.body
        if not self.parser.should_keep_alive():
            self.closed = True
        fut, self.waiter = self.waiter, None
        if fut is not None and not fut.done():
            fut.set_result((status, ok, done))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnError(f"connection lost: {exc or 'closed by server'}"))


class Pool:
    def __init__(self, host: str, port: int, max_conns: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.max_conns = host, port, max_conns
        self.free: list[Conn] = []
        self.opened = 0  # live connections, free or busy
        self.peak = 0
        self.waiters: collections.deque[asyncio.Future[Conn]] = collections.deque()

    async def acquire(self) -> Conn:
        while self.free:
            conn = self.free.pop()
            if not conn.closed:
                return conn
            self.opened -= 1
        if self.opened < self.max_conns:
            self.opened += 1
            self.peak = max(self.peak, self.opened)
            try:
                _, conn = await self.loop.create_connection(
                    lambda: Conn(self), self.host, self.port
                )
            except OSError as error:
                self.opened -= 1
                raise ConnError(f"connect failed: {error}") from None
            return conn
        fut: asyncio.Future[Conn] = self.loop.create_future()
        self.waiters.append(fut)
        return await fut

    def release(self, conn: Conn) -> None:
        if conn.closed:
            self.opened -= 1
            if conn.transport is not None:
                conn.transport.close()
            if self.waiters:  # a slot opened up: let a waiter connect
                self.loop.create_task(self._hand_new(self.waiters.popleft()))
            return
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self.free.append(conn)

    async def _hand_new(self, fut: asyncio.Future[Conn]) -> None:
        try:
            conn = await self.acquire()
        except ConnError as error:
            if not fut.done():
                fut.set_exception(error)
            return
        if fut.done():
            self.release(conn)
        else:
            fut.set_result(conn)

    def close(self) -> None:
        for conn in self.free:
            if conn.transport is not None:
                conn.transport.close()


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = math.ceil(q / 100 * len(sorted_values)) - 1  # nearest rank
    return sorted_values[max(0, min(len(sorted_values) - 1, rank))]


def summary(sorted_seconds: list[float]) -> dict[str, float | None]:
    out = {
        f"p{q:g}": (v * 1000 if (v := percentile(sorted_seconds, q)) is not None else None)
        for q in (50, 90, 95, 99, 99.9)
    }
    out["max"] = sorted_seconds[-1] * 1000 if sorted_seconds else None
    out["mean"] = sum(sorted_seconds) / len(sorted_seconds) * 1000 if sorted_seconds else None
    return out


async def run(
    pool: Pool, data: bytes, rate: float, duration: float, timeout: float, samples: list | None
) -> dict:
    loop = pool.loop
    total = max(1, int(rate * duration))
    latencies: list[float] = []  # from writing the request to the end of the answer
    from_due: list[float] = []  # from the request's due time (adds the generator's wait)
    lags: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    last_done = 0.0

    async def one(due: float) -> None:
        nonlocal last_done
        try:
            conn = await pool.acquire()
        except ConnError as error:
            errors[str(error)[:120]] += 1
            return
        sent = time.perf_counter()
        lags.append(sent - due)
        try:
            status, ok, now = await conn.request(data, timeout)
        except (ConnError, TimeoutError) as error:
            errors[str(error)[:120]] += 1
        else:
            last_done = max(last_done, now)
            if ok:
                latencies.append(now - sent)
                from_due.append(now - due)
                if samples is not None:  # (seconds since start, ms) to look for stalls
                    samples.append((round(sent - t0, 4), round((now - sent) * 1000, 3)))
            else:
                errors[f"HTTP {status}" if status != 200 else "200 without choices"] += 1
        pool.release(conn)

    tasks = []
    t0 = time.perf_counter() + 0.01
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(due)))
    sent_s = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    for values in (latencies, from_due, lags):
        values.sort()
    ok = len(latencies)
    span = max(last_done - t0, total / rate)
    return {
        "target_rps": rate,
        "duration_s": duration,
        "requests": total,
        "ok": ok,
        "errors": total - ok,
        "error_rate": (total - ok) / total,
        "error_kinds": dict(errors.most_common(5)),
        "achieved_rps": ok / span if span > 0 else 0.0,
        "send_span_s": sent_s,
        "latency_ms": summary(latencies),
        "latency_from_due_ms": summary(from_due),
        "generator_lag_ms": summary(lags),
        "peak_connections": pool.peak,
    }


async def main_async(args: argparse.Namespace) -> dict:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = json.dumps({"model": args.model, **BODY}, separators=(",", ":")).encode()
    head = (
        f"POST {url.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        + (f"Authorization: Bearer {args.key}\r\n" if args.key else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    data = head.encode() + body
    pool = Pool(host, port, args.max_conns)
    try:
        warm = await run(pool, data, args.rate, args.warmup, args.timeout, None)
        pool.peak = pool.opened
        samples: list | None = [] if args.samples else None
        result = await run(pool, data, args.rate, args.duration, args.timeout, samples)
        if args.samples:
            with open(args.samples, "w") as f:
                json.dump(sorted(samples or []), f)
        return result | {"warmup_ok": warm["ok"]}
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="full URL of /v1/chat/completions")
    parser.add_argument("--key", default="", help="bearer token")
    parser.add_argument("--model", default="stub")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request seconds")
    parser.add_argument("--max-conns", type=int, default=512)
    parser.add_argument("--samples", help="write [start s, latency ms] of each answer here")
    args = parser.parse_args()
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run  # type: ignore[assignment]
    result = run_loop(main_async(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
