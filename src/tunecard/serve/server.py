"""Run the API with uvicorn: bind first (a busy port fails before the model loads), listen once loaded, drain on
SIGTERM or Ctrl-C (no new connections; requests already received are answered), exit 0."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

from tunecard.errors import ServeError

SERVE_EXTRA_FIX = "install the server's packages: pip install 'tunecard[serve]' (or pip install -e '.[serve]')."


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def check_options(*, port: int, max_batch_size: int, max_wait_ms: float, max_text_length: int, max_texts: int,
                  graceful_timeout: float, log_level: str = "warning") -> None:
    """E512 for an option out of range, before anything loads."""
    problems = []
    if log_level not in LOG_LEVELS:
        problems.append(f"--log-level {log_level!r} (one of {', '.join(LOG_LEVELS)})")
    if not 0 <= port <= 65535:
        problems.append(f"--port {port} (0-65535; 0 picks a free port)")
    for name, value in (("--max-batch-size", max_batch_size), ("--max-text-length", max_text_length),
                        ("--max-texts", max_texts)):
        if value < 1:
            problems.append(f"{name} {value} (at least 1)")
    for name, value in (("--max-wait-ms", max_wait_ms), ("--graceful-timeout", graceful_timeout)):
        if not value >= 0:
            problems.append(f"{name} {value} (0 or more)")
    if problems:
        raise ServeError("E512", f"option out of range: {'; '.join(problems)}.", fix="see tunecard serve --help.")


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (not yet listening: connections are refused until the model is loaded)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ServeError("E510", f"cannot resolve host {host!r}: {error.strerror}",
                         fix="give an address such as 127.0.0.1, 0.0.0.0 or ::1.") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ServeError("E510", f"cannot listen on {host}:{port}: {error.strerror}",
                         fix="choose another --port (0 picks a free one), or stop the program using it.") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8000, max_batch_size: int = 64,
        max_wait_ms: float = 5.0, max_text_length: int = 10_000, max_texts: int = 256,
        graceful_timeout: float = 30.0, log_level: str = "warning", **predictor_options) -> None:
    """Serve a trained folder until SIGTERM or Ctrl-C.

    Args:
        folder: a run folder (or any save_pretrained token / sequence classifier).
        host, port: where to listen (port 0: a free port; the address is printed once ready).
        max_batch_size, max_wait_ms: dynamic batching (serve.batcher).
        max_text_length, max_texts: request limits (serve.app.Limits).
        graceful_timeout: seconds requests in flight get to finish after SIGTERM before they are cancelled.
        log_level: uvicorn's (warning: errors only; info: requests too).
        predictor_options: `tunecard.inference.load` options (precision, recheck_margin, speed, ...).

    Raises:
        ServeError: E510 the address cannot be used, E511 starlette or uvicorn missing, E512 an option out of range.
    """
    check_options(port=port, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                  max_text_length=max_text_length, max_texts=max_texts, graceful_timeout=graceful_timeout,
                  log_level=log_level)
    try:
        import uvicorn

        from tunecard.serve.app import Limits, load_app
    except ImportError as error:
        raise ServeError("E511", f"`tunecard serve` needs starlette and uvicorn ({error}).",
                         fix=SERVE_EXTRA_FIX) from None

    sock = bind(host, port)
    try:
        url = url_of(sock)

        def ready() -> None:
            predictor = app.state.predictor
            print(f"tunecard serve: {folder} ({predictor.task}, {'bf16' if predictor.bf16 else 'fp32'}) on {url} "
                  "(POST /predict, GET /health, GET /metadata); SIGTERM or Ctrl-C stops it", file=sys.stderr,
                  flush=True)

        # The model loads in the thread that runs every prediction: one OpenMP team (serve.batcher).
        app = load_app(folder, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                       limits=Limits(max_text_length=max_text_length, max_texts=max_texts), on_ready=ready,
                       **predictor_options)
        config = uvicorn.Config(app, lifespan="on", log_level=log_level, access_log=log_level == "info",
                                timeout_graceful_shutdown=graceful_timeout)
        server = uvicorn.Server(config)
        # uvicorn drains on SIGTERM / SIGINT, then raises the signal again for the handler that was there before:
        # with these, a drained server returns here and exits 0 instead of dying of the signal it handled.
        previous = {sig: signal.signal(sig, _drained) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            server.run(sockets=[sock])  # uvicorn's loop factory: uvloop when it is installed
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        stats = app.state.batcher.stats
        print(f"tunecard serve: stopped; {stats.requests} requests ({stats.texts} texts) answered in "
              f"{stats.batches} batches", file=sys.stderr, flush=True)
    finally:
        sock.close()


def _drained(sig, frame) -> None:
    """The signal uvicorn raises again after it drained: nothing left to do."""
