"""Secret shapes are masked; ordinary text is left alone; user patterns extend the defaults."""

from __future__ import annotations

import json

import pytest

from massgen_tracing._internal.redact import Redactor

SECRETS = [
    ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "openai_key"),
    ("sk-ant-api03-Zx9yW8vU7tS6rQ5pO4nM3lK2", "anthropic_key"),
    ("hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "huggingface_token"),
    ("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "google_api_key"),
    ("AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
    ("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "github_token"),
    ("xoxb-1234567890-abcdefghij", "slack_token"),
    ("gsk_aBcDeFgHiJkLmNoPqRsTuVwX", "groq_key"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXZhbHVl", "jwt"),
    ("xai-aBcDeFgHiJkLmNoPqRsTuVwX", "xai_key"),
    ("ASIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_token"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "private_key"),
]


@pytest.mark.parametrize(("secret", "name"), SECRETS)
def test_each_known_secret_shape_is_masked_with_its_name(secret, name):
    assert Redactor().redact(f"before {secret} after") == f"before [REDACTED:{name}] after"


@pytest.mark.parametrize(("secret", "name"), [(s, n) for s, n in SECRETS if n != "private_key"])
@pytest.mark.parametrize("escape", ["\\n", "\\t", "\\r", "\\u00e9", "\\x1b"])
def test_a_key_right_after_an_escape_sequence_is_masked(secret, name, escape):
    # json.dumps() and repr() write a newline before a key as the two characters `\` `n`: the key then
    # follows a letter, where a word boundary finds nothing (smolagents' "Observation:\n<tool output>").
    assert Redactor().redact(f"Observation:{escape}{secret} after") == f"Observation:{escape}[REDACTED:{name}] after"


def test_keys_in_serialised_text_are_masked_as_json_and_repr_write_them():
    key = "sk-ant-api03-Zq7SECRETantAAAAbbbbCCCCddddEEEEffff0123456789"
    r = Redactor()
    assert json.dumps({"out": f"ANTHROPIC_API_KEY\n{key}"}) == '{"out": "ANTHROPIC_API_KEY\\n' + key + '"}'
    assert r.redact(json.dumps({"out": f"ANTHROPIC_API_KEY\n{key}"})) == (
        '{"out": "ANTHROPIC_API_KEY\\n[REDACTED:anthropic_key]"}')
    assert r.redact(repr(["# keys", f"\t{key}"])) == "['# keys', '\\t[REDACTED:anthropic_key]']"
    assert r.redact(json.dumps(f"é{key}")) == '"\\u00e9[REDACTED:anthropic_key]"'
    # A key glued to a word is still not one (as before): only an escape's letter counts as a start.
    glued = "disk-ant-api03-Zq7SECRETantAAAAbbbbCCCCddddEEEE"
    assert r.redact(f"path {glued}") == f"path {glued}"


def test_bearer_tokens_and_secret_assignments_keep_their_label_but_lose_the_value():
    r = Redactor()
    assert r.redact("Authorization: Bearer abc.def-123_456789") == "Authorization: Bearer [REDACTED:bearer_token]"
    assert r.redact('{"api_key": "s3cr3t-value", "model": "gpt"}') == (
        '{"api_key": "[REDACTED:secret_assignment]", "model": "gpt"}')
    assert r.redact("password=hunter2hunter2 ok") == "password=[REDACTED:secret_assignment] ok"


def test_ordinary_text_passes_through_unchanged_and_as_the_same_object():
    r = Redactor()
    text = "The skeleton key is in the task description; token counts are 12 and 40."
    assert r.redact(text) is text
    assert r.value(("a", "b")) == ("a", "b")


def test_user_patterns_extend_the_defaults():
    r = Redactor([r"ACME-\d{6}"])
    assert r.redact("id ACME-123456 and sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t") == (
        "id [REDACTED] and [REDACTED:openai_key]")


def test_defaults_can_be_switched_off_leaving_only_user_patterns():
    r = Redactor([r"ACME-\d{6}"], defaults=False)
    assert r.redact("ACME-123456 sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t") == (
        "[REDACTED] sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t")


def test_the_prefilter_never_lets_a_secret_through_that_the_full_scan_would_mask():
    """The fast path skips text the prefilters find nothing in; compare it with every shape's own scan."""
    import random

    fast, full = Redactor(), Redactor()
    full._fast = False  # the per-shape literal tests and regexes only
    words = ["the", "weather", "Paris", '{"run_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}', "langgraph_step",
             "Asia", "skeleton", "hf", "eye", "J", "-", "_", "token", "Key", "passed", "secretary", "bear",
             # fragments of the prefilter's scans, alone and split: "sk" + "-" must still be found joined
             "task", "sk", "gh", "github", "pat", "xox", "xai", "AKI", "AIz", "ey", "api", "key", "auth", "access",
             "Bearer", "PRIVATE", "KEY", "input_tokens", "total_tokens"]
    secrets = [s for s, _ in SECRETS] + ["Bearer abcdefghijklmnop", "BEARER abcdefghijklmnop"]
    for name in ("api_key", "API-KEY", "ApiKey", "secret_key", "Client_Secret", "access_token", "Access-Token",
                 "ACCESSTOKEN", "auth_token", "Auth-Token", "authtoken", "password", "PASSWD"):
        secrets += [f"{name}=hunter2hunter2", f'"{name}": "hunter2hunter2"']
    rng = random.Random(7)
    for _ in range(3000):
        parts = [rng.choice(words) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.6:
            parts.insert(rng.randint(0, len(parts)), rng.choice(secrets))
        text = " ".join(parts)
        assert fast.redact(text) == full.redact(text), text
    for secret in secrets:
        assert fast.redact(f"x {secret} y") != f"x {secret} y", secret


def test_sequences_are_masked_element_by_element_and_keep_their_type():
    r = Redactor()
    secret = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"
    assert r.value(("short", f"key {secret}", 3)) == ("short", "key [REDACTED:openai_key]", 3)
    assert r.value(["a", f"key {secret}"]) == ["a", "key [REDACTED:openai_key]"]
    clean = ("nothing secret in here at all", "x")
    assert r.value(clean) is clean


def test_text_seen_before_is_masked_the_same_and_unchanged_text_comes_back_as_the_callers_object():
    r = Redactor()
    secret = "key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t here"
    first = r.redact(secret)
    again = r.redact("".join(list(secret)))  # equal content, another object: answered from the cache
    assert first == again == "key [REDACTED:openai_key] here"
    plain = "an ordinary sentence with nothing to hide"
    assert r.redact(plain) is plain
    other = "".join(list(plain))
    assert other is not plain
    assert r.redact(other) is other  # not the object remembered from the first call


def test_remembered_results_stay_within_their_bounds():
    from massgen_tracing._internal import redact

    r = Redactor()
    for i in range(redact._CACHE_ENTRIES * 3):
        r.redact(f"ordinary text number {i}")
    assert len(r._cache) <= redact._CACHE_ENTRIES
    big = "x" * (redact._CACHE_ITEM_CHARS // 2)
    for i in range(redact._CACHE_CHARS // len(big) * 3):
        r.redact(f"{i} {big}")
    assert r._cached_chars <= redact._CACHE_CHARS + len(big) + 20
    huge = "y" * (redact._CACHE_ITEM_CHARS + 1)
    r.redact(huge)
    assert huge not in r._cache


def test_a_str_subclass_is_scanned_every_time_and_never_remembered():
    class Odd(str):
        pass

    r = Redactor()
    text = Odd("token sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t")
    assert r.redact(text) == "token [REDACTED:openai_key]"
    assert r._cache == {}
