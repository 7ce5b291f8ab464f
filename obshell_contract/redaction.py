"""Masking of secrets (passwords, AES keys) in anything that is recorded or reported.

Two rules apply together:

- every occurrence of a known secret is replaced, in its plain form and in the
  escaped forms a JSON encoder may give it (Python's and Go's), because an agent
  may echo a value back inside an error message;
- values stored under keys that look secret (``password``, ``Auth``, ``Keys``…)
  are masked whatever they are, because a forged or unknown password is not in
  the list of known secrets.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "Redactor", "is_secret_key", "secret_values"]

REDACTED = "[redacted]"

# Exact names, compared case-insensitively: obshell's header fields and the
# parameter names its API and SDK use for passwords.
_SECRET_KEYS = frozenset(
    {"auth", "keys", "password", "passwd", "agent_password", "rootpassword"}
)

# Harvested values shorter than this are masked by key only: replacing every "a"
# of a record because some forged body said {"password": "a"} would ruin it.
_MIN_HARVESTED = 4

# A JSON member whose key looks secret and whose value is a string, a number or a
# literal; used on text that may not parse (forged bodies such as ``{} x``).
_SECRET_MEMBER = re.compile(
    r'("(?P<key>[^"\\]{1,64})"\s*:\s*)'
    r'(?P<value>"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false)'
)


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (case-insensitive)."""
    lowered = key.lower()
    return lowered in _SECRET_KEYS or "password" in lowered or "passwd" in lowered


def secret_values(data: Any) -> set[str]:
    """Values stored under secret-looking keys in a JSON value or JSON-ish text.

    They become secrets of their own, so that an agent echoing them inside a
    message (where no key marks them) cannot make them appear in a record.
    """
    if isinstance(data, (bytes, str)):
        return _values_in_text(
            data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        )

    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            if is_secret_key(str(key)) and isinstance(value, str):
                found.add(value)
            elif isinstance(value, (Mapping, list, tuple)):
                found |= secret_values(value)
    elif isinstance(data, (list, tuple)):
        for item in data:
            if isinstance(item, (Mapping, list, tuple)):
                found |= secret_values(item)
    return {value for value in found if len(value) >= _MIN_HARVESTED}


def _values_in_text(text: str) -> set[str]:
    try:
        return secret_values(json.loads(text))
    except ValueError:
        pass

    found: set[str] = set()
    for match in _SECRET_MEMBER.finditer(text):
        value = match["value"]
        if is_secret_key(match["key"]) and value.startswith('"'):
            try:
                found.add(json.loads(value))
            except ValueError:
                continue
    return {value for value in found if len(value) >= _MIN_HARVESTED}


class Redactor:
    """Replaces known secrets and secret-looking values by ``[redacted]``.

    Thread-safe: secrets may be added while other threads redact.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.extend(secrets)

    def __repr__(self) -> str:
        # The count only: the secrets themselves must never reach a log.
        return f"Redactor(<{len(self._secrets)} secrets>)"

    def add(self, secret: str | None) -> None:
        """Remember one more secret; empty strings and None are ignored."""
        self.extend([] if secret is None else [secret])

    def extend(self, secrets: Iterable[str | None]) -> None:
        new = {s for s in secrets if s}
        with self._lock:
            if new - self._secrets:
                self._secrets |= new
                self._pattern = _compile(self._secrets)

    def with_secrets(self, secrets: Iterable[str | None]) -> Redactor:
        """A new redactor knowing this one's secrets plus ``secrets``."""
        with self._lock:
            known = set(self._secrets)
        return Redactor([*known, *(s for s in secrets if s)])

    def text(self, s: str) -> str:
        """``s`` with every known secret, plain or JSON-escaped, replaced."""
        pattern = self._pattern
        if pattern is None or not s:
            return s
        return pattern.sub(REDACTED, s)

    def body(self, s: str) -> str:
        """Like :meth:`text`, and also mask secret-looking JSON members in place.

        Works on text that is not valid JSON, and keeps its formatting, so that
        recorded bodies show exactly what was sent apart from the secrets.
        """
        return _SECRET_MEMBER.sub(self._mask_member, self.text(s))

    def json(self, obj: Any) -> Any:
        """A copy of a JSON value with secrets replaced and secret keys masked."""
        return _walk(obj, self.text)

    def _mask_member(self, match: re.Match[str]) -> str:
        if not is_secret_key(match["key"]) or match["value"] in ('""', f'"{REDACTED}"'):
            return match[0]
        return f'{match[1]}"{REDACTED}"'


def _walk(obj: Any, text: Callable[[str], str]) -> Any:
    if isinstance(obj, str):
        return text(obj)
    if isinstance(obj, dict):
        return {text(str(k)): _masked(str(k), v, text) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_walk(item, text) for item in obj]
    return obj


def _masked(key: str, value: Any, text: Callable[[str], str]) -> Any:
    # An empty value hides nothing, and showing it documents e.g. an empty Auth.
    if is_secret_key(key) and value not in (None, ""):
        return REDACTED
    return _walk(value, text)


def _compile(secrets: set[str]) -> re.Pattern[str]:
    forms = {form for secret in secrets for form in _escaped_forms(secret)}

    # REDACTED first, so that redacting twice changes nothing; then longest
    # first, so that a secret containing another is replaced whole.
    ordered = sorted(forms, key=len, reverse=True)
    return re.compile("|".join(re.escape(f) for f in [REDACTED, *ordered]))


def _escaped_forms(secret: str) -> set[str]:
    ascii_form = json.dumps(secret)[1:-1]
    utf8_form = json.dumps(secret, ensure_ascii=False)[1:-1]

    # Go's encoding/json also escapes <, > and & (and writes non-ASCII raw).
    go_form = (
        utf8_form.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return {secret, ascii_form, utf8_form, go_form} - {""}
