"""Running the real `massgen` CLI on an example config against the scripted model and an OTLP receiver,
with every display line time-stamped as it arrives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mg_support import EXAMPLES, MASSGEN_CLI

from massgen_tracing.massgen.testing import MassGenResponder
from massgen_tracing.testing.openai_server import ScriptedOpenAIServer
from massgen_tracing.testing.otlp_receiver import OtlpReceiver, ReceivedSpan

EXAMPLE_ENDPOINT = "http://127.0.0.1:8000/v1"
RUN_TIMEOUT = 240.0  # MassGen alone imports for ~20 s, ~60 s on a loaded 2-CPU machine
_TOOL_LINE = re.compile(r"^\[(?P<agent>[\w-]+)\] 🔧 🔧 Custom Tool: (?P<text>.*)$")
_STEP_MARKS = ("▶ ", "✓ ", "✗ ", "⋯ ", "✎ ", "⏸ ", "· ")
_DELTA = re.compile(r"^(?P<pad>(?:· )*)✎ (?P<label>.+?): \".*$")

# Makes our per-call sink raise on every record, then runs MassGen's CLI as its console script does.
GUARD_BOOT = """
import sys
from massgen_tracing.massgen import _run
def broken(self, record):
    raise RuntimeError("sink is broken")
_run._CallStream.handle = broken
sys.argv = ["massgen", *sys.argv[1:]]
from massgen.cli import cli_main
sys.exit(cli_main())
"""


@dataclass
class DisplayLine:
    at: float  # time.time() when the test read it
    text: str


@dataclass
class MassGenRun:
    """One `massgen --config … "question"` process with its own model server and OTLP receiver."""

    name: str
    example: str
    question: str
    env: dict[str, str]
    guard: bool = False
    framework_delay: float = 1.0  # each framework model reply waits this long: time to see lines arrive
    responder: MassGenResponder = field(init=False)
    server: ScriptedOpenAIServer = field(init=False)
    receiver: OtlpReceiver = field(init=False)
    lines: list[DisplayLine] = field(default_factory=list)
    stderr: str = ""
    returncode: int | None = None
    seconds: float = 0.0

    def start(self, workdir: Path) -> MassGenRun:
        self.responder = MassGenResponder(framework_delay=self.framework_delay)
        self.server = ScriptedOpenAIServer(self.responder).start()
        self.receiver = OtlpReceiver(grpc=False).start()
        config = (EXAMPLES / self.example).read_text()
        config = config.replace(EXAMPLE_ENDPOINT, self.server.base_url)
        config = config.replace("examples/massgen/", f"{EXAMPLES}/")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.yaml").write_text(config)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MASSGEN_", "OTEL_", "LOGFIRE_", "OPENAI_", "PHOENIX_"))}
        env.update({
            "HOME": str(workdir),  # MassGen reads ~/.massgen/.env and writes state; keep it in the test
            "PYTHONUNBUFFERED": "1",  # lines reach us as they are printed: their arrival time matters
            "OPENAI_API_KEY": "sk-test-not-a-real-key",
            # litellm (a MassGen dependency) otherwise fetches its model price list from GitHub at import.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.http_base,
            # Logfire would also push metrics and logs to the endpoint; the receiver takes traces only.
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "MASSGEN_TRACING_STRICT": "0" if self.guard else "1",
            **self.env,
        })
        cli = [sys.executable, "-c", GUARD_BOOT] if self.guard else [str(MASSGEN_CLI)]
        self._t0 = time.monotonic()
        self._proc = subprocess.Popen([*cli, "--config", "config.yaml", self.question], cwd=workdir, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()
        return self

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(DisplayLine(time.time(), line.rstrip("\n")))

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        self.stderr = self._proc.stderr.read()

    def finish(self) -> MassGenRun:
        if self.returncode is None:
            try:
                self.returncode = self._proc.wait(RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self.returncode = self._proc.wait()
            self._out.join(10)
            self._err.join(10)
            self.seconds = time.monotonic() - self._t0
            self.server.stop()
            self.receiver.stop()
        return self

    def describe(self) -> str:
        """For assertion messages: the display and the end of stderr."""
        shown = "\n".join(line.text for line in self.lines)
        return f"{self.name}: exit {self.returncode} after {self.seconds:.0f}s\n--- display\n{shown}\n" \
               f"--- stderr (end)\n{self.stderr[-4000:]}"

    # --- what the display showed ---------------------------------------------------------------------
    def tool_lines(self, agent: str) -> list[DisplayLine]:
        out = []
        for line in self.lines:
            m = _TOOL_LINE.match(line.text)
            if m and m["agent"] == agent:
                out.append(DisplayLine(line.at, m["text"]))
        return out

    def step_lines(self, agent: str) -> list[DisplayLine]:
        """The framework's step lines shown for `agent`, in order."""
        return [line for line in self.tool_lines(agent) if line.text.startswith(_STEP_MARKS)]

    def tool_result_line(self, agent: str, tool: str) -> DisplayLine:
        [line] = [x for x in self.tool_lines(agent) if x.text.startswith(f"Results for Calling custom_tool__{tool}: ")]
        return line

    @property
    def spans(self) -> list[ReceivedSpan]:
        return self.receiver.spans


def comparable(lines: list[DisplayLine]) -> list[str]:
    """Step lines with durations as `<t>` and streamed text as `…`; a model call's text may arrive in
    several delta lines on a slow machine, so consecutive ones count as one."""
    from mg_support import timeless

    out: list[str] = []
    for line in lines:
        text = timeless(line.text)
        m = _DELTA.match(text)
        if m:
            text = f"{m['pad']}✎ {m['label']}: …"
            if out and out[-1] == text:
                continue
        out.append(text)
    return out
