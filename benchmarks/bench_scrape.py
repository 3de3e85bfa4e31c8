"""Scrape cost: Caretaker's cached exposition vs prometheus_client rendering on every scrape.

Both serve the same 500 series on 127.0.0.1. The reference is prometheus_client's own
`start_http_server` with a collector over the same store (what a naive exporter does: render per
scrape). Reported as medians and as the ratio reference / caretaker, measured in the same run.

    .venv/bin/python benchmarks/bench_scrape.py [--series 500] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

import httpx
import uvicorn
from prometheus_client import CollectorRegistry, start_http_server

from agent.exporter import Exporter, StoreCollector
from agent.samples import sample
from agent.store import Store


def make_store(n: int) -> Store:
    store = Store()
    per = [sample("caretaker_postgres_dead_tuples", i, database="aperture", relation=f"rel_{i}") for i in range(n)]
    store.replace(("postgres", "aperture"), per)
    return store


def timed_gets(url: str, requests: int) -> list[float]:
    out = []
    with httpx.Client() as client:
        client.get(url).raise_for_status()  # warm-up
        for _ in range(requests):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            out.append(time.perf_counter() - started)
    return out


def serve_caretaker(store: Store) -> tuple[uvicorn.Server, int]:
    from fastapi import FastAPI, Response

    exporter = Exporter(store)
    exporter.refresh()
    app = FastAPI()
    app.get("/metrics")(lambda: Response(exporter.body(), media_type="text/plain"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(100):  # bounded wait for startup
        if server.started:
            break
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    store = make_store(args.series)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    ref_server, ref_thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    ct_server, ct_port = serve_caretaker(store)
    try:
        reference = timed_gets(f"http://127.0.0.1:{ref_server.server_port}/metrics", args.requests)
        caretaker = timed_gets(f"http://127.0.0.1:{ct_port}/metrics", args.requests)
    finally:
        ref_server.shutdown()
        ref_server.server_close()
        ct_server.should_exit = True
    ref_ms, ct_ms = statistics.median(reference) * 1e3, statistics.median(caretaker) * 1e3
    print(f"series={args.series} requests={args.requests}")
    print(f"reference (prometheus_client, render per scrape): median {ref_ms:.2f} ms")
    print(f"caretaker (cached exposition over FastAPI):       median {ct_ms:.2f} ms")
    print(f"ratio reference/caretaker: {ref_ms / ct_ms:.2f}x")


if __name__ == "__main__":
    main()
