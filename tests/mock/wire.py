"""A byte-exact client for the mock's tests, and assertions on its replies.

``Wire`` sends requests through ``http.client`` so that the request-target,
headers and body go out exactly as given; it builds the hybrid encryption with
:mod:`obshell_contract.crypto`.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from obshell_contract import crypto, schemas
from obshell_contract.mock import MockAgent
from obshell_contract.mock.security import OCS_AGENT_HEADER, OCS_HEADER

PASSWORD = "root-pass"
PROFILES = ("reference", "obshell-4.5")
NEWER = ("4.5.0.1", "100000012026050802.el7")  # the default package
UPGRADE = "/api/v1/agent/upgrade"
# A DAG that must still run when the next request arrives, however loaded
# the machine is.
LONG_STAGE = 30.0

# A header field set to DROP is left out of the header JSON.
DROP: Any = object()


@dataclass
class WireReply:
    """One raw answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict), f"expected a JSON object, got {value!r}"
        return value

    @property
    def error(self) -> dict[str, Any]:
        error = self.envelope.get("error")
        assert isinstance(error, dict), f"expected an error, got {self.body!r}"
        return error

    @property
    def err_code(self) -> str | None:
        error = self.envelope.get("error")
        return error.get("errCode") if isinstance(error, dict) else None

    @property
    def message(self) -> str:
        return str(self.error["message"])

    @property
    def data(self) -> Any:
        return self.envelope["data"]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class Wire:
    """A client that sends exactly what it is told, encrypting on request."""

    def __init__(self, agent: MockAgent, password: str = PASSWORD) -> None:
        self.agent = agent
        self.password = password
        parts = urllib.parse.urlsplit(agent.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._key: rsa.RSAPublicKey | None = None

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        if self._key is None:
            reply = self.send("GET", "/api/v1/secret")
            self._key = crypto.load_public_key(reply.data["public_key"])
        return self._key

    def forget_key(self) -> None:
        self._key = None

    def use_key(self, key: rsa.RSAPublicKey) -> None:
        """Encrypt with ``key`` from now on, whatever the agent holds."""
        self._key = key

    def send(
        self,
        method: str,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> WireReply:
        """Send one request as given, on a fresh connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return WireReply(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def header_fields(
        self, target: str, keys: crypto.AesKeys | None, **fields: Any
    ) -> dict[str, Any]:
        """A fresh, valid header for ``target``, with ``fields`` overriding."""
        base: dict[str, Any] = {
            "Auth": self.password,
            "Ts": crypto.expiry(60),
            "Uri": target,
        }
        if keys is not None:
            base["Keys"] = keys.wire
        base.update(fields)
        return {name: value for name, value in base.items() if value is not DROP}

    def encrypt_header(self, fields: dict[str, Any]) -> str:
        return crypto.encrypt_header(self.public_key, fields)

    def call(
        self,
        method: str,
        target: str,
        payload: Any = None,
        *,
        header_name: str = OCS_HEADER,
        raw_plaintext: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> WireReply:
        """An authenticated call: JSON ``payload`` (or raw bytes) AES-encrypted."""
        plaintext = raw_plaintext
        if payload is not None:
            plaintext = json.dumps(payload).encode()
        keys = crypto.AesKeys.random() if plaintext is not None else None
        header = self.encrypt_header(self.header_fields(target, keys, **fields))

        headers = {header_name: header, **(extra_headers or {})}
        body = None
        if plaintext is not None and keys is not None:
            body = crypto.aes_encrypt(keys, plaintext).encode()
        return self.send(method, target, headers=headers, body=body)

    def upgrade(self, version: str, release: str, **extra: Any) -> WireReply:
        return self.call(
            "POST", UPGRADE, {"version": version, "release": release, **extra}
        )

    def agent_call(
        self, method: str, target: str, payload: Any = None, **fields: Any
    ) -> WireReply:
        return self.call(
            method, target, payload, header_name=OCS_AGENT_HEADER, **fields
        )


AgentFactory = Callable[..., MockAgent]


def assert_envelope(reply: WireReply) -> dict[str, Any]:
    """The reply is a schema-valid envelope whose status is the HTTP status."""
    __tracebackhide__ = True
    envelope = reply.envelope
    problems = schemas.violations(envelope, schemas.ENVELOPE)
    assert problems == [], f"envelope {reply.body!r} breaks the schema: {problems}"
    assert envelope["status"] == reply.status, (
        f"envelope status {envelope['status']!r} != HTTP {reply.status!r}"
    )
    assert not reply.body.endswith(b"\n"), "the envelope ends with a newline"
    return envelope


def assert_error(
    reply: WireReply,
    status: int,
    err_code: str,
    message: str | None = None,
    *,
    code: int | None = None,
) -> dict[str, Any]:
    """An error envelope with exactly this status, errCode, message and code."""
    __tracebackhide__ = True
    envelope = assert_envelope(reply)
    error = reply.error
    assert (reply.status, error["errCode"]) == (status, err_code), reply.body
    if message is not None:
        assert error["message"] == message, reply.body
    assert error.get("code") == code, reply.body
    return envelope


def wait_for_dag(
    wire: Wire, generic_id: str, states: tuple[str, ...] = ("SUCCEED", "FAILED")
) -> dict[str, Any]:
    """Poll the DAG until its state is one of ``states`` (the mock runs fast).

    Like the SDK, a ``DecryptFailed`` answer (the key changed during an
    upgrade) makes it fetch the public key again.
    """
    deadline = time.monotonic() + 10
    while True:
        reply = wire.call("GET", f"/api/v1/task/dag/{generic_id}")
        if reply.err_code == "Security.Authentication.Header.DecryptFailed":
            wire.forget_key()
            continue
        dag = reply.data
        if dag["state"] in states or time.monotonic() > deadline:
            assert dag["state"] in states, f"DAG did not reach {states}: {dag!r}"
            return dict(dag)
        time.sleep(0.01)
