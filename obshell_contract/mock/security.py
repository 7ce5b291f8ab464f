"""The agent's request security: header and body decryption, then ``Verify``.

Three steps run in the agent's order (protocol reference §2.1, §2.3):
:func:`decrypt_header` (``HeaderDecrypt``), :func:`decrypt_body`
(``BodyDecrypt``), and later, on protected routes only, :func:`verify`. Each
raises the :class:`AgentError` the agent would answer with, or
:class:`AgentPanic` where the agent panics.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from obshell_contract import crypto
from obshell_contract.errors import DecryptionError
from obshell_contract.mock.errors import CATALOGUE, AgentError, agent_error
from obshell_contract.mock.gostd import (
    GoJSONError,
    StructField,
    StructType,
    decode_first,
    decode_struct,
    go_base64_decode,
    go_parse_int,
    go_quote,
)

__all__ = [
    "CLUSTER_AGENT",
    "IDENTITIES",
    "OCS_AGENT_HEADER",
    "OCS_HEADER",
    "AgentPanic",
    "HttpHeader",
    "Verifier",
    "decrypt_body",
    "decrypt_header",
]

OCS_HEADER = "X-OCS-Header"
OCS_AGENT_HEADER = "X-OCS-Agent-Header"

CLUSTER_AGENT = "CLUSTER AGENT"
IDENTITIES = (
    "MASTER",
    "FOLLOWER",
    "SINGLE",
    CLUSTER_AGENT,
    "TAKE OVER MASTER",
    "TAKE OVER FOLLOWER",
    "SCALING OUT",
    "SCALING IN",
    "UNIDENTIFIED",
)

PasswordType = Literal["oceanbase", "agent"]

_AES_KEY_SIZE = crypto.AES_KEY_SIZE
_AES_BLOCK = crypto.AES_BLOCK

# ``secure.HttpHeader`` (``ob/agent/secure/header.go``): JSON names as Go sees them.
_HTTP_HEADER = StructType(
    "HttpHeader",
    "secure.HttpHeader",
    (
        StructField("session_id", "string"),
        StructField("Auth", "string"),
        StructField("Ts", "string"),
        StructField("Token", "string"),
        StructField("ssotoken", "string"),
        StructField("Uri", "string"),
        StructField("Keys", "[]uint8"),
        StructField("Sha256", "string"),
        StructField("ForwardType", "int"),
        StructField(
            "ForwardAgent",
            StructType(
                "AgentInfo",
                "meta.AgentInfo",
                (StructField("ip", "string"), StructField("port", "int")),
            ),
        ),
    ),
)


class AgentPanic(Exception):
    """The agent panics here; its recovery middleware answers (§2.4)."""


@dataclass(frozen=True, repr=False)
class HttpHeader:
    """A decrypted ``X-OCS-Header`` / ``X-OCS-Agent-Header``."""

    password_type: PasswordType
    session_id: str = ""
    auth: str = ""
    ts: str = ""
    uri: str = ""
    keys: bytes | None = None

    def __repr__(self) -> str:
        # Auth and Keys are secrets; the rest is harmless but not needed either.
        return f"HttpHeader(password_type={self.password_type!r}, uri={self.uri!r})"


# -- HeaderDecrypt ---------------------------------------------------------------


def decrypt_header(
    get_header: Callable[[str], str | None], key: rsa.RSAPrivateKey
) -> HttpHeader | None:
    """Decrypt the request's X-OCS header, or return None when it has none.

    ``X-OCS-Agent-Header`` wins over ``X-OCS-Header``; an empty value counts as
    absent. Failures raise the agent's 401 ``…Header.DecryptFailed``.
    """
    agent_value = (get_header(OCS_AGENT_HEADER) or "").strip()
    root_value = (get_header(OCS_HEADER) or "").strip()
    if not agent_value and not root_value:
        return None

    password_type: PasswordType = "agent" if agent_value else "oceanbase"
    value = agent_value or root_value
    try:
        fields = _decode_header(key, value)
    except DecryptionError as exc:
        raise agent_error("Security.Authentication.Header.DecryptFailed", exc) from None
    return _header_from_fields(password_type, fields)


def _decode_header(key: rsa.RSAPrivateKey, value: str) -> dict[str, Any]:
    # http.server decoded the header as Latin-1: this gives back its bytes.
    raw, error = go_base64_decode(value.encode("latin-1", "replace"))
    if error is not None:
        raise DecryptionError(error)
    if len(raw) % (key.key_size // 8):
        # Go decrypts the short last block and PKCS#1 v1.5 refuses it.
        raise DecryptionError("crypto/rsa: decryption error")

    plain = crypto.rsa_decrypt_chunked(key, crypto.b64encode(raw)) if raw else b""
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        # ``cryptography`` answers a block under a foreign key with random
        # bytes (implicit rejection); Go reports the padding error instead.
        raise DecryptionError("crypto/rsa: decryption error") from None
    return _decode_header_json(text)


def _decode_header_json(text: str) -> dict[str, Any]:
    try:
        value = decode_first(text)
    except GoJSONError as exc:
        raise DecryptionError(str(exc)) from None

    fields, error = decode_struct(value, _HTTP_HEADER)
    if error is not None:
        raise DecryptionError(error)
    return fields


def _header_from_fields(
    password_type: PasswordType, fields: dict[str, Any]
) -> HttpHeader:
    return HttpHeader(
        password_type=password_type,
        session_id=fields.get("session_id", ""),
        auth=fields.get("Auth", ""),
        ts=fields.get("Ts", ""),
        uri=fields.get("Uri", ""),
        keys=fields.get("Keys"),
    )


# -- BodyDecrypt -----------------------------------------------------------------


def decrypt_body(
    header: HttpHeader | None, body: bytes, *, strict: bool, accept_plain: bool
) -> bytes:
    """The request body as the handler will see it after ``BodyDecrypt``.

    Only runs under a decrypted header and for a non-empty body. ``strict``
    selects the reference profile's checks (every defect is a 400); otherwise
    the agent's own code path runs, panics included (§1.4, §2.4 e1-e5).
    ``accept_plain`` is the ``accept-plain-body`` fault.
    """
    if header is None or not body:
        return body
    if accept_plain and _is_json_object(body):
        return body

    keys = header.keys or b""
    if strict:
        return _decrypt_strictly(keys, body)
    return _decrypt_like_agent(keys, body)


def _is_json_object(body: bytes) -> bool:
    return body.lstrip()[:1] == b"{"


def _decrypt_strictly(keys: bytes, body: bytes) -> bytes:
    if len(keys) != _AES_KEY_SIZE + _AES_BLOCK:
        raise _as_bad_request("Request.Body.Decrypt.AES.KeyAndIv.Invalid")
    raw, error = go_base64_decode(body)
    if error is not None:
        raise agent_error("Request.Body.Decrypt.AES.Failed", error)
    if not raw or len(raw) % _AES_BLOCK:
        raise _as_bad_request("Request.Body.Decrypt.AES.ContentLength.Invalid")

    try:
        return crypto.aes_decrypt(crypto.AesKeys.from_wire(keys), crypto.b64encode(raw))
    except DecryptionError as exc:
        raise agent_error("Request.Body.Decrypt.AES.Failed", exc) from None


def _as_bad_request(err_code: str) -> AgentError:
    # The agent's own codes and texts, but as the client's fault: 400, not 500.
    error = agent_error(err_code)
    return AgentError(error.err_code, 400, error.message, error.code)


def _decrypt_like_agent(keys: bytes, body: bytes) -> bytes:
    # ``transferKeys`` and ``AesDecryptAndReturnBytes``, step by step.
    if len(keys) < _AES_KEY_SIZE:
        raise agent_error("Request.Body.Decrypt.AES.KeyAndIv.Invalid")
    key, iv = keys[:_AES_KEY_SIZE], keys[_AES_KEY_SIZE:]
    raw, _ = go_base64_decode(body)
    if len(iv) != _AES_BLOCK:
        raise AgentPanic("cipher.NewCBCDecrypter: IV length must equal block size")
    if len(raw) % _AES_BLOCK:
        raise agent_error("Request.Body.Decrypt.AES.ContentLength.Invalid")

    plain = _cbc_decrypt_unpadded(key, iv, raw)
    if not plain:
        raise AgentPanic("runtime error: index out of range [-1]")
    pad = plain[-1]
    if pad > len(plain):
        raise AgentPanic(f"runtime error: slice bounds out of range [:{-pad}]")
    return plain[: len(plain) - pad]


def _cbc_decrypt_unpadded(key: bytes, iv: bytes, raw: bytes) -> bytes:
    # crypto.aes_decrypt checks the padding; the agent trusts the last byte,
    # so its flawed unpadding needs the bare CBC output.
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(raw) + decryptor.finalize()


# -- Verify ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """``Verify`` for one agent: its identity, its passwords, the auth faults."""

    identity: str
    root_password: str
    agent_password: str | None
    faults: Collection[str] = ()

    def verify(
        self,
        header: HttpHeader | None,
        *,
        request_uri: str,
        received_at: int,
        task_id: str | None = None,
    ) -> None:
        """Pass, or raise the error ``Verify`` answers with (§2.3).

        ``received_at`` is the request's arrival in whole Unix seconds;
        ``task_id`` is the ``{id}`` of a ``/api/v1/task`` route, if any.
        """
        if header is None:
            if "accept-unencrypted" in self.faults:
                return
            raise agent_error("Request.Header.NotFound")
        if header.uri != request_uri and "ignore-uri" not in self.faults:
            raise agent_error("Security.Authentication.Header.UriMismatch")

        if header.session_id and self.identity == CLUSTER_AGENT:
            self._verify_session(header, received_at)
        elif task_id is not None and task_id[:1] in ("4", "5"):
            self._verify_obproxy_route(header, received_at)
        else:
            self._verify_password(header, received_at)

    def _verify_session(self, header: HttpHeader, received_at: int) -> None:
        # The mock has no login route, so no session ever exists.
        try:
            self._check_timestamp(header.ts, received_at)
        except AgentError:
            kind = CATALOGUE["Security.Authentication.Expired"]
            raise AgentError(
                kind.err_code, kind.status, "Authentication expired", kind.code
            ) from None
        raise agent_error("Security.Authentication.SessionInvalid")

    def _verify_obproxy_route(self, header: HttpHeader, received_at: int) -> None:
        if header.password_type != "agent":
            raise agent_error(
                "Security.Authentication.WithAgentPassword",
                "this route only support agent password",
            )
        if self.agent_password is None:
            raise agent_error("Security.Authentication.AgentPasswordNotInitialized")
        self._verify_auth(header, received_at, self.agent_password)

    def _verify_password(self, header: HttpHeader, received_at: int) -> None:
        if self.identity == "SINGLE":
            self._verify_single(header, received_at)
        elif self.identity == "FOLLOWER":
            # No inter-agent tokens exist here, so a follower auto-forwards to
            # its master, and the mock has none.
            raise agent_error("Request.Forward.MasterAgent.NotFound")
        elif header.password_type == "oceanbase":
            self._verify_auth(header, received_at, self.root_password)
        elif self.agent_password is None:
            raise agent_error(
                "Security.Authentication.WithOceanBasePassword",
                "agent password is not initialized",
            )
        else:
            self._verify_auth(header, received_at, self.agent_password)

    def _verify_single(self, header: HttpHeader, received_at: int) -> None:
        if self.agent_password is None:
            return
        if header.password_type != "agent":
            raise agent_error(
                "Security.Authentication.WithAgentPassword",
                "agent password has been set",
            )
        self._verify_auth(header, received_at, self.agent_password)

    def _verify_auth(self, header: HttpHeader, received_at: int, password: str) -> None:
        # ``secure.VerifyAuth``: the timestamp counts only with a non-empty Auth.
        if header.auth:
            self._check_timestamp(header.ts, received_at)
        if header.auth == password or "ignore-password" in self.faults:
            return

        err_code = (
            "Security.Authentication.IncorrectAgentPassword"
            if header.password_type == "agent"
            else "Security.Authentication.IncorrectOceanbasePassword"
        )
        error = agent_error(err_code)
        if "echo-password" in self.faults:
            error.message = f"{error.message}: {header.auth}"
        raise error

    def _check_timestamp(self, ts: str, received_at: int) -> None:
        expiry, reason = go_parse_int(ts)
        if reason is not None:
            kind = CATALOGUE["Security.Authentication.Timestamp.Invalid"]
            message = (
                f"Unauthorized: Invalid timestamp: {ts}, err: "
                f"strconv.ParseInt: parsing {go_quote(ts)}: {reason}"
            )
            raise AgentError(kind.err_code, kind.status, message, kind.code)
        if received_at > expiry and "ignore-expiry" not in self.faults:
            raise agent_error("Security.Authentication.Expired")
