"""OpenInference's context attributes read in one pass give what OpenInference's own reader gives."""

from __future__ import annotations

from openinference.instrumentation import get_attributes_from_context, using_attributes

from massgen_tracing._internal import oi_context


def test_the_one_pass_reader_is_used_and_gives_the_same_pairs_in_the_same_order() -> None:
    assert oi_context.context_attributes is oi_context._context_attributes  # this OpenInference: ours fits
    assert list(oi_context.context_attributes()) == list(get_attributes_from_context()) == []
    with using_attributes(session_id="s-1", user_id="u-1", metadata={"team": "x"}, tags=["a", "b"],
                          prompt_template="Hi {name}", prompt_template_version="v2",
                          prompt_template_variables={"name": "Ada"}):
        ours = list(oi_context.context_attributes())
        theirs = list(get_attributes_from_context())
    assert ours == theirs
    assert [k for k, _ in ours] == [
        "session.id", "user.id", "metadata", "tag.tags", "llm.prompt_template.template",
        "llm.prompt_template.version", "llm.prompt_template.variables"]
    with using_attributes(user_id="u-2"):
        assert list(oi_context.context_attributes()) == list(get_attributes_from_context()) == [("user.id", "u-2")]
