"""Masking of passwords and keys in text, JSON values and JSON-ish bodies."""

from __future__ import annotations

import json
import string
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obshell_contract.redaction import REDACTED, Redactor, is_secret_key


def test_every_occurrence_of_a_secret_is_replaced() -> None:
    redactor = Redactor(["hunter2"])

    assert redactor.text("a hunter2 b hunter2") == f"a {REDACTED} b {REDACTED}"


def test_text_without_secrets_is_unchanged() -> None:
    assert Redactor(["hunter2"]).text("nothing to hide") == "nothing to hide"


def test_empty_secrets_are_ignored() -> None:
    redactor = Redactor(["", "x-secret"])
    redactor.add("")
    redactor.add(None)

    assert redactor.text("plain text") == "plain text"
    assert redactor.text("a x-secret") == f"a {REDACTED}"


@pytest.mark.parametrize(
    ("secret", "escaped"),
    [
        ('pa"ss', 'pa\\"ss'),
        ("back\\slash", "back\\\\slash"),
        ("pässwörd", "p\\u00e4ssw\\u00f6rd"),
        ("a<b&c>d", "a\\u003cb\\u0026c\\u003ed"),
        ("tab\there", "tab\\there"),
    ],
    ids=["quote", "backslash", "non-ascii", "go-html-escapes", "control"],
)
def test_json_escaped_forms_are_replaced(secret: str, escaped: str) -> None:
    redactor = Redactor([secret])

    assert redactor.text(f'{{"message":"{escaped}"}}') == f'{{"message":"{REDACTED}"}}'
    assert secret not in redactor.text(json.dumps({"m": secret}))
    assert secret not in redactor.text(json.dumps({"m": secret}, ensure_ascii=False))


def test_a_longer_secret_is_replaced_whole() -> None:
    redactor = Redactor(["abc", "abcdef"])

    assert redactor.text("xabcdefx abcx") == f"x{REDACTED}x {REDACTED}x"


def test_redacting_twice_changes_nothing() -> None:
    # "red" occurs inside the marker itself.
    redactor = Redactor(["red", "act"])
    once = redactor.text("red act")

    assert once == f"{REDACTED} {REDACTED}"
    assert redactor.text(once) == once


@pytest.mark.parametrize(
    "key",
    ["Auth", "auth", "KEYS", "password", "Password", "passwd", "agent_password",
     "rootPassword", "newPassword", "root_passwd"],
)  # fmt: skip
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["supportedAuth", "public_key", "Keys2", "Uri", "Ts", "session"]
)
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_json_masks_secret_keys_recursively() -> None:
    value = {
        "Auth": "whatever",
        "nested": [{"rootPassword": "x", "ok": "keep"}, {"KEYS": 12}],
        "supportedAuth": ["v2"],
    }

    assert Redactor().json(value) == {
        "Auth": REDACTED,
        "nested": [{"rootPassword": REDACTED, "ok": "keep"}, {"KEYS": REDACTED}],
        "supportedAuth": ["v2"],
    }


def test_json_keeps_empty_values_of_secret_keys() -> None:
    # An empty Auth hides nothing, and a forged empty Auth must stay visible.
    assert Redactor().json({"Auth": "", "Keys": None}) == {"Auth": "", "Keys": None}


def test_json_replaces_known_secrets_in_any_string() -> None:
    redactor = Redactor(["hunter2"])

    assert redactor.json({"message": "wrong: hunter2", "n": 1}) == {
        "message": f"wrong: {REDACTED}",
        "n": 1,
    }


def test_json_does_not_change_its_argument() -> None:
    value = {"Auth": "x", "list": ["hunter2"]}
    Redactor(["hunter2"]).json(value)

    assert value == {"Auth": "x", "list": ["hunter2"]}


def test_body_masks_secret_members_in_text_that_is_not_json() -> None:
    body = '{"version": "4.3.1.0", "password":"unknown-pw", "Auth": 12} x'

    assert Redactor().body(body) == (
        f'{{"version": "4.3.1.0", "password":"{REDACTED}", "Auth": "{REDACTED}"}} x'
    )


def test_body_keeps_empty_members_and_formatting() -> None:
    body = '{ "Auth" : "" ,\n "release": "1.el7" }'

    assert Redactor().body(body) == body


def test_repr_shows_no_secret() -> None:
    redactor = Redactor(["hunter2", "s3cr3t"])

    assert "hunter2" not in repr(redactor)
    assert "s3cr3t" not in repr(redactor)
    assert "2 secrets" in repr(redactor)


def test_with_secrets_returns_a_new_redactor() -> None:
    base = Redactor(["one"])
    more = base.with_secrets(["two", None])

    assert more.text("one two") == f"{REDACTED} {REDACTED}"
    assert base.text("one two") == f"{REDACTED} two"


def test_secrets_can_be_added_while_other_threads_redact() -> None:
    redactor = Redactor()
    secrets = [f"secret-{i:03d}" for i in range(200)]
    text = " ".join(secrets)
    errors: list[str] = []

    def redact() -> None:
        for _ in range(50):
            result = redactor.text(text)
            if REDACTED not in result and result != text:
                errors.append(result)

    reader = threading.Thread(target=redact)
    reader.start()
    for secret in secrets:
        redactor.add(secret)
    reader.join()

    assert errors == []
    assert redactor.text(text) == " ".join([REDACTED] * 200)


# Secrets drawn without the marker's characters, so that no occurrence can be
# made of a marker and its neighbours.
_marker_free = "".join(
    c
    for c in string.ascii_letters + string.digits + "#$%&*+-./:;=?@^_~ "
    if c not in REDACTED
)


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(
        st.text(_marker_free, min_size=1, max_size=12), min_size=1, max_size=4
    ),
    pieces=st.lists(st.text(_marker_free + '"\\{}[]', max_size=20), max_size=6),
)
def test_no_secret_survives_redaction(secrets: list[str], pieces: list[str]) -> None:
    text = "".join(p + s for p, s in zip(pieces, secrets * 3, strict=False)) + "".join(
        secrets
    )
    redacted = Redactor(secrets).text(text)

    for secret in secrets:
        assert secret not in redacted
        assert secret not in Redactor(secrets).text(json.dumps(text))
