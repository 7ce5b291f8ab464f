"""A tiny real HTTP server that decrypts and records whatever obshell clients send.

Its decryption is written here with ``cryptography`` primitives on purpose, not
with :mod:`obshell_contract.crypto`: the client's output is checked by a second,
independent reading of the wire format. Only key *generation* is shared (for
512-bit keys, which ``cryptography`` refuses to make).

It serves ``GET /api/v1/secret`` like an agent, answers everything else with a
fixed envelope, and answers 401 ``DecryptFailed`` when it cannot decrypt a header
or when told to (:meth:`RecordingServer.fail_next`). :meth:`rotate_key` swaps its
key, as an upgrade from an agent before 4.4.2 does.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from obshell_contract.crypto import generate_private_key

__all__ = [
    "DECRYPT_FAILED_ENVELOPE",
    "LEGACY_DECRYPT_FAILED_ENVELOPE",
    "OK_ENVELOPE",
    "Received",
    "RecordingServer",
    "independent_decrypt_body",
    "independent_decrypt_header",
]

OK_ENVELOPE: dict[str, Any] = {
    "successful": True,
    "timestamp": "2026-05-08T17:06:47.123456789+08:00",
    "duration": 1,
    "status": 200,
    "traceId": "0123456789abcdef",
    "data": {"recorded": True},
}
DECRYPT_FAILED_ENVELOPE: dict[str, Any] = {
    "successful": False,
    "timestamp": "2026-05-08T17:06:47.123456789+08:00",
    "duration": 0,
    "status": 401,
    "traceId": "",
    "error": {
        "code": 1,
        "errCode": "Security.Authentication.Header.DecryptFailed",
        "message": "Decrypt http header failed: crypto/rsa: decryption error",
    },
}
# Before 4.3.1 an agent had no errCode; the SDK keys on code 1 for this case.
LEGACY_DECRYPT_FAILED_ENVELOPE: dict[str, Any] = {
    **DECRYPT_FAILED_ENVELOPE,
    "error": {"code": 1, "message": "Decrypt http header failed"},
}

_OCS_HEADERS = ("X-OCS-Agent-Header", "X-OCS-Header")

Answer = tuple[int, dict[str, Any] | str]


@dataclass
class Received:
    """One request as it arrived, and what the independent decryption made of it."""

    method: str
    target: str
    headers: dict[str, str]
    raw_body: bytes
    header_name: str | None = None
    header_value: str | None = None
    header_fields: dict[str, Any] | None = None
    # Every X-OCS header found, by name: its fields, or None if it did not decrypt.
    ocs_headers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    header_chunk_sizes: list[int] = field(default_factory=list)
    header_error: str | None = None
    keys: bytes | None = None
    body: bytes | None = None
    body_error: str | None = None
    key_generation: int = 0

    def header_field(self, name: str) -> Any:
        """A header field, matched case-insensitively as Go's decoder does."""
        for key, value in (self.header_fields or {}).items():
            if key.lower() == name.lower():
                return value
        raise KeyError(name)

    @property
    def body_json(self) -> Any:
        assert self.body is not None, f"no decrypted body ({self.body_error})"
        return json.loads(self.body)


def independent_decrypt_header(
    key: rsa.RSAPrivateKey, value: str
) -> tuple[dict[str, Any], list[int]]:
    """Decrypt an ``X-OCS-Header`` value; return its fields and chunk sizes."""
    raw = base64.b64decode(value, validate=True)
    width = key.key_size // 8
    if not raw or len(raw) % width:
        raise ValueError(f"{len(raw)} bytes is not a multiple of {width}")

    chunks = [
        key.decrypt(raw[start : start + width], padding.PKCS1v15())
        for start in range(0, len(raw), width)
    ]
    fields = json.loads(b"".join(chunks))
    if not isinstance(fields, dict):
        raise ValueError(f"header JSON is {type(fields).__name__}, not an object")
    return fields, [len(chunk) for chunk in chunks]


def independent_decrypt_body(keys: bytes, body: bytes) -> bytes:
    """AES-128-CBC/PKCS#7 decrypt a base64 body with ``Keys`` = key ‖ IV."""
    if len(keys) != 32:
        raise ValueError(f"Keys has {len(keys)} bytes, expected 32")
    raw = base64.b64decode(body, validate=True)
    decryptor = Cipher(algorithms.AES(keys[:16]), modes.CBC(keys[16:])).decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


Responder = Callable[[Received], Answer | None]


class RecordingServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1:0 with its own RSA key."""

    def __init__(self, key_bits: int = 1024) -> None:
        self.key_bits = key_bits
        self.private_key = generate_private_key(key_bits)
        self.key_generation = 1
        self.answer_status = 200
        # A dict is sent as compact JSON, a str as it is.
        self.answer: dict[str, Any] | str = OK_ENVELOPE
        # Decides the answer instead of the fields above; None drops the
        # connection without an answer, as an agent that restarts does.
        self.responder: Responder | None = None
        # Answer with Auth, Keys and the body in an error message, as a careless
        # agent might: the recorder must still show none of them.
        self.echo_secrets = False
        self.secret_fetches = 0

        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._failures_left = 0
        self._legacy_failures = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- knobs ---------------------------------------------------------------------

    def fail_next(self, count: int, *, legacy: bool = False) -> None:
        """Answer the next ``count`` non-secret requests with 401 DecryptFailed."""
        with self._lock:
            self._failures_left = count
            self._legacy_failures = legacy

    def rotate_key(self, bits: int | None = None) -> None:
        with self._lock:
            self.private_key = generate_private_key(bits or self.key_bits)
            self.key_generation += 1

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self.secret_fetches = 0

    # -- what arrived ----------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """Every request but the public-key fetches, oldest first."""
        with self._lock:
            return list(self._received)

    @property
    def last(self) -> Received:
        received = self.received
        assert received, "the server received no request"
        return received[-1]

    def public_key_b64(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        )
        return base64.b64encode(der).decode("ascii")

    # -- handling (called from the server's threads) ---------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Answer | None:
        if method == "GET" and target == "/api/v1/secret":
            return 200, self._secret_envelope()

        with self._lock:
            key, generation = self.private_key, self.key_generation
        received = _decrypt(key, Received(method, target, headers, body))
        received.key_generation = generation
        with self._lock:
            self._received.append(received)
            forced = self._failures_left > 0
            self._failures_left = max(self._failures_left - 1, 0)
            legacy = self._legacy_failures
        return self._answer(received, forced, legacy)

    def _answer(self, received: Received, forced: bool, legacy: bool) -> Answer | None:
        if self.responder is not None:
            return self.responder(received)
        if forced or received.header_error is not None:
            return (
                401,
                LEGACY_DECRYPT_FAILED_ENVELOPE if legacy else DECRYPT_FAILED_ENVELOPE,
            )
        if self.echo_secrets:
            return 401, _echo_envelope(received)
        return self.answer_status, self.answer

    def _secret_envelope(self) -> dict[str, Any]:
        with self._lock:
            self.secret_fetches += 1
        data = {
            "ip": "127.0.0.1",
            "port": self.port,
            "public_key": self.public_key_b64(),
        }
        return {**OK_ENVELOPE, "data": data}


def _decrypt(key: rsa.RSAPrivateKey, received: Received) -> Received:
    for name in _OCS_HEADERS:
        value = received.headers.get(name.lower())
        if value:
            received.ocs_headers[name] = _fields_or_none(key, value)
            # The agent header wins when both are there, as on the agent.
            if received.header_value is None:
                received.header_name, received.header_value = name, value
    if received.header_value is None:
        return received

    try:
        fields, sizes = independent_decrypt_header(key, received.header_value)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        received.header_error = f"{type(exc).__name__}: {exc}"
        return received
    received.header_fields, received.header_chunk_sizes = fields, sizes
    _decrypt_body(received)
    return received


def _fields_or_none(key: rsa.RSAPrivateKey, value: str) -> dict[str, Any] | None:
    try:
        return independent_decrypt_header(key, value)[0]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _decrypt_body(received: Received) -> None:
    try:
        keys = received.header_field("Keys")
    except KeyError:
        keys = None
    try:
        received.keys = None if keys is None else base64.b64decode(keys, validate=True)
    except (binascii.Error, TypeError) as exc:
        received.body_error = f"Keys: {exc}"
        return

    if not received.raw_body:
        return
    if received.keys is None:
        received.body_error = "a body but no Keys"
        return
    try:
        received.body = independent_decrypt_body(received.keys, received.raw_body)
    except (ValueError, binascii.Error) as exc:
        received.body_error = f"{type(exc).__name__}: {exc}"


def _echo_envelope(received: Received) -> dict[str, Any]:
    fields = received.header_fields or {}
    body = (received.body or b"").decode("utf-8", errors="replace")
    message = f"Auth {fields.get('Auth')!s} with Keys {fields.get('Keys')!s}: {body}"
    return {
        **DECRYPT_FAILED_ENVELOPE,
        "error": {"code": 10008, "errCode": "Test.Echo", "message": message},
    }


def _handler_for(server: RecordingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One buffered write per answer and no Nagle delay: otherwise every
        # keep-alive request waits ~40 ms for a delayed ACK.
        wbufsize = -1
        disable_nagle_algorithm = True
        # Idle keep-alive connections must not hold a thread forever.
        timeout = 5

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}

            answer = server.handle(self.command, self.path, headers, body)
            if answer is None:
                self.close_connection = True
                return

            status, envelope = answer
            if isinstance(envelope, str):
                payload = envelope.encode()
            else:
                payload = json.dumps(envelope, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            # Quiet: the tests read what the server recorded instead.
            return

    return Handler
