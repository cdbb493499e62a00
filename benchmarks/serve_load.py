"""Load on loopback: `tunecard serve` against `transformers.pipeline` in a plain endpoint (serve_baseline.py).

    .venv/bin/python benchmarks/serve_load.py [--model RUN_DIR] [--requests 10000] [--concurrency 1 8 32]
                                             [--client raw|httpx] [--max-batch-size 64] [--max-wait-ms 5]
                                             [--baseline-requests N] [--skip-baseline]
                                             [--json results.json]

Each server runs alone in its own process (started here, stopped with SIGTERM), warmed up, then takes
`--requests` POST /predict requests of one sentence each at every concurrency level: that many clients, each
sending its next request as soon as its last is answered, on keep-alive connections. Reported per level:
requests, errors (a status other than 200, a body without an "entities" list, a broken connection), throughput
(requests / wall time) and the latency of each request from its first byte sent to its last byte read (p50, p99).

The texts are the CoNLL-2003 validation sentences (joined with spaces, in order, repeated), or the WNUT-17
sample's where ../shared/data is absent. Without --model, a MiniLM NER model is trained first (the embedded
all-MiniLM-L6-v2, the first 3000 CoNLL-2003 training sentences, 1 epoch; the WNUT-17 sample otherwise) into
runs/serve-bench-minilm, and reused when it is there.

The client: `raw` (default) is a minimal HTTP/1.1 client on asyncio streams, so the load generator takes as
little of the machine's CPU as it can (it shares the cores with the server); `httpx` uses httpx.AsyncClient.
Both count the same errors. A timing: run it on a quiet machine (nothing else running), and report the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "src" / "tunecard" / "samples" / "wnut17"
DEFAULT_MODEL = ROOT / "runs" / "serve-bench-minilm"
sys.path.insert(0, str(ROOT / "src"))


def texts() -> tuple[list[str], str]:
    """Sentences to send, and where they come from."""
    from tunecard.data import read_corpus

    path = DATA / "conll2003" / "valid.txt"
    if not path.is_file():
        path = SAMPLE / "dev.conll"
    return [" ".join(example.tokens) for example in read_corpus(path).examples], str(path)


def ensure_model(model: str | None) -> Path:
    if model:
        return Path(model)
    if (DEFAULT_MODEL / "config.json").is_file():
        return DEFAULT_MODEL
    conll = DATA / "conll2003"
    if (conll / "train.txt").is_file():
        data = ["--train", str(conll / "train.txt"), "--validation", str(conll / "valid.txt"),
                "--set", "max_train_examples=3000", "--set", "max_eval_examples=1000",
                "--set", "dataset_name=conll2003"]
    else:
        data = ["--train", str(SAMPLE / "train.conll"), "--validation", str(SAMPLE / "dev.conll")]
    command = [sys.executable, "-m", "tunecard", "train", "--task", "ner", *data, "--epochs", "1",
               "--output", str(DEFAULT_MODEL), "--quiet"]
    print("training the benchmark model:", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)
    return DEFAULT_MODEL


class Server:
    """A server process, its URL once it is ready, stopped with SIGTERM."""

    def __init__(self, name: str, command: list[str], url: str | None = None):
        self.name = name
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = url
        self.log: list[str] = []
        found = threading.Event()

        def read() -> None:
            for line in self.process.stderr:
                self.log.append(line)
                match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
                if match and self.url is None:
                    self.url = match.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 600
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"{name} did not start:\n{''.join(self.log)}")
            found.wait(0.2)
            time.sleep(0.2)

    def _healthy(self) -> bool:
        if self.url is None:
            return False
        host, port = self.url.rsplit("/", 1)[-1].split(":")
        try:
            status, _, _ = asyncio.run(_one_get(host, int(port), "/health"))
            return status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length, keep_alive = None, True
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value == "close":
            keep_alive = False
        elif name == "transfer-encoding":
            raise ValueError(f"transfer-encoding {value} is not read by this client")
    if length is None:
        raise ValueError("no content-length")
    return status, await reader.readexactly(length), keep_alive


async def _one_get(host: str, port: int, path: str) -> tuple[int, bytes, bool]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()


def _valid(status: int, payload: bytes) -> bool:
    if status != 200:
        return False
    try:
        return isinstance(json.loads(payload).get("entities"), list)
    except (ValueError, AttributeError):
        return False


async def _raw_load(url: str, bodies: list[bytes], requests: int, concurrency: int) -> list[tuple[float, bool]]:
    host, port = url.rsplit("/", 1)[-1].split(":")
    head = f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "
    results: list[tuple[float, bool]] = []
    issued = 0

    async def client() -> None:
        nonlocal issued
        reader = writer = None
        while issued < requests:
            body = bodies[issued % len(bodies)]
            issued += 1
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(f"{head}{len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                status, payload, keep_alive = await _read_response(reader)
                ok = _valid(status, payload)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                ok, keep_alive = False, False
            results.append((time.perf_counter() - started, ok))
            if not keep_alive and writer is not None:  # the connection failed or the server closes it
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


async def _httpx_load(url: str, bodies: list[bytes], requests: int, concurrency: int) -> list[tuple[float, bool]]:
    import httpx

    results: list[tuple[float, bool]] = []
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as http:
        async def client() -> None:
            nonlocal issued
            while issued < requests:
                body = bodies[issued % len(bodies)]
                issued += 1
                started = time.perf_counter()
                try:
                    response = await http.post("/predict", content=body,
                                               headers={"content-type": "application/json"})
                    ok = _valid(response.status_code, response.content)
                except httpx.HTTPError:
                    ok = False
                results.append((time.perf_counter() - started, ok))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


def load(url: str, bodies: list[bytes], requests: int, concurrency: int, client: str) -> dict:
    run = _raw_load if client == "raw" else _httpx_load
    started = time.perf_counter()
    results = asyncio.run(run(url, bodies, requests, concurrency))
    seconds = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in results)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"concurrency": concurrency, "requests": len(results), "errors": sum(not ok for _, ok in results),
            "seconds": seconds, "requests_per_s": len(results) / seconds,
            "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


def _health(url: str) -> dict:
    host, port = url.rsplit("/", 1)[-1].split(":")
    status, payload, _ = asyncio.run(_one_get(host, int(port), "/health"))
    return json.loads(payload) if status == 200 else {}


def environment() -> dict:
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit, "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help=f"a trained NER run folder (default: {DEFAULT_MODEL}, trained if absent)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests per concurrency level and server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--max-batch-size", type=int, default=64, help="tunecard serve --max-batch-size")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="tunecard serve --max-wait-ms")
    parser.add_argument("--warmup", type=int, default=200, help="requests sent before each server is measured")
    parser.add_argument("--baseline-requests", type=int,
                        help="requests per concurrency level for the baseline (default: --requests); it answers one "
                             "request at a time, so 10,000 at each level take it many minutes")
    parser.add_argument("--skip-baseline", action="store_true", help="measure tunecard serve only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    model = ensure_model(args.model)
    sentences, source = texts()
    bodies = [json.dumps({"text": text}, ensure_ascii=False).encode() for text in sentences]
    servers = {"tunecard serve": [sys.executable, "-m", "tunecard", "serve", str(model), "--port", "0",
                                  "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]}
    if not args.skip_baseline:
        with socket.socket() as probe:  # a free port for the baseline (it takes a fixed one)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        servers["pipeline in an endpoint"] = [sys.executable, str(ROOT / "benchmarks" / "serve_baseline.py"),
                                              str(model), "--port", str(port)]
    found = {"model": str(model), "texts": source, "client": args.client, "environment": environment(),
             "options": {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms}, "servers": {}}
    for name, command in servers.items():
        server = Server(name, command)
        try:
            load(server.url, bodies, args.warmup, max(args.concurrency), args.client)
            levels = []
            requests = args.requests if name == "tunecard serve" else (args.baseline_requests or args.requests)
            for concurrency in args.concurrency:
                before = _health(server.url)
                level = load(server.url, bodies, requests, concurrency, args.client)
                after = _health(server.url)
                if "batches" in after:  # tunecard: how many texts its batches held on average
                    batches = after["batches"] - before["batches"]
                    level["mean_batch"] = (after["texts"] - before["texts"]) / batches if batches else None
                levels.append(level)
                print(f"{name}: {json.dumps(level)}", file=sys.stderr, flush=True)
            found["servers"][name] = levels
        finally:
            server.stop()
    print(markdown(found))
    if args.json:
        args.json.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")


def markdown(found: dict) -> str:
    env = found["environment"]
    lines = [f"{env['date']}, {env['cpu']}, {env['cores']} cores, torch {env['torch']}, transformers "
             f"{env['transformers']}, commit {env['commit']}; model {found['model']}; texts {found['texts']}; "
             f"client {found['client']}", "",
             "| server | concurrency | requests | errors | requests/s | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|---|"]
    for name, levels in found["servers"].items():
        for level in levels:
            lines.append(f"| {name} | {level['concurrency']} | {level['requests']} | {level['errors']} | "
                         f"{level['requests_per_s']:.1f} | {level['p50_ms']:.1f} | {level['p99_ms']:.1f} |")
    ours, theirs = found["servers"].get("tunecard serve"), found["servers"].get("pipeline in an endpoint")
    if ours and theirs:
        lines.append("")
        for mine, base in zip(ours, theirs):
            lines.append(f"concurrency {mine['concurrency']}: {mine['requests_per_s'] / base['requests_per_s']:.2f}x "
                         "the baseline's throughput")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
