"""`massgen-trace demo`, `replay` and `doctor`, run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from massgen_tracing.testing.otlp_receiver import OtlpReceiver

CLI = [sys.executable, "-m", "massgen_tracing.cli"]

DEMO_STEPS = """\
▶ langgraph run research_assistant "How does live tracing help debugging?"
  ▶ node agent #1
    ▶ llm scripted-gpt
    ⋯ llm scripted-gpt calls search {"query": "live tracing"}
    ✓ llm scripted-gpt in=6 out=1
  ⋯ node agent #1 route → tools
  ✓ node agent #1 in=6 out=1 → tools
  ▶ node tools #2
    ▶ tool search {"query": "live tracing"}
    ✓ tool search
  ✓ node tools #2
  ▶ node agent #3
    ▶ llm scripted-gpt
    ⋯ llm scripted-gpt calls word_count {"text": "spans nest under graph nodes"}
    ✓ llm scripted-gpt in=17 out=1
  ⋯ node agent #3 route → tools
  ✓ node agent #3 in=17 out=1 → tools
  ▶ node tools #4
    ▶ tool word_count {"text": "spans nest under graph nodes"}
    ✓ tool word_count
  ✓ node tools #4
  ▶ node agent #5
    ▶ llm scripted-gpt
    ✓ llm scripted-gpt in=18 out=18
  ⋯ node agent #5 route → writer
  ✓ node agent #5 in=18 out=18 → writer
  ▶ node writer #6
    ▶ llm scripted-gpt
    ✓ llm scripted-gpt in=36 out=14
  ✓ node writer #6 in=36 out=14
✓ langgraph run research_assistant 12 steps in=77 out=34
▶ smolagents run weather_agent "What's the weather in Paris, in Fahrenheit?"
  ▶ planning weather_agent #1/6
    ▶ llm scripted-qwen
    ✓ llm scripted-qwen in=394 out=13
  ✓ planning weather_agent #1/6 in=394 out=13
⋯ smolagents run weather_agent step 1/6
  ▶ action weather_agent #1/6
    ▶ llm scripted-qwen
    ✓ llm scripted-qwen in=588 out=3
  ⋯ action weather_agent #1/6 calls get_weather {"city": "Paris"}
    ▶ tool get_weather {"city": "Paris"}
    ✓ tool get_weather
  ✓ action weather_agent #1/6 in=588 out=3
⋯ smolagents run weather_agent step 2/6
  ▶ action weather_agent #2/6
    ▶ llm scripted-qwen
    ✓ llm scripted-qwen in=605 out=3
  ⋯ action weather_agent #2/6 calls convert_to_fahrenheit {"celsius": 18}
    ▶ tool convert_to_fahrenheit {"celsius": 18}
    ✓ tool convert_to_fahrenheit
  ✓ action weather_agent #2/6 in=605 out=3
⋯ smolagents run weather_agent step 3/6
  ▶ action weather_agent #3/6
    ▶ llm scripted-qwen
    ✓ llm scripted-qwen in=619 out=11
  ⋯ action weather_agent #3/6 calls final_answer {"answer": "Paris: 18°C (64.4°F), light rain — take an umbre…
    ▶ final_answer {"answer": "Paris: 18°C (64.4°F), light rain — take an umbrella."}
    ✓ final_answer
  ✓ action weather_agent #3/6 in=619 out=11
✓ smolagents run weather_agent 11 steps in=2206 out=30
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MASSGEN_TRACING", "PHOENIX_"))}
    env.update(extra)
    return env


def normalise(plain: str) -> str:
    """Drop the clock and durations, and streamed-text lines (how chunks coalesce depends on timing)."""
    out = []
    for line in plain.splitlines():
        if re.match(r"^\d\d:\d\d:\d\d\.\d{3} ", line):
            line = line[13:]
        if re.search(r'⋯ llm \S+ "', line) or line.startswith(("step record", "replayed")):
            continue
        out.append(re.sub(r" \d+(\.\d+)?(ms|s)\b", "", line))
    return "\n".join(out) + "\n"


def test_demo_runs_offline_shows_every_step_and_writes_a_replayable_record(tmp_path):
    with OtlpReceiver(grpc=False) as rx:
        out = subprocess.run([*CLI, "demo", "--fast", "--console", "plain", "--file", "run.jsonl"], cwd=tmp_path,
                             env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.http_base), capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        spans = rx.wait_for(1, timeout=5)
    assert out.stdout == (
        "LangGraph answered: Summary: every LangGraph step is a span, visible live and in Jaeger or Phoenix.\n"
        "smolagents answered: Paris: 18°C (64.4°F), light rain — take an umbrella.\n")
    assert normalise(out.stderr) == DEMO_STEPS
    assert out.stderr.splitlines()[-1] == "step record written to run.jsonl (replay: massgen-trace replay run.jsonl)"
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text(encoding="utf-8").splitlines()]
    step_spans = [s for s in spans if "massgen.step.kind" in s.attributes]
    starts, ends = (sum(r["type"] == t for r in records) for t in ("start", "end"))
    assert len(step_spans) == 25 == starts == ends  # 23 steps and their 2 runs
    # the streamed text of the writer's model call arrives whole, however the deltas were coalesced
    writer_llm = [r for r in records if r["type"] == "start" and r["attributes"]["massgen.step.kind"] == "llm"][3]
    text = "".join(r["attributes"]["massgen.delta.text"] for r in records if r["type"] == "event"
                   and r["span_id"] == writer_llm["span_id"] and r["event"] == "massgen.llm.delta")
    assert text == "Summary: every LangGraph step is a span, visible live and in Jaeger or Phoenix."

    replay = subprocess.run([*CLI, "replay", "--instant", "--console", "plain", "run.jsonl"], cwd=tmp_path,
                            env=clean_env(), capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0
    assert normalise(replay.stderr) == DEMO_STEPS
    summary = subprocess.run([*CLI, "replay", "--summary", "run.jsonl"], cwd=tmp_path, env=clean_env(),
                             capture_output=True, text=True, timeout=60)
    assert re.sub(r" in \d+ms", "", summary.stdout) == (
        "research_assistant [langgraph] ok: 12 steps (node 6, llm 4, tool 2), tokens in=77 out=34\n"
        "weather_agent [smolagents] ok: 11 steps (planning 1, action 3, llm 4, tool 2, final_answer 1), "
        "tokens in=2206 out=30\n")


def test_replay_of_a_missing_file_names_it(tmp_path):
    out = subprocess.run([*CLI, "replay", "nope.jsonl"], cwd=tmp_path, env=clean_env(), capture_output=True,
                         text=True, timeout=60)
    assert (out.returncode, out.stderr) == (2, "massgen-trace replay: no such file: nope.jsonl\n")


def test_doctor_reports_origins_and_whether_the_endpoint_answers(tmp_path):
    with OtlpReceiver(grpc=False) as rx:
        good = subprocess.run([*CLI, "doctor"], env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.http_base,
                                                               MASSGEN_TRACING_CONSOLE="plain"),
                              capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout
    lines = good.stdout.splitlines()
    assert any(re.fullmatch(r"  console +plain +env MASSGEN_TRACING_CONSOLE +\[MASSGEN_TRACING_CONSOLE\]", x)
               for x in lines)
    assert f"  otlp http/protobuf -> {rx.http_endpoint}: answers (HTTP 200)" in lines
    bad = subprocess.run([*CLI, "doctor", "--timeout", "1"],
                         env=clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
                                       MASSGEN_TRACING_QUEUE_SIZE="x"),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert ("  otlp http/protobuf -> http://127.0.0.1:9/v1/traces: does NOT answer ([Errno 111] Connection refused)"
            in bad.stdout.splitlines())
    assert ("  ! massgen-tracing: MASSGEN_TRACING_QUEUE_SIZE='x' is not valid: expected a whole number >= 1; "
            "using 10000." in bad.stdout.splitlines())


def test_bad_arguments_get_one_message_naming_them_and_no_traceback(tmp_path):
    record = tmp_path / "r.jsonl"
    record.write_text("")
    cases = {
        ("replay", str(tmp_path)): f"massgen-trace replay: {tmp_path} is a directory, not a JSONL record\n",
        ("replay", str(record), "--speed", "0"):
            "argument --speed: '0' is not a positive finite number (times the recorded pace)",
        ("replay", str(record), "--speed", "nan"):
            "argument --speed: 'nan' is not a positive finite number (times the recorded pace)",
        ("demo", "--pace", "-1"): "argument --pace: '-1' is not a non-negative finite number (seconds)",
        ("demo", "--console", "fancy"): "argument --console: invalid choice: 'fancy'",
        ("demo", "--file", str(tmp_path)):
            f"massgen-trace demo: --file {tmp_path} is a directory; give a file path for the JSONL record\n",
    }
    for argv, message in cases.items():
        out = subprocess.run([*CLI, *argv], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                             timeout=60)
        assert (argv, out.returncode, message in out.stderr, "Traceback" in out.stderr) == (argv, 2, True, False), (
            out.stderr)
