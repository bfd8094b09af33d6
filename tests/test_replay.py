"""Replaying a recorded JSONL file into a sink at recorded pace, and the per-run summary."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from massgen_tracing._internal.console import PlainConsoleSink
from massgen_tracing._internal.records import StepRecord
from massgen_tracing._internal.replay import load, replay, summarize
from massgen_tracing._internal.sinks import CallbackSink

DATA = Path(__file__).parent / "data"
LANGGRAPH = DATA / "langgraph_run.jsonl"
SMOLAGENTS = DATA / "smolagents_run.jsonl"
TORN = DATA / "torn_last_line.jsonl"  # the smolagents run cut inside its 6th line, mid-character

# Gaps between the smolagents fixture's records (ms): 1, 1399, 100, 0, 50, 50, 50, 50, 10, 10, 10.
SMOLAGENTS_GAPS = [0.001, 1.399, 0.1, 0.05, 0.05, 0.05, 0.05, 0.01, 0.01, 0.01]


class Collect:
    def __init__(self) -> None:
        self.records: list[StepRecord] = []
        self.sink = CallbackSink(self.records.append)


def test_replay_sleeps_the_recorded_gaps_at_speed_one() -> None:
    sleeps: list[float] = []
    got = Collect()
    assert replay(SMOLAGENTS, got.sink, sleep=sleeps.append) == 12
    assert sleeps == SMOLAGENTS_GAPS
    assert [r.to_dict() for r in got.records] == [r.to_dict() for r in load(SMOLAGENTS)]


def test_replay_at_speed_two_sleeps_half_as_long() -> None:
    sleeps: list[float] = []
    replay(SMOLAGENTS, Collect().sink, speed=2, sleep=sleeps.append)
    assert sleeps == [0.0005, 0.6995, 0.05, 0.025, 0.025, 0.025, 0.025, 0.005, 0.005, 0.005]


def test_replay_with_no_speed_feeds_everything_without_sleeping() -> None:
    sleeps: list[float] = []
    got = Collect()
    assert replay(LANGGRAPH, got.sink, speed=None, sleep=sleeps.append) == 16
    assert sleeps == []
    assert len(got.records) == 16


def test_replay_never_sleeps_backwards_when_interleaved_records_are_out_of_time_order() -> None:
    recs = load(SMOLAGENTS)[:3]
    # The 3rd record happened before the 2nd (another thread's record arrived later).
    recs[2].time_ns = recs[1].time_ns - 500_000
    stream = io.StringIO("".join(r.to_json() + "\n" for r in [*recs, load(SMOLAGENTS)[3]]))
    sleeps: list[float] = []
    assert replay(stream, Collect().sink, sleep=sleeps.append) == 4
    assert sleeps == [0.001, 1.499]


def test_replay_skips_a_torn_last_line_from_a_path_or_a_stream() -> None:
    assert replay(TORN, Collect().sink, speed=None) == 5
    with open(TORN, encoding="utf-8", errors="replace") as f:
        assert replay(f, Collect().sink, speed=None) == 5


def test_replay_rejects_a_speed_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="replay speed must be a positive finite number or None, not 0"):
        replay(SMOLAGENTS, Collect().sink, speed=0)


def test_replay_into_the_plain_sink_reproduces_the_live_output() -> None:
    buf = io.StringIO()
    replay(SMOLAGENTS, PlainConsoleSink(buf, show_time=False), speed=None)
    assert buf.getvalue() == (
        '▶ smolagents run my_agent "2+2?"\n'
        "  ▶ planning my_agent #1\n"
        "  ✓ planning my_agent #1 1.4s\n"
        "⋯ smolagents run my_agent step 1/3\n"
        "  ▶ action my_agent #1/3\n"
        "  ⋯ action my_agent #1/3 step 1/3 calling calc\n"
        '    ▶ tool calc {"expr": "2+2"}\n'
        "    ✓ tool calc 50ms\n"
        '    ▶ final_answer {"answer": 4}\n'
        "    ✓ final_answer 10ms\n"
        "  ✓ action my_agent #1/3 220ms\n"
        "✓ smolagents run my_agent 1.7s 4 steps in=100 out=20\n"
    )


def test_summary_gives_one_line_per_run_in_start_order() -> None:
    later = load(SMOLAGENTS)
    for r in later:
        r.time_ns += 1_000_000
        r.start_time_ns = r.start_time_ns and r.start_time_ns + 1_000_000
    assert summarize(later + load(LANGGRAPH)) == (
        "my_graph [langgraph] error in 80ms: 4 steps (node 2, llm 1, tool 1), tokens in=12 out=8, "
        "error ValueError: boom\n"
        "my_agent [smolagents] ok in 1.7s: 4 steps (planning 1, action 1, tool 1, final_answer 1), "
        "tokens in=100 out=20"
    )


def test_summary_orders_runs_that_start_together_by_their_first_record() -> None:
    lines = summarize(load(SMOLAGENTS) + load(LANGGRAPH)).splitlines()
    assert [line.split()[0] for line in lines] == ["my_agent", "my_graph"]


def test_summary_of_a_recording_cut_short_says_unfinished() -> None:
    summary = summarize(load(TORN))
    assert summary == "my_agent [smolagents] unfinished after 1.5s: 2 steps (planning 1, action 1)"


def test_summary_of_an_empty_recording_says_so() -> None:
    assert summarize([]) == "no runs recorded"


def test_lines_that_are_json_but_no_record_are_skipped_like_torn_ones() -> None:
    good = LANGGRAPH.read_text(encoding="utf-8").splitlines()
    odd = ["[1, 2]", '"text"', "null", "123", '{"v": 1, "type": "start", "time_ns": 1e400, "trace_id": "t", '
           '"span_id": "s"}']
    stream = io.StringIO("\n".join([good[0], *odd, *good[1:]]) + "\n")
    assert [r.to_dict() for r in load(stream)] == [r.to_dict() for r in load(LANGGRAPH)]


def test_idle_time_between_sessions_appended_to_one_file_is_replayed_as_two_seconds() -> None:
    first, second = load(SMOLAGENTS)[:2]
    second.time_ns = first.time_ns + 360 * 1_000_000_000  # the next program run, six minutes later
    stream = io.StringIO(first.to_json() + "\n" + second.to_json() + "\n")
    sleeps: list[float] = []
    assert replay(stream, Collect().sink, sleep=sleeps.append) == 2
    assert sleeps == [2.0]
