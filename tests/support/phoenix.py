"""A real Arize Phoenix for tests: started from its own venv on free loopback ports, read back over REST.

Phoenix lives in `.venv-phoenix` (created by tests/run.sh) so its ~870 MB of pins never touch `.venv`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-phoenix"
EXECUTABLE = VENV / "bin" / "phoenix"
INSTALL_HINT = (
    f"Phoenix is not installed: {EXECUTABLE} is missing. Run `bash tests/run.sh` once "
    "(it creates .venv-phoenix with arize-phoenix), then run the tests again."
)

# Idle start-up is ~20 s; on a busy 2-CPU machine it was measured at ~40 s, so leave room.
STARTUP_DEADLINE = 120.0
# `phoenix serve` exits ~2 s after SIGTERM; beyond this it is stuck and gets SIGKILL.
STOP_GRACE = 8.0
LOG_TAIL_LINES = 40

# Every PHOENIX_* variable of the developer's shell is dropped first: an inherited
# PHOENIX_SQL_DATABASE_URL, say, would point the test server at someone's real database.
_OFFLINE_ENV = {
    "PHOENIX_HOST": "127.0.0.1",
    "PHOENIX_TELEMETRY_ENABLED": "false",
    # Phoenix 20.x downloads a WASM sandbox binary from the internet at start-up unless this is off
    # (seen as a DNS lookup in strace and "WASM sandbox binary pre-fetch failed" in its log).
    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    # The built-in assistant (web access, server-side bash, MCP) is not under test; off means less to start.
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    "PHOENIX_ENABLE_MCP_SERVER": "false",
    # Migrations otherwise log ~4,500 lines of SQL, burying the lines a failure message should show.
    "PHOENIX_LOG_MIGRATIONS": "false",
    # Phoenix prints its banner to stdout; unbuffered, the log tail in a failure is up to date.
    "PYTHONUNBUFFERED": "1",
}


def _free_port(host: str, taken: set[int]) -> int:
    """A port nothing listens on at `host` (bind to port 0, read it back, release it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(Phoenix has written nothing yet)"


@dataclass(frozen=True)
class Phoenix:
    """A running Phoenix: where it listens and a minimal client for the REST API used by the tests."""

    base_url: str
    grpc_port: int
    log_path: Path

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.base_url}{path}{query}", timeout=10) as response:
            return json.load(response)

    def project_names(self) -> list[str]:
        return [p["name"] for p in self._pages("/v1/projects")]

    def spans(self, project: str) -> list[dict[str, Any]]:
        """Every span of a project, oldest first; [] while Phoenix has not created the project yet."""
        try:
            spans = self._pages(f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans",
                                limit=1000, sort="start_time", order="asc")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the first span of the project has not been inserted yet
                return []
            raise
        return spans

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def _pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.get(path, **params, **({"cursor": cursor} if cursor else {}))
            items.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (OSError, ValueError):  # refused, reset, timed out, or a half-started server's bad reply
        return False


@contextmanager
def run_phoenix(working_dir: Path, *, deadline: float = STARTUP_DEADLINE) -> Iterator[Phoenix]:
    """Start `phoenix serve` offline on free ports, wait until its REST API answers, stop it on exit.

    Raises `FileNotFoundError` (with `INSTALL_HINT`) when .venv-phoenix is missing and `RuntimeError`
    (with the tail of Phoenix's log) when it exits or does not answer within `deadline` seconds.
    """
    if not EXECUTABLE.exists():
        raise FileNotFoundError(INSTALL_HINT)
    working_dir.mkdir(parents=True, exist_ok=True)
    http_port = _free_port("127.0.0.1", set())
    # Phoenix binds its gRPC port on every interface whatever PHOENIX_HOST says, so check it is
    # free on all of them, not just on loopback.
    grpc_port = _free_port("0.0.0.0", {http_port})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env.update(_OFFLINE_ENV)
    env.update({
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_PORT": str(http_port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
    })
    log_path = working_dir / "phoenix.log"
    phoenix = Phoenix(f"http://127.0.0.1:{http_port}", grpc_port, log_path)
    with ExitStack() as stack:
        log = stack.enter_context(log_path.open("wb"))
        process = subprocess.Popen([str(EXECUTABLE), "serve"], env=env, cwd=working_dir,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(_stop, process)
        started = time.monotonic()
        while not _answers(f"{phoenix.base_url}/v1/projects"):
            if process.poll() is not None:
                raise RuntimeError(f"Phoenix exited with code {process.returncode} before answering on "
                                   f"{phoenix.base_url}; last lines of {log_path}:\n{phoenix.log_tail()}")
            if time.monotonic() - started > deadline:
                raise RuntimeError(f"Phoenix did not answer on {phoenix.base_url}/v1/projects within "
                                   f"{deadline:.0f} s; last lines of {log_path}:\n{phoenix.log_tail()}")
            time.sleep(0.25)
        yield phoenix


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
