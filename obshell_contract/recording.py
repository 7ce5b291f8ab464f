"""Evidence of HTTP exchanges with an agent: what was meant, sent and answered.

Every :class:`Exchange` is redacted when it is built (passwords, AES keys and
secret-looking members are masked before anything is cut to size, so no prefix
of a secret survives a truncation) and again when it enters a :class:`Recorder`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from obshell_contract.log import logger
from obshell_contract.redaction import Redactor, secret_values

__all__ = [
    "RESPONSE_TEXT_LIMIT",
    "WIRE_EXCERPT_LIMIT",
    "Captured",
    "Exchange",
    "Recorder",
    "Signature",
    "build_exchange",
    "exchange_from_failure",
    "exchange_from_response",
    "now_iso",
]

RESPONSE_TEXT_LIMIT = 16_384
WIRE_EXCERPT_LIMIT = 200


def now_iso() -> str:
    """The current local time, ISO 8601 with offset, to the millisecond."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Signature:
    """What a request meant before encryption: header fields and plaintext body.

    ``secrets`` holds this request's own key material (base64 and hex forms of
    its AES key and IV) so that the record of the exchange can mask it.
    """

    header_name: str | None = None
    header_fields: Mapping[str, Any] | None = None
    plaintext: bytes | None = None
    secrets: tuple[str, ...] = ()
    started_at: str = field(default_factory=now_iso)

    def __repr__(self) -> str:
        # Header fields carry the password and the AES key: show their names only.
        names = sorted(self.header_fields or ())
        size = None if self.plaintext is None else len(self.plaintext)
        return (
            f"Signature(header_name={self.header_name!r}, fields={names!r}, "
            f"plaintext_bytes={size!r})"
        )


@dataclass(frozen=True)
class Captured:
    """The raw obshell headers and body of a send, kept to replay them verbatim.

    Header values are RSA ciphertext and the body is AES ciphertext (or what a
    forgery chose to send), so nothing here reads as a secret; it is kept out
    of reports all the same (see :meth:`Exchange.to_dict`).
    """

    method: str
    uri: str
    headers: Mapping[str, str]
    body: bytes | None

    def __repr__(self) -> str:
        size = None if self.body is None else len(self.body)
        return (
            f"Captured({self.method} {self.uri!r}, headers={sorted(self.headers)!r}, "
            f"body_bytes={size!r})"
        )


@dataclass
class Exchange:
    """One request and its answer, as evidence for a report.

    ``status`` is 0 when no answer came (``transport_error`` then says why).
    ``captured`` is for :func:`obshell_contract.forgery.Forger.replay` only and
    never appears in :meth:`to_dict`.
    """

    method: str
    url: str
    uri: str
    header_name: str | None
    header_fields: dict[str, Any] | None
    plaintext_body: str | None
    wire_body_size: int
    wire_body_excerpt: str
    status: int
    response_headers: dict[str, str]
    response_text: str
    elapsed_ms: float
    started_at: str
    label: str = ""
    forgery: str | None = None
    transport_error: str | None = None
    captured: Captured | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy, without the raw ``captured`` send."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "captured"
        }

    def redacted(self, redactor: Redactor) -> Exchange:
        """A copy with every free-text field passed through ``redactor``."""
        return dataclasses.replace(
            self,
            url=redactor.text(self.url),
            uri=redactor.text(self.uri),
            header_fields=redactor.json(self.header_fields),
            plaintext_body=_maybe(redactor.body, self.plaintext_body),
            wire_body_excerpt=redactor.body(self.wire_body_excerpt),
            response_headers=redactor.json(self.response_headers),
            response_text=redactor.body(self.response_text),
            label=redactor.text(self.label),
            transport_error=_maybe(redactor.text, self.transport_error),
        )


class Recorder:
    """A thread-safe, ordered list of exchanges.

    Its :attr:`redactor` is applied to everything added; clients register their
    passwords with it, so a recorder shared by several clients masks them all.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor if redactor is not None else Redactor()
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []

    def __repr__(self) -> str:
        return f"Recorder(<{len(self)} exchanges>)"

    def add(self, exchange: Exchange) -> Exchange:
        """Redact and store ``exchange``; return the stored copy."""
        stored = exchange.redacted(self.redactor)
        with self._lock:
            self._exchanges.append(stored)
        return stored

    def clear(self) -> None:
        with self._lock:
            self._exchanges.clear()

    @property
    def exchanges(self) -> list[Exchange]:
        """A snapshot, oldest first."""
        with self._lock:
            return list(self._exchanges)

    @property
    def last(self) -> Exchange | None:
        """The newest exchange, or None if nothing was recorded yet."""
        with self._lock:
            return self._exchanges[-1] if self._exchanges else None

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.exchanges)

    def __len__(self) -> int:
        with self._lock:
            return len(self._exchanges)

    def to_list(self) -> list[dict[str, Any]]:
        return [exchange.to_dict() for exchange in self.exchanges]


def build_exchange(
    *,
    method: str,
    url: str,
    uri: str,
    redactor: Redactor,
    signature: Signature | None = None,
    wire_body: bytes | str | None = None,
    status: int = 0,
    response_headers: Mapping[str, str] | None = None,
    response_text: str = "",
    elapsed_ms: float = 0.0,
    label: str = "",
    forgery: str | None = None,
    transport_error: str | None = None,
    captured: Captured | None = None,
) -> Exchange:
    """Build a redacted :class:`Exchange` and log it in one line."""
    signature = signature or Signature()
    full = Exchange(
        method=method,
        url=url,
        uri=uri,
        header_name=signature.header_name,
        header_fields=_copy(signature.header_fields),
        plaintext_body=_as_text(signature.plaintext),
        wire_body_size=_size(wire_body),
        wire_body_excerpt=_as_text(wire_body) or "",
        status=status,
        response_headers=dict(response_headers or {}),
        response_text=response_text,
        elapsed_ms=round(elapsed_ms, 3),
        started_at=signature.started_at,
        label=label,
        forgery=forgery,
        transport_error=transport_error,
        captured=captured,
    )

    # Values under secret keys are secrets too, wherever they show up again.
    harvested = secret_values(signature.header_fields) | secret_values(
        signature.plaintext or b""
    )

    # Redact first and cut afterwards: a cut could split a secret in two.
    safe = full.redacted(redactor.with_secrets([*signature.secrets, *harvested]))
    exchange = dataclasses.replace(
        safe,
        wire_body_excerpt=_cap(safe.wire_body_excerpt, WIRE_EXCERPT_LIMIT),
        response_text=_cap(safe.response_text, RESPONSE_TEXT_LIMIT),
    )
    _log(exchange)
    return exchange


def exchange_from_response(
    response: requests.Response,
    signature: Signature | None,
    *,
    redactor: Redactor,
    label: str = "",
    forgery: str | None = None,
    elapsed_ms: float | None = None,
) -> Exchange:
    """The evidence of a request that got an HTTP answer."""
    request = response.request
    if elapsed_ms is None:
        elapsed_ms = response.elapsed.total_seconds() * 1000
    return build_exchange(
        method=str(request.method),
        url=str(request.url),
        uri=request.path_url,
        redactor=redactor,
        signature=signature,
        wire_body=request.body,
        status=response.status_code,
        response_headers=response.headers,
        response_text=response_text(response),
        elapsed_ms=elapsed_ms,
        label=label,
        forgery=forgery,
        captured=capture(request),
    )


def exchange_from_failure(
    request: requests.PreparedRequest,
    signature: Signature | None,
    error: str,
    *,
    redactor: Redactor,
    elapsed_ms: float,
    label: str = "",
    forgery: str | None = None,
) -> Exchange:
    """The evidence of a request that got no answer (refused, timed out)."""
    return build_exchange(
        method=str(request.method),
        url=str(request.url),
        uri=request.path_url,
        redactor=redactor,
        signature=signature,
        wire_body=request.body,
        elapsed_ms=elapsed_ms,
        label=label,
        forgery=forgery,
        transport_error=error,
        captured=capture(request),
    )


def capture(request: requests.PreparedRequest) -> Captured:
    """Keep the obshell headers and the body of a prepared request as sent."""
    headers = {
        name: value
        for name, value in request.headers.items()
        if name.lower().startswith("x-ocs-") or name.lower() == "content-type"
    }
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Captured(str(request.method), request.path_url, headers, body)


def response_text(response: requests.Response) -> str:
    """The body as text; JSON is UTF-8, so no charset guessing."""
    return response.content.decode("utf-8", errors="replace")


def _log(exchange: Exchange) -> None:
    outcome = exchange.status or exchange.transport_error
    forged = f" [forgery: {exchange.forgery}]" if exchange.forgery else ""
    logger.info(
        "%s %s -> %s (%.1f ms)%s",
        exchange.method,
        exchange.uri,
        outcome,
        exchange.elapsed_ms,
        forged,
    )


def _copy(fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if fields is None else dict(fields)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _as_text(data: bytes | str | None) -> str | None:
    if data is None or isinstance(data, str):
        return data
    return data.decode("utf-8", errors="backslashreplace")


def _size(data: bytes | str | None) -> int:
    if isinstance(data, str):
        return len(data.encode("utf-8"))
    return len(data or b"")


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


def _maybe(redact: Callable[[str], str], value: str | None) -> str | None:
    return None if value is None else redact(value)
