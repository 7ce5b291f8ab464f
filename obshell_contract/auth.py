"""obshell's hybrid-encryption authentication as a ``requests`` auth.

Each request gets an ``X-OCS-Header`` (root password) or ``X-OCS-Agent-Header``
(agent password): the JSON fields ``Auth``, ``Ts``, ``Uri`` and ``Keys``,
RSA-encrypted under the agent's public key. A non-empty body is replaced by its
AES-128-CBC ciphertext under fresh keys, which travel in ``Keys``.

The agent's key can change under a client (an upgrade from before 4.4.2
replaces a 512-bit key by a 1024-bit one), so a 401 ``DecryptFailed`` answer
makes the auth fetch the key again and send the request once more.
"""

from __future__ import annotations

import base64
import threading
import time
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from obshell_contract.crypto import (
    AesKeys,
    aes_encrypt,
    encrypt_header,
    expiry,
    load_public_key,
)
from obshell_contract.errors import ContractError, TransportError, UsageError
from obshell_contract.log import logger
from obshell_contract.recording import (
    Exchange,
    Recorder,
    Signature,
    exchange_from_response,
    response_text,
)
from obshell_contract.redaction import Redactor

__all__ = [
    "DECRYPT_FAILED",
    "OCS_AGENT_HEADER",
    "OCS_HEADER",
    "SECRET_PATH",
    "ObshellAuth",
    "aes_secrets",
    "exchange_of",
    "is_decrypt_failed",
    "origin_of",
    "signature_of",
]

OCS_HEADER = "X-OCS-Header"
OCS_AGENT_HEADER = "X-OCS-Agent-Header"
SECRET_PATH = "/api/v1/secret"
DECRYPT_FAILED = "Security.Authentication.Header.DecryptFailed"

# Agents before 4.3.1 had no errCode; since 4.4.2 DecryptFailed also says code 1.
_LEGACY_DECRYPT_FAILED_CODE = 1

_EXCHANGE_ATTR = "_obshell_exchange"
_SIGNATURE_ATTR = "_obshell_signature"


class ObshellAuth(requests.auth.AuthBase):
    """Encrypts requests the way obshell's v2 clients do.

    The public key is fetched lazily, once per agent origin, with a plain
    ``GET /api/v1/secret``; ``public_key`` pins a key instead (until the agent
    says it cannot decrypt). Every exchange, including the key fetch and a
    resend, is recorded to ``recorder`` if one is given.

    A redirect followed by ``requests`` would reuse the header signed for the
    first URI; :class:`~obshell_contract.client.ObshellClient` follows none.
    """

    def __init__(
        self,
        password: str = "",
        *,
        agent_password: str | None = None,
        lifetime: float = 10.0,
        chunk_size: int | None = None,
        recorder: Recorder | None = None,
        public_key: RSAPublicKey | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.recorder = recorder
        self.redactor = recorder.redactor if recorder is not None else Redactor()
        self.password = password
        self.agent_password = agent_password
        self.lifetime = lifetime
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.key_fetches = 0
        self.resends = 0

        self._pinned_key = public_key
        self._keys: dict[str, RSAPublicKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # Never the passwords: reprs end up in tracebacks and reports.
        return (
            f"ObshellAuth(header={self.header_name!r}, lifetime={self.lifetime!r}, "
            f"chunk_size={self.chunk_size!r})"
        )

    @property
    def password(self) -> str:
        """The root@sys password, sent in ``X-OCS-Header``."""
        return self._password

    @password.setter
    def password(self, value: str) -> None:
        # Registered on every change, so a new password is masked in records too.
        self.redactor.add(value)
        self._password = value

    @property
    def agent_password(self) -> str | None:
        """The agent password; when set, requests use ``X-OCS-Agent-Header``."""
        return self._agent_password

    @agent_password.setter
    def agent_password(self, value: str | None) -> None:
        self.redactor.add(value)
        self._agent_password = value

    @property
    def header_name(self) -> str:
        """``X-OCS-Agent-Header`` with an agent password, else ``X-OCS-Header``."""
        return OCS_HEADER if self.agent_password is None else OCS_AGENT_HEADER

    def password_for(self, header_name: str) -> str:
        """The password this auth sends under ``header_name``."""
        if header_name.lower() == OCS_AGENT_HEADER.lower():
            return self.agent_password or ""
        return self.password

    # -- the requests hook ---------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return self.apply(r)

    def apply(
        self, r: requests.PreparedRequest, *, label: str = ""
    ) -> requests.PreparedRequest:
        """Encrypt ``r`` in place and arm the DecryptFailed resend.

        ``label`` says what the test meant by this request; it goes to the record.
        """
        plaintext = _body_bytes(r.body)
        self.sign(r, plaintext)

        r.register_hook(
            "response", partial(self._on_response, plaintext=plaintext, label=label)
        )
        return r

    def sign(self, r: requests.PreparedRequest, plaintext: bytes | None) -> Signature:
        """Set the encrypted header and body of ``r`` from ``plaintext``."""
        keys = AesKeys.random() if plaintext else None
        fields = self.header_fields(r.path_url, keys)
        key = self.public_key_for(str(r.url))

        r.headers[self.header_name] = encrypt_header(key, fields, self.chunk_size)
        if plaintext and keys is not None:
            r.body = aes_encrypt(keys, plaintext).encode("ascii")
            # The Go client says JSON although the body is base64 text.
            r.headers["Content-Type"] = "application/json"
        else:
            r.body = None
        r.prepare_content_length(r.body)

        signature = Signature(self.header_name, fields, plaintext, aes_secrets(keys))
        setattr(r, _SIGNATURE_ATTR, signature)
        return signature

    def header_fields(self, uri: str, keys: AesKeys | None) -> dict[str, Any]:
        """The header JSON for a request to ``uri`` (path plus query, as sent)."""
        fields: dict[str, Any] = {
            "Auth": self.password_for(self.header_name),
            "Ts": expiry(self.lifetime),
            "Uri": uri,
        }
        if keys is not None:
            fields["Keys"] = keys.wire
        return fields

    def _on_response(
        self,
        response: requests.Response,
        *args: Any,
        plaintext: bytes | None,
        label: str,
        **kwargs: Any,
    ) -> requests.Response:
        self._record(response, signature_of(response.request), label)
        if not is_decrypt_failed(response):
            return response
        return self._resend(response, plaintext, label, **kwargs)

    def _resend(
        self,
        response: requests.Response,
        plaintext: bytes | None,
        label: str,
        **kwargs: Any,
    ) -> requests.Response:
        # Like requests' digest auth: release the connection, copy the request,
        # send it through the same adapter. The adapter runs no hooks, so this
        # cannot loop.
        logger.info("agent could not decrypt the header; fetching its key again")
        self.forget_public_key(str(response.request.url))
        response.close()

        prepared = response.request.copy()
        self.sign(prepared, plaintext)
        started = time.perf_counter()
        retry: requests.Response = response.connection.send(prepared, **kwargs)
        elapsed_ms = (time.perf_counter() - started) * 1000

        with self._lock:
            self.resends += 1
        retry.history.append(response)
        retry.request = prepared
        self._record(
            retry,
            signature_of(prepared),
            _join(label, "resent after DecryptFailed"),
            elapsed_ms,
        )
        return retry

    def _record(
        self,
        response: requests.Response,
        signature: Signature | None,
        label: str,
        elapsed_ms: float | None = None,
    ) -> None:
        exchange = exchange_from_response(
            response,
            signature,
            redactor=self.redactor,
            label=label,
            elapsed_ms=elapsed_ms,
        )
        if self.recorder is not None:
            exchange = self.recorder.add(exchange)
        setattr(response, _EXCHANGE_ATTR, exchange)

    # -- the agent's public key ------------------------------------------------------

    def public_key_for(self, url: str) -> RSAPublicKey:
        """The public key of the agent serving ``url``, fetched on first use."""
        origin = origin_of(url)
        with self._lock:
            # Held during the fetch, so concurrent first requests fetch once.
            key = self._keys.get(origin) or self._pinned_key
            if key is None:
                key = self._fetch_public_key(origin)
                self._keys[origin] = key
        return key

    def forget_public_key(self, url: str) -> None:
        """Drop the cached (or pinned) key; the next request fetches it again."""
        with self._lock:
            self._keys.pop(origin_of(url), None)
            self._pinned_key = None

    def _fetch_public_key(self, origin: str) -> RSAPublicKey:
        url = origin + SECRET_PATH
        signature = Signature()
        started = time.perf_counter()
        try:
            response = requests.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransportError(
                f"GET {url}: the agent could not be reached to fetch its public "
                f"key: {exc}"
            ) from exc

        self.key_fetches += 1
        self._record(response, signature, "public key fetch", _ms_since(started))
        return _parse_public_key(url, response)


def is_decrypt_failed(response: requests.Response) -> bool:
    """Whether the agent said 401 "cannot decrypt the header" (any era)."""
    if response.status_code != 401:
        return False
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    if not isinstance(error, dict):
        return False
    code = error.get("code")
    return error.get("errCode") == DECRYPT_FAILED or (
        type(code) is int and code == _LEGACY_DECRYPT_FAILED_CODE
    )


def exchange_of(response: requests.Response) -> Exchange | None:
    """The recorded exchange an :class:`ObshellAuth` attached to ``response``."""
    exchange = getattr(response, _EXCHANGE_ATTR, None)
    return exchange if isinstance(exchange, Exchange) else None


def signature_of(request: requests.PreparedRequest) -> Signature | None:
    """What :meth:`ObshellAuth.sign` put into ``request`` before encryption."""
    signature = getattr(request, _SIGNATURE_ATTR, None)
    return signature if isinstance(signature, Signature) else None


def aes_secrets(*all_keys: AesKeys | None) -> tuple[str, ...]:
    """Every text form of AES key material a record must not show."""
    forms: list[str] = []
    for keys in all_keys:
        if keys is None:
            continue
        forms += [keys.wire, keys.key.hex(), keys.iv.hex()]
        forms += [
            base64.b64encode(part).decode("ascii") for part in (keys.key, keys.iv)
        ]
    return tuple(forms)


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _parse_public_key(url: str, response: requests.Response) -> RSAPublicKey:
    text = response_text(response)
    try:
        encoded = response.json()["data"]["public_key"]
        return load_public_key(encoded)
    except (ValueError, KeyError, TypeError, ContractError):
        raise TransportError(
            f"GET {url}: expected HTTP 200 with an envelope whose data.public_key "
            f"is a base64 DER RSA key, got HTTP {response.status_code} {text[:300]!r}"
        ) from None


def _body_bytes(body: Any) -> bytes | None:
    if body is None or body in (b"", ""):
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes):
        return body
    raise UsageError(
        f"obshell encrypts the whole body, so it must be bytes or str, "
        f"got {type(body).__name__}"
    )


def _join(label: str, note: str) -> str:
    return f"{label} ({note})" if label else note


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
