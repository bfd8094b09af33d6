"""OpenInference's end-of-run span update (`_update_span`), run by its own code with two cheaper parts.

`_update_span` is ~40 % of OpenInference's per-span cost. We keep its body and every extractor it calls
(so the attributes stay exactly OpenInference's, whatever its version adds), and replace only:

* `_flatten`: OpenInference's is a recursive generator wrapped by a second generator at every level;
  ours builds the same (key, value) pairs, in the same order, with plain recursion. A failure stops
  the level it happens in and is logged, as there.
* the sixteen attribute extractors it chains, each wrapped in `stop_on_exception` (another generator
  around it): `_update_span` gets the extractors themselves, and `_flatten_each` catches a failing
  one's exception as its wrapper did (logged, and the other extractors go on).
* the span it writes to: `OpenInferenceSpan.set_attributes` masks and sets one attribute at a time,
  each a proxy call and an SDK lock; `_BulkSpan` masks each the same way (`masker`, below) and hands
  them to the SDK span in one call.
* `TraceConfig.mask` itself, when no masking switch is on (the default): it tests some twenty switches
  for every attribute before returning the value unchanged, ~110 bytecodes an attribute and a tenth of
  a step span's cost. `masker` returns a shortcut that gives the same answer.

`tests/langgraph/test_oi_end.py` checks, on every run of several real graphs, that the result equals
OpenInference's, with content captured and with its masking switches on.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import Enum
from typing import Any

from openinference.instrumentation import TraceConfig
from openinference.instrumentation.langchain import _tracer as oi
from openinference.semconv.trace import ImageAttributes, SpanAttributes

from massgen_tracing._internal.oi_context import context_attributes
from massgen_tracing._internal.rebind import with_globals

try:  # attributes an OpenInferenceSpan keeps aside and writes at end()
    from openinference.instrumentation._spans import _IMPORTANT_ATTRIBUTES  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover  # moved in a future openinference-instrumentation
    _IMPORTANT_ATTRIBUTES = [SpanAttributes.OPENINFERENCE_SPAN_KIND]

logger = logging.getLogger(oi.__name__)  # where OpenInference's own `_flatten` logs its failures
_IMPORTANT = frozenset(_IMPORTANT_ATTRIBUTES)

# `TraceConfig`'s fields as of openinference-instrumentation 0.1.72, each read for what `mask` does with
# it: with every `hide_*` switch off, `mask` changes only image URLs (`base64_image_max_length`,
# `blob_uploader`); `enable_genai_semconv` is read elsewhere. A config with any other field (a newer
# version's) gets its own `mask`, whatever that field does.
_MASK_FIELDS = frozenset({
    "hide_llm_invocation_parameters", "hide_llm_tools", "hide_inputs", "hide_outputs", "hide_input_messages",
    "hide_output_messages", "hide_input_images", "hide_input_text", "hide_output_text",
    "hide_embedding_vectors", "hide_embeddings_vectors", "hide_embeddings_text", "hide_prompts",
    "hide_choices", "hide_retrieval_documents", "enable_genai_semconv", "base64_image_max_length",
    "blob_uploader",
})
_IMAGE_URL = ImageAttributes.IMAGE_URL
_last_masker: tuple[object, Callable[[str, Any], Any]] = (object(), TraceConfig().mask)  # (config, its masker)


def masker(config: Any) -> Callable[[str, Any], Any]:
    """`config.mask`, or when none of its `hide_*` switches is on, a function giving the same answers:
    the value (called, if callable) for every key but an image URL's, which `config.mask` still decides."""
    global _last_masker
    last, mask = _last_masker  # one tuple: safe to read and replace from any thread
    if config is last:
        return mask
    mask = config.mask
    try:
        names = {f.name for f in dataclasses.fields(config)}
        if (type(config) is TraceConfig and names <= _MASK_FIELDS
                and not any(getattr(config, n) for n in names if n.startswith("hide_"))):
            full = mask

            def mask(key: str, value: Any) -> Any:
                if key.endswith(_IMAGE_URL):
                    return full(key, value)
                return value() if callable(value) else value
    except Exception:  # noqa: BLE001  # not a config we know: its own mask
        mask = config.mask
    _last_masker = (config, mask)
    return mask


def set_important(span: Any, key: str, value: Any) -> None:
    """`span.set_attribute(key, value)` for a key an `OpenInferenceSpan` keeps aside and writes at its end
    (`_IMPORTANT`): masked and kept as its `set_attribute` does, without the proxy call."""
    important = getattr(span, "_self_important_attributes", None)
    config = getattr(span, "_self_config", None)
    if type(important) is not dict or config is None:  # not the OpenInferenceSpan we know
        span.set_attribute(key, value)
    elif (kept := masker(config)(key, value)) is not None:
        important[key] = kept


def _flatten_into(out: list[tuple[str, Any]], prefix: str | None, iterables: Iterable[Iterable[Any]]) -> None:
    """Append to `out` the flattened pairs of each of `iterables` in turn, as OpenInference's `_flatten`
    over their `chain` would give them (one level: a mapping value recurses).

    Each iterable may be an extractor taken out of its `stop_on_exception` wrapper (`_unwrapped`). A
    failure of such an extractor itself ends only that extractor, as its wrapper's try did, and the next
    goes on; a failure in flattening what one gave, or of any other iterable, stops this level, as it
    stops OpenInference's `_flatten` at that level. Logged once either way, as there.
    """
    for items in iterables:
        body = False  # in our own code, not the extractor's
        try:
            for item in items:  # most extractors give nothing
                body = True
                key, value = item
                if value is not None:
                    name = key if prefix is None else f"{prefix}.{key}"
                    if isinstance(value, Mapping):
                        _flatten_into(out, name, (value.items(),))
                    elif isinstance(value, list) and any(isinstance(x, Mapping) for x in value):
                        for index, sub_mapping in enumerate(value):
                            _flatten_into(out, f"{name}.{index}", (sub_mapping.items(),))
                    else:
                        out.append((name, value.value if isinstance(value, Enum) else value))
                body = False
        except Exception:
            logger.exception("Failed to get attribute.")
            if body or getattr(items, "gi_code", None) not in _UNWRAPPED_CODES:
                break


def _flatten(key_values: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    _flatten_into(out, None, (key_values,))
    return out


def _each(*iterables: Iterable[Any]) -> tuple[Iterable[Any], ...]:
    """Stands in for `chain` in `_update_span`: `_flatten_each` takes the extractors one by one."""
    return iterables


def _flatten_each(iterables: tuple[Iterable[Any], ...]) -> list[tuple[str, Any]]:
    """Stands in for `_flatten` in `_update_span`, given `_each(...)` for `chain(...)`."""
    out: list[tuple[str, Any]] = []
    _flatten_into(out, None, iterables)
    return out


# OpenInference wraps each attribute extractor in `stop_on_exception`: a second generator around it,
# timing it and catching its failures. `_update_span` calls sixteen of them per span (~400 bytecodes);
# `_flatten_each` catches their failures the same way, so `_update_span` gets the extractors themselves.
_UNWRAPPED_CODES: set[Any] = set()


def _unwrapped(function: Any) -> Any:
    """The generator function inside a `stop_on_exception` wrapper; None for anything else."""
    if _STOP_CODE is None or not inspect.isgeneratorfunction(function):
        return None
    code = getattr(function, "__code__", None)
    if code is None or code is not _STOP_CODE or function.__closure__ is None:
        return None
    cells = dict(zip(code.co_freevars, function.__closure__, strict=True))
    inner = cells["wrapped"].cell_contents if "wrapped" in cells else None
    return inner if inspect.isgeneratorfunction(inner) else None


def _probe() -> Iterator[Any]:  # what is wrapped once to learn the wrapper's code
    yield from ()


_STOP = getattr(oi, "stop_on_exception", None)
_STOP_CODE = _STOP(_probe).__code__ if _STOP is not None else None  # every wrapper it makes runs this code


class _BulkSpan:
    """What `_update_span` writes to: forwards to an `OpenInferenceSpan`, setting attributes in one call."""

    __slots__ = ("_span", "_status")

    def __init__(self, span: Any, status: bool = True):
        self._span = span
        self._status = status

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        if self._status:
            self._span.set_status(*args, **kwargs)

    def set_attribute(self, key: str, value: Any) -> None:
        if key in _IMPORTANT:
            set_important(self._span, key, value)
        else:
            self._span.set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        span = self._span
        config = getattr(span, "_self_config", None)
        sdk_span = getattr(span, "__wrapped__", None)
        if config is None or sdk_span is None or not span.is_recording():
            span.set_attributes(attributes)  # not the usual OpenInferenceSpan: its own, per-attribute path
            return
        mask = masker(config)
        masked = {}
        for key, value in attributes.items():
            if type(value) is not str and isinstance(value, str):
                # langchain-core's `message.text` is a callable str subclass, and `mask` calls callables:
                # the deprecated `.text()` form, whose warning then names this file. Same text, no call.
                value = str.__str__(value)
            elif key == SpanAttributes.SESSION_ID and type(value) is not str:
                # The checkpointer's thread id as it was given (`uuid.uuid4()`, 42): a string, as the
                # step's start wrote it. The SDK would warn about a UUID on stderr for every run.
                value = str(value)
            if key in _IMPORTANT:  # bookkept by the wrapper (re-applied at end), as its set_attribute does
                set_important(span, key, value)
            elif (kept := mask(key, value)) is not None:
                masked[key] = kept
        if masked:
            sdk_span.set_attributes(masked)


def _rebuilt(function: Any) -> Callable[[Any, Any], None] | None:
    inner = getattr(function, "__wrapped__", function)  # under OpenInference's `audit_timing` decorator
    code = getattr(inner, "__code__", None)
    if code is not None and "chain" in code.co_names and not getattr(oi, "_AUDIT_TIMING", True):
        # Without the wrappers (unless their timing printout was asked for).
        extractors = {name: raw for name in code.co_names
                      if name != "_flatten" and (raw := _unwrapped(inner.__globals__.get(name))) is not None}
        if extractors:
            fast = with_globals(inner, {"_flatten": _flatten_each, "chain": _each, **_context(code), **extractors})
            if fast is not None:
                _UNWRAPPED_CODES.update(raw.__code__ for raw in extractors.values())
                return fast
    return with_globals(inner, {"_flatten": _flatten, **_context(code)})


def _context(code: Any) -> dict[str, Any]:
    """OpenInference's context attributes read in one pass (`oi_context`), where `_update_span` reads them."""
    names = getattr(code, "co_names", ())
    return {"get_attributes_from_context": context_attributes} if "get_attributes_from_context" in names else {}


_FAST = _rebuilt(oi._update_span)


def update_span(span: Any, run: Any, *, status: bool = True) -> None:
    """`openinference...langchain._tracer._update_span(span, run)`, same attributes, fewer steps.

    `status=False` leaves the status alone: OpenInference sets ERROR for any `run.error`, but a step the
    consumer abandoned stays UNSET, and the SDK ignores a later attempt to set UNSET.
    """
    if _FAST is None:  # an OpenInference whose `_update_span` we do not recognise: use it as it is
        target: Any = span if status else _BulkSpan(span, status=False)  # a span to `_update_span`
        oi._update_span(target, run)
    else:
        _FAST(_BulkSpan(span, status), run)
