"""A collector that accepts the connection but never answers must not hold up the traced program's exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.apps import ONE_NODE_GRAPH


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port on loopback whose server accepts every connection, then neither reads nor writes."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            held.append(conn)  # kept open, so the client waits for an answer instead of seeing a reset

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(5)
    for conn in held:
        conn.close()


def run_traced(tmp_path: Path, env_extra: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the traced app; returns its result and how long it took to exit after its last line of output.

    Timed from the output, not from the start: imports dominate a whole run, and on a loaded machine
    they vary by seconds, far more than the exit phase this test is about."""
    script = tmp_path / "app.py"
    script.write_text(ONE_NODE_GRAPH)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "MASSGEN_TRACING", "PHOENIX_", "OPENINFERENCE_"))}
    env.update(MASSGEN_TRACING="1", MASSGEN_TRACING_CONSOLE="off", MASSGEN_TRACING_STRICT="1",
               MASSGEN_TRACING_SHUTDOWN_TIMEOUT="0.5", PYTHONUNBUFFERED="1", **env_extra)
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the program's one line, printed as its last act
        printed = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    exited = time.monotonic()
    return subprocess.CompletedProcess(proc.args, proc.returncode, line + stdout, stderr), exited - printed


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_collector_that_never_answers_does_not_delay_exit(tmp_path, blackhole, protocol):
    # The HTTP exporter waits up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s) for an answer; the program used to
    # wait with it. Its exit, timed from its last output, must stay near the 0.5 s shutdown budget: 3 s
    # leaves room for a busy machine and is far below the 10 s it was.
    out, exit_s = run_traced(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{blackhole}",
                                        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "{'x': 2}\n"
    assert exit_s < 3, f"exit took {exit_s:.1f} s after the program's last output"
    if protocol == "http/protobuf":
        # gRPC's request is cancelled when its channel closes, so whether it is still running at the check
        # (and warned about) is a race; HTTP's cannot be cut and always is.
        assert out.stderr == (f"massgen-tracing: the collector at http://127.0.0.1:{blackhole}/v1/traces was "
                              "unreachable or did not answer within 0.5s at shutdown; the spans being sent to it "
                              "were dropped\n")
