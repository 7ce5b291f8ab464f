"""Deliberately broken envelopes, described as data and sent through a client.

A :class:`Forgery` names one defect and the knobs that produce it; every knob
left alone gives the honest value, so ``HONEST`` is a correct request built by
the same code (a control for the others). :class:`Forger` sends forgeries and
replays captured sends; each exchange is recorded under the forgery's name.

Bodies may be dicts or lists (encoded compactly, as Go would), ``str`` or
``bytes`` (used as they are), so malformed JSON such as ``{} x`` is still
encrypted correctly.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from obshell_contract.auth import OCS_AGENT_HEADER, OCS_HEADER, aes_secrets
from obshell_contract.crypto import (
    AES_BLOCK,
    AesKeys,
    aes_encrypt,
    b64encode,
    encrypt_header,
    generate_private_key,
)
from obshell_contract.errors import UsageError
from obshell_contract.recording import Captured, Exchange, Signature

if TYPE_CHECKING:
    from obshell_contract.client import ObshellClient, Reply

__all__ = [
    "AGENT_HEADER_INSTEAD",
    "BAD_BODY_LENGTH",
    "BOTH_HEADERS",
    "EMPTY_AUTH",
    "EXPIRED_TS",
    "FAR_FUTURE_TS",
    "FOREIGN_AES_KEY",
    "FOREIGN_RSA_KEY",
    "FORGERIES",
    "GARBAGE_HEADER",
    "HONEST",
    "MISSING_KEYS",
    "NON_NUMERIC_TS",
    "NO_HEADER",
    "NUMERIC_TS",
    "OTHER_URI",
    "PLAIN_BODY",
    "REPLAYED",
    "SHA256_FIELD",
    "SHORT_KEYS_16",
    "SHORT_KEYS_24",
    "TAMPERED_CIPHERTEXT",
    "URI_WITHOUT_QUERY",
    "WRONG_PASSWORD",
    "AuthChoice",
    "Forger",
    "Forgery",
    "encode_body",
    "send_forged",
]

# The forgery name under which replays are recorded.
REPLAYED = "replayed-header"


class AuthChoice(enum.Enum):
    """Which password goes into ``Auth`` (a plain ``str`` sends that string)."""

    MATCHING = "the password that belongs to each header name"
    ROOT = "the root password"
    AGENT = "the agent password"
    WRONG = "a random wrong password"


@dataclass(frozen=True)
class Forgery:
    """One deliberate defect; knobs left at their defaults are honest."""

    name: str
    description: str = ""

    # -- the header
    # None: the client's usual header; (): no header at all.
    header_names: tuple[str, ...] | None = None
    # Sent verbatim instead of an encrypted header.
    header_value: str | None = None
    foreign_rsa_key: bool = False
    auth: AuthChoice | str = AuthChoice.MATCHING
    # Ts = now + ts_offset (the client's lifetime if None), as a string…
    ts_offset: float | None = None
    ts_as_number: bool = False
    # …unless ts_literal is given, which is sent as it is.
    ts_literal: Any = None
    uri: str | None = None
    uri_without_query: bool = False
    # How many bytes of key ‖ IV go into Keys (32 is honest).
    keys_length: int | None = None
    drop_fields: tuple[str, ...] = ()
    extra_fields: Mapping[str, Any] = field(default_factory=dict, hash=False)

    # -- the body
    plain_body: bool = False
    # Sent verbatim as the body, whatever body the caller gave.
    wire_body: bytes | None = None
    tamper_ciphertext: bool = False
    foreign_aes_key: bool = False

    def replace(self, **changes: Any) -> Forgery:
        """A copy with some knobs changed (give it a new ``name`` too)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def uri_of(cls, uri: str) -> Forgery:
        """A valid header whose ``Uri`` names another request-target."""
        return cls("uri-of-another-path", f"Uri says {uri!r}", uri=uri)

    @classmethod
    def keys_of_length(cls, length: int) -> Forgery:
        """``Keys`` holding ``length`` bytes instead of key ‖ IV's 32."""
        return cls(
            f"keys-{length}-bytes", f"Keys of {length} bytes", keys_length=length
        )

    @classmethod
    def headers(
        cls, *names: str, auth: AuthChoice | str = AuthChoice.MATCHING
    ) -> Forgery:
        """Encrypted headers under exactly these names."""
        return cls(
            f"headers-{'+'.join(names)}", "chosen header names", names, auth=auth
        )

    @classmethod
    def with_fields(cls, **fields: Any) -> Forgery:
        """A valid header with extra (or overriding) fields."""
        return cls(
            f"extra-fields-{'+'.join(fields)}",
            "extra header fields",
            extra_fields=fields,
        )


HONEST = Forgery("honest", "a correct request built by the forger, as a control")
NO_HEADER = Forgery(
    "no-header", "no X-OCS header, plain JSON body", header_names=(), plain_body=True
)
PLAIN_BODY = Forgery(
    "plain-body",
    "plain JSON body under a valid header with Keys",
    plain_body=True,
    keys_length=32,
)
GARBAGE_HEADER = Forgery(
    "garbage-header", "X-OCS-Header: Zm9vYmFy", header_value="Zm9vYmFy"
)
FOREIGN_RSA_KEY = Forgery(
    "foreign-rsa-key",
    "header encrypted under a key made on the spot",
    foreign_rsa_key=True,
)
EXPIRED_TS = Forgery("expired-ts", "Ts = now - 60", ts_offset=-60)
NON_NUMERIC_TS = Forgery("non-numeric-ts", 'Ts = "soon"', ts_literal="soon")
NUMERIC_TS = Forgery("numeric-ts", "Ts as a JSON number", ts_as_number=True)
FAR_FUTURE_TS = Forgery("far-future-ts", "Ts = now + 86400", ts_offset=86400)
OTHER_URI = Forgery.uri_of("/api/v1/agent/upgrade/check")
URI_WITHOUT_QUERY = Forgery(
    "uri-without-query", "Uri without the query string", uri_without_query=True
)
MISSING_KEYS = Forgery("missing-keys", "a body but no Keys", drop_fields=("Keys",))
SHORT_KEYS_16 = Forgery.keys_of_length(16)
SHORT_KEYS_24 = Forgery.keys_of_length(24)
BAD_BODY_LENGTH = Forgery(
    "bad-body-length",
    "body QUJD: 3 bytes of base64, not a multiple of 16",
    wire_body=b"QUJD",
)
TAMPERED_CIPHERTEXT = Forgery(
    "tampered-ciphertext",
    "one byte of the AES ciphertext flipped",
    tamper_ciphertext=True,
)
FOREIGN_AES_KEY = Forgery(
    "foreign-aes-key", "body under another AES key than Keys says", foreign_aes_key=True
)
WRONG_PASSWORD = Forgery(
    "wrong-password", "Auth is a wrong password", auth=AuthChoice.WRONG
)
EMPTY_AUTH = Forgery("empty-auth", 'Auth = ""', auth="")
AGENT_HEADER_INSTEAD = Forgery(
    "agent-header-instead",
    "X-OCS-Agent-Header carrying the root password instead of X-OCS-Header",
    header_names=(OCS_AGENT_HEADER,),
    auth=AuthChoice.ROOT,
)
BOTH_HEADERS = Forgery(
    "both-headers",
    "X-OCS-Header and X-OCS-Agent-Header, each with its own password",
    header_names=(OCS_HEADER, OCS_AGENT_HEADER),
)
SHA256_FIELD = Forgery(
    "sha256-field",
    "an extra Sha256 field, which the agent ignores",
    extra_fields={"Sha256": "deadbeef"},
)

FORGERIES: dict[str, Forgery] = {
    forgery.name: forgery
    for forgery in (
        HONEST,
        NO_HEADER,
        PLAIN_BODY,
        GARBAGE_HEADER,
        FOREIGN_RSA_KEY,
        EXPIRED_TS,
        NON_NUMERIC_TS,
        NUMERIC_TS,
        FAR_FUTURE_TS,
        OTHER_URI,
        URI_WITHOUT_QUERY,
        MISSING_KEYS,
        SHORT_KEYS_16,
        SHORT_KEYS_24,
        BAD_BODY_LENGTH,
        TAMPERED_CIPHERTEXT,
        FOREIGN_AES_KEY,
        WRONG_PASSWORD,
        EMPTY_AUTH,
        AGENT_HEADER_INSTEAD,
        BOTH_HEADERS,
        SHA256_FIELD,
    )
}


def encode_body(body: Any) -> bytes | None:
    """Bytes for a body: JSON for dicts and lists, ``str``/``bytes`` as they are."""
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Forger:
    """Sends forgeries and replays through one client (its key, passwords, session)."""

    def __init__(self, client: ObshellClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"Forger({self.client!r})"

    def send(
        self,
        method: str,
        path: str,
        body: Any,
        forgery: Forgery,
        *,
        label: str = "",
    ) -> Reply:
        """Send ``body`` to ``path`` with ``forgery``'s defect; never raises on
        an HTTP error status."""
        plaintext = encode_body(body)
        keys = AesKeys.random()
        body_keys = AesKeys.random() if forgery.foreign_aes_key else keys
        wire = _wire_body(plaintext, body_keys, forgery)

        names = self._header_names(forgery)
        uri = self._uri(path, forgery)
        with_keys = bool(wire) or forgery.keys_length is not None
        headers, fields = self._headers(
            names, uri, keys if with_keys else None, forgery
        )

        signature = Signature(
            header_name=", ".join(names) or None,
            header_fields=fields,
            plaintext=plaintext,
            secrets=aes_secrets(keys, body_keys),
        )
        return self.client.send_raw(
            method,
            path,
            body=wire,
            headers=headers,
            signature=signature,
            label=label or forgery.description,
            forgery=forgery.name,
        )

    def replay(
        self,
        source: Exchange | Captured | Reply,
        path: str,
        *,
        method: str | None = None,
        label: str = "",
    ) -> Reply:
        """Resend a previous send's raw headers and body, verbatim, to ``path``."""
        captured, exchange = _captured_of(source)
        signature = Signature(
            header_name=exchange.header_name if exchange else None,
            header_fields=exchange.header_fields if exchange else None,
            plaintext=_encoded(exchange.plaintext_body) if exchange else None,
        )
        return self.client.send_raw(
            method or captured.method,
            path,
            body=captured.body,
            headers=captured.headers,
            signature=signature,
            label=label or f"replay of the header signed for {captured.uri}",
            forgery=REPLAYED,
        )

    # -- the header -----------------------------------------------------------------

    def _header_names(self, forgery: Forgery) -> tuple[str, ...]:
        if forgery.header_names is None:
            return (self.client.auth.header_name,)
        return forgery.header_names

    def _uri(self, path: str, forgery: Forgery) -> str:
        if forgery.uri is not None:
            return forgery.uri

        # What requests will put on the request line, query included.
        uri = self.client.prepare("GET", path, None).path_url
        return uri.split("?", 1)[0] if forgery.uri_without_query else uri

    def _headers(
        self,
        names: tuple[str, ...],
        uri: str,
        keys: AesKeys | None,
        forgery: Forgery,
    ) -> tuple[dict[str, str], dict[str, Any] | None]:
        if forgery.header_value is not None:
            return dict.fromkeys(names, forgery.header_value), None

        key = self._rsa_key(forgery)
        values: dict[str, str] = {}
        all_fields: dict[str, dict[str, Any]] = {}
        for name in names:
            all_fields[name] = self._fields(name, uri, keys, forgery)
            values[name] = encrypt_header(
                key, all_fields[name], self.client.auth.chunk_size
            )

        # One header: its fields; several: the fields of each, by header name.
        fields = next(iter(all_fields.values())) if len(names) == 1 else all_fields
        return values, fields or None

    def _fields(
        self, name: str, uri: str, keys: AesKeys | None, forgery: Forgery
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "Auth": self._auth(name, forgery),
            "Ts": _ts(forgery, self.client.auth.lifetime),
            "Uri": uri,
        }
        if keys is not None:
            fields["Keys"] = _keys_field(keys, forgery.keys_length)
        fields.update(forgery.extra_fields)
        for dropped in forgery.drop_fields:
            fields.pop(dropped, None)
        return fields

    def _auth(self, header_name: str, forgery: Forgery) -> str:
        auth = self.client.auth
        choice = forgery.auth
        if isinstance(choice, str):
            return choice
        if choice is AuthChoice.ROOT:
            return auth.password
        if choice is AuthChoice.AGENT:
            return auth.agent_password or ""
        if choice is AuthChoice.WRONG:
            return f"wrong-{secrets.token_hex(6)}"
        return auth.password_for(header_name)

    def _rsa_key(self, forgery: Forgery) -> RSAPublicKey:
        agent_key = self.client.auth.public_key_for(self.client.base_url)
        if not forgery.foreign_rsa_key:
            return agent_key
        # Same size as the agent's, so only the key itself is wrong.
        return generate_private_key(agent_key.key_size).public_key()


def send_forged(
    client: ObshellClient,
    method: str,
    path: str,
    body: Any,
    forgery: Forgery,
    *,
    label: str = "",
) -> Reply:
    """``Forger(client).send(...)`` in one call."""
    return Forger(client).send(method, path, body, forgery, label=label)


def _wire_body(
    plaintext: bytes | None, keys: AesKeys, forgery: Forgery
) -> bytes | None:
    if forgery.wire_body is not None:
        return forgery.wire_body
    if plaintext is None:
        return None
    if forgery.plain_body:
        return plaintext

    wire = aes_encrypt(keys, plaintext).encode("ascii")
    return _flip_one_byte(wire) if forgery.tamper_ciphertext else wire


def _flip_one_byte(wire: bytes) -> bytes:
    raw = bytearray(base64.b64decode(wire))

    # With two blocks or more, flip the last byte of the next-to-last block: CBC
    # carries the flip into the padding byte, which can then never be valid.
    # A single block can only be scrambled as a whole.
    index = len(raw) - AES_BLOCK - 1 if len(raw) > AES_BLOCK else 0
    raw[index] ^= 0xFF
    return b64encode(bytes(raw)).encode("ascii")


def _keys_field(keys: AesKeys, length: int | None) -> str:
    material = keys.key + keys.iv
    if length is None:
        return b64encode(material)
    if length < 0:
        raise UsageError(f"keys_length must be >= 0, got {length!r}")
    extra = secrets.token_bytes(max(length - len(material), 0))
    return b64encode((material + extra)[:length])


def _ts(forgery: Forgery, lifetime: float) -> Any:
    if forgery.ts_literal is not None:
        return forgery.ts_literal
    offset = lifetime if forgery.ts_offset is None else forgery.ts_offset
    value = int(time.time() + offset)
    return value if forgery.ts_as_number else str(value)


def _captured_of(
    source: Exchange | Captured | Reply,
) -> tuple[Captured, Exchange | None]:
    if isinstance(source, Captured):
        return source, None
    exchange = source if isinstance(source, Exchange) else source.exchange
    if exchange.captured is None:
        raise UsageError(
            f"exchange {exchange.method} {exchange.uri!r} kept no raw send to replay"
        )
    return exchange.captured, exchange


def _encoded(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8")
