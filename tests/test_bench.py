"""The benchmark script still runs end to end (structure only: timings are never asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["untraced", "openinference alone", "massgen-tracing, no sinks", "massgen-tracing (default: console)",
           "massgen-tracing, live terminal view", "massgen-tracing + JSONL", "massgen-tracing + 50 ms/record sink"]


def test_the_quick_benchmark_measures_every_configuration_of_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""  # nothing leaks from the traced runs (the slow sink's teardown is expected)
    results = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(results) == ["latency", "latency_busy", "machine", "per_span", "workloads"]
    assert sorted(results["per_span"]["us_per_span"]) == ["live", "live+redact", "sdk only"]
    assert results["latency"]["records"] == 1000  # --quick: 500 spans, a start and an event each
    assert results["latency_busy"]["records"] == 40 * 16  # --quick: 40 ReAct runs, 11 starts and 5 events each
    assert [w["workload"] for w in results["workloads"]] == [
        "langgraph: ReAct loop (2 tool calls)", "langgraph: Send fan-out (8 branches)",
        "langgraph: ReAct loop, model replies in 20 ms", "smolagents: ToolCallingAgent (2 tool calls)",
        "smolagents: CodeAgent (2 code steps, 2 tool calls)"]
    for w in results["workloads"]:
        assert list(w["ms_per_run"]) == CONFIGS
        assert all(v > 0 for v in w["ms_per_run"].values())
        assert w["ratio_vs_openinference"]["openinference alone"] == 1.0
        assert w["ratio_vs_openinference_paired"]["openinference alone"] == 1.0
        assert list(w["ratio_vs_openinference_paired"]) == CONFIGS
        assert list(w["cpu_ms_per_run"]) == list(w["context_switches_per_run"]) == CONFIGS
        assert all(v > 0 for v in w["cpu_ms_per_run"].values())
        assert w["slow_sink_vs_default_paired"] > 0
        assert w["runs_per_round"] == 3  # --quick: no minimum round length
        each = w["ms_per_run_each_round"]
        assert list(each) == CONFIGS and all(len(v) == 3 for v in each.values())
        assert {k: min(v) for k, v in each.items()} == w["ms_per_run"]
        ci = w["ratio_vs_openinference_paired_ci95"]
        assert list(ci) == CONFIGS and ci["openinference alone"] == [1.0, 1.0]
        assert all(lo <= w["ratio_vs_openinference_paired"][k] <= hi for k, (lo, hi) in ci.items())
        lo, hi = w["slow_sink_vs_default_paired_ci95"]
        assert lo <= w["slow_sink_vs_default_paired"] <= hi
    printed = [json.loads(line)["workload"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert printed == [w["workload"] for w in results["workloads"]]


def test_configurations_run_in_an_order_rotated_every_round() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run
    finally:
        sys.path.remove(str(ROOT / "bench"))
    order: list[str] = []

    def setup(label: str) -> tuple[object, object]:
        return (lambda: order.append(label)), (lambda _handle: None)

    labels = ["untraced", "openinference alone", "ours"]
    result = run.compare("w", lambda: (lambda: None), {k: setup(k) for k in labels}, rounds=4, reps=1)
    assert order == [*labels, *labels[1:], labels[0], labels[2], *labels[:2], *labels]
    assert list(result["ms_per_run_each_round"]) == labels


def test_the_median_interval_is_a_percentile_bootstrap_with_a_fixed_seed() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run
    finally:
        sys.path.remove(str(ROOT / "bench"))
    values = [1.0 + 0.01 * i for i in range(21)]  # median 1.10
    lo, hi = run.median_ci95(values)
    assert 1.0 < lo < 1.10 < hi < 1.20
    assert run.median_ci95(values) == [lo, hi]  # the same figures, the same interval
    assert run.median_ci95([0.97] * 9) == [0.97, 0.97]
