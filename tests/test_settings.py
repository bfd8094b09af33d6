"""Settings resolve argument → environment → default, and bad values say exactly what is wrong."""

from __future__ import annotations

import re

import pytest

from massgen_tracing._internal import settings as st


def test_every_setting_defaults_when_nothing_is_set():
    s = st.resolve(environ={})
    assert {k: v.origin for k, v in s.values.items()} == {x.name: "default" for x in st.SETTINGS}
    assert s["console"] == "auto" and s["redact"] is True and s["frameworks"] == ("langgraph", "smolagents")


def test_arguments_beat_environment_which_beats_defaults():
    env = {"MASSGEN_TRACING_CONSOLE": "plain", "MASSGEN_TRACING_QUEUE_SIZE": "50"}
    s = st.resolve({"console": "off"}, environ=env)
    assert (s["console"], s.values["console"].origin) == ("off", "argument")
    assert (s["queue_size"], s.values["queue_size"].origin) == (50, "env MASSGEN_TRACING_QUEUE_SIZE")


def test_the_specific_otlp_variable_wins_over_the_generic_and_phoenix_ones():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2/x",
           "PHOENIX_COLLECTOR_ENDPOINT": "http://c:3"}
    s = st.resolve(environ=env)
    assert (s["endpoint"], s.values["endpoint"].origin) == ("http://b:2/x", "env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("MASSGEN_TRACING_CONSOLE", "fancy",
         "massgen-tracing: MASSGEN_TRACING_CONSOLE='fancy' is not valid: expected one of auto, live, plain, off; "
         "using auto."),
        ("MASSGEN_TRACING_QUEUE_SIZE", "-3",
         "massgen-tracing: MASSGEN_TRACING_QUEUE_SIZE='-3' is not valid: expected a whole number >= 1; using 10000."),
        ("OTEL_TRACES_EXPORTER", "zipkin",
         "massgen-tracing: OTEL_TRACES_EXPORTER='zipkin' is not valid: expected a comma-separated list of otlp, "
         "console, none; using unset."),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json",
         "massgen-tracing: OTEL_EXPORTER_OTLP_PROTOCOL='http/json' is not valid: expected one of http/protobuf, "
         "grpc; using http/protobuf."),
        ("MASSGEN_TRACING_REDACT", "maybe",
         "massgen-tracing: MASSGEN_TRACING_REDACT='maybe' is not valid: expected one of 1, true, yes, on, 0, false, "
         "no, off; using true."),
        # Not a budget at all: nan compared false with everything and lost records, inf overflowed at exit.
        ("MASSGEN_TRACING_SHUTDOWN_TIMEOUT", "nan",
         "massgen-tracing: MASSGEN_TRACING_SHUTDOWN_TIMEOUT='nan' is not valid: expected a finite number >= 0; "
         "using 0.5."),
        ("MASSGEN_TRACING_SHUTDOWN_TIMEOUT", "inf",
         "massgen-tracing: MASSGEN_TRACING_SHUTDOWN_TIMEOUT='inf' is not valid: expected a finite number >= 0; "
         "using 0.5."),
        ("MASSGEN_TRACING_REDACT_PATTERNS", "([",
         "massgen-tracing: MASSGEN_TRACING_REDACT_PATTERNS='([' is not valid: expected a valid regular expression; "
         "using unset."),
    ],
)
def test_a_bad_value_prints_one_line_naming_variable_value_allowed_and_fallback(var, value, message, capsys):
    s = st.resolve(environ={var: value})
    assert capsys.readouterr().err == message + "\n"
    assert s.problems == [message]
    name = next(x.name for x in st.SETTINGS if var in x.env)
    assert s.values[name].origin == f"default ({var} invalid)"


def test_unknown_configure_keywords_are_refused_with_the_allowed_names():
    with pytest.raises(TypeError, match=re.escape("configure() got unknown setting(s) ['consol']")):
        st.resolve({"consol": "live"}, environ={})


def test_every_generated_handbook_table_is_up_to_date():
    from pathlib import Path

    from massgen_tracing._internal import docgen

    docs = Path(__file__).resolve().parent.parent / "docs"
    stale = [f for f, _ in docgen.BLOCKS.values()
             if docgen.render((docs / f).read_text(encoding="utf-8")) != (docs / f).read_text(encoding="utf-8")]
    assert stale == [], "regenerate: python -m massgen_tracing._internal.docgen"


def test_with_no_stderr_at_all_a_bad_value_says_nothing_rather_than_write_into_stdout(monkeypatch, capsys):
    # `2>&-` makes sys.stderr None, and print(file=None) writes to stdout: the program's own output.
    import sys

    monkeypatch.setattr(sys, "stderr", None)
    s = st.resolve(environ={"MASSGEN_TRACING_CONSOLE": "fancy"})
    assert capsys.readouterr().out == ""
    assert s.values["console"].value == "auto"
