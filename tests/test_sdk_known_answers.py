"""Known answers: the official SDK's output decrypts with ours, and ours with an
independent decryptor."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from obshell.auth.password import PasswordAuthMethodV2
from obshell.request import BaseRequest

from obshell_contract.client import ObshellClient
from obshell_contract.crypto import (
    AesKeys,
    aes_decrypt,
    decrypt_header,
    generate_private_key,
    max_chunk,
    public_key_b64,
)
from tests.support.recording_server import RecordingServer

PASSWORD = "Test#Pw_123"
UPGRADE = {
    "version": "4.3.1.0",
    "release": "100000012025010101",
    "upgradeDir": "/data/upg",
}


@pytest.fixture(scope="module", params=[512, 1024], ids=["512-bit", "1024-bit"])
def key(request: pytest.FixtureRequest) -> rsa.RSAPrivateKey:
    return generate_private_key(request.param)


def _sdk_sign(
    key: rsa.RSAPrivateKey,
    request: BaseRequest,
    password: str = PASSWORD,
    agent_password: str | None = None,
) -> BaseRequest:
    # The SDK's v2 method, with its key and identity check preset so that it
    # does no network I/O of its own.
    method = PasswordAuthMethodV2(password, agent_password, 60)
    method.pk = public_key_b64(key.public_key())
    method.check_identity = True
    method.agent_password_is_set = agent_password is not None
    method.auth(request)
    return request


def _upgrade_request(data: Any) -> BaseRequest:
    return BaseRequest("/api/v1/agent/upgrade", "POST", "127.0.0.1", 2886, data=data)


def test_sdk_header_decrypts_to_what_the_sdk_was_given(key: rsa.RSAPrivateKey) -> None:
    before = int(time.time())
    request = _sdk_sign(key, _upgrade_request(dict(UPGRADE)))

    fields = decrypt_header(key, request.headers["X-OCS-Header"])
    assert fields == {
        "auth": PASSWORD,
        "ts": fields["ts"],
        "uri": "/api/v1/agent/upgrade",
        "keys": base64.b64encode(request.aes_keys).decode(),
    }
    assert before + 60 <= int(fields["ts"]) <= int(time.time()) + 60


def test_sdk_headers_use_53_byte_chunks(key: rsa.RSAPrivateKey) -> None:
    request = _sdk_sign(key, _upgrade_request(dict(UPGRADE)))
    raw = base64.b64decode(request.headers["X-OCS-Header"])
    plaintext = json.dumps(decrypt_header(key, request.headers["X-OCS-Header"]))

    # 53-byte chunks cost more blocks than the key's own maximum would.
    assert len(raw) // (key.key_size // 8) == -(-len(plaintext) // 53)
    assert max_chunk(key) >= 53


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (dict(UPGRADE), json.dumps(UPGRADE).encode()),
        ('{"version":"4.3.1.0"} x', b'{"version":"4.3.1.0"} x'),
        (b"\x00\x01binary", b"\x00\x01binary"),
        ({"version": "4.3.1.0", "upgradeDir": "/données"}, b'{"version": "4.3.1.0", "upgradeDir": "/donn\\u00e9es"}'),
    ],
    ids=["dict", "str", "bytes", "non-ascii-dict"],
)  # fmt: skip
def test_sdk_body_decrypts_to_what_the_sdk_was_given(
    key: rsa.RSAPrivateKey, data: Any, expected: bytes
) -> None:
    request = _sdk_sign(key, _upgrade_request(data))
    keys = AesKeys.from_wire(request.aes_keys)

    assert aes_decrypt(keys, request.data) == expected


def test_sdk_query_is_part_of_the_uri(key: rsa.RSAPrivateKey) -> None:
    request = BaseRequest(
        "/api/v1/task/dag/11000000000000000001",
        "GET",
        "127.0.0.1",
        2886,
        query_param={"show_details": True},
    )
    fields = decrypt_header(key, _sdk_sign(key, request).headers["X-OCS-Header"])

    assert fields["uri"] == "/api/v1/task/dag/11000000000000000001?show_details=True"
    assert request.data == {}


def test_sdk_agent_header_carries_the_agent_password(key: rsa.RSAPrivateKey) -> None:
    request = _sdk_sign(
        key, _upgrade_request(dict(UPGRADE)), agent_password="AgentPw#1"
    )

    assert "X-OCS-Header" not in request.headers
    assert (
        decrypt_header(key, request.headers["X-OCS-Agent-Header"])["auth"]
        == "AgentPw#1"
    )


@pytest.mark.parametrize(
    "password",
    ["", "pässwörd-密码", "x" * 300, 'quote"and\\backslash'],
    ids=["empty", "non-ascii", "300-chars", "escapes"],
)
def test_sdk_passwords_come_back_exactly(key: rsa.RSAPrivateKey, password: str) -> None:
    request = _sdk_sign(key, _upgrade_request(dict(UPGRADE)), password=password)

    assert decrypt_header(key, request.headers["X-OCS-Header"])["auth"] == password


# -- our client, read by the independent decryptor of the recording server -----------


@pytest.fixture(scope="module", params=[512, 1024], ids=["512-bit", "1024-bit"])
def server(request: pytest.FixtureRequest) -> Iterator[RecordingServer]:
    with RecordingServer(request.param) as server:
        yield server


def test_our_upgrade_request_decrypts_independently(server: RecordingServer) -> None:
    with ObshellClient(server.url, "pässwörd#1", lifetime=30) as client:
        before = int(time.time())
        client.upgrade_agent("4.3.1.0", "100000012025010101.el7", "/data/upg")

    received = server.last
    assert received.header_name == "X-OCS-Header"
    assert received.header_error is None
    assert received.header_fields is not None
    assert set(received.header_fields) == {"Auth", "Ts", "Uri", "Keys"}
    assert received.header_fields["Auth"] == "pässwörd#1"
    assert received.header_fields["Uri"] == received.target == "/api/v1/agent/upgrade"
    assert before + 30 <= int(received.header_fields["Ts"]) <= int(time.time()) + 30
    assert received.body == (
        b'{"version":"4.3.1.0","release":"100000012025010101.el7","upgradeDir":"/data/upg"}'
    )


def test_our_header_uses_the_largest_chunks(server: RecordingServer) -> None:
    with ObshellClient(server.url, "p" * 150) as client:
        client.upgrade_agent("4.3.1.0", "1.el7")

    sizes = server.last.header_chunk_sizes
    limit = server.private_key.key_size // 8 - 11
    assert len(sizes) >= 2
    assert all(size == limit for size in sizes[:-1])
    assert 0 < sizes[-1] <= limit


def test_our_get_has_no_keys_and_no_body(server: RecordingServer) -> None:
    with ObshellClient(server.url, "pw") as client:
        client.get_dag("11000000000000000001", show_details=False)

    received = server.last
    assert received.raw_body == b""
    assert received.header_fields is not None
    assert "Keys" not in received.header_fields
    assert received.header_fields["Uri"] == (
        "/api/v1/task/dag/11000000000000000001?show_details=false"
    )
