"""Every forgery puts on the wire what it claims, as an independent decryptor sees it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from obshell_contract import forgery as forgeries
from obshell_contract.client import ObshellClient
from obshell_contract.errors import UsageError
from obshell_contract.forgery import FORGERIES, REPLAYED, Forger, Forgery, send_forged
from obshell_contract.recording import Exchange
from tests.support.recording_server import (
    Received,
    RecordingServer,
    independent_decrypt_header,
)

PASSWORD = "root-Pw#forgery"
AGENT_PASSWORD = "agent-Pw#forgery"
LIFETIME = 10
TARGET = "/api/v1/agent/upgrade?probe=1"
BODY = {
    "version": "4.3.1.0",
    "release": "100000012025010101.el7",
    "upgradeDir": "/data/upg",
}
PLAINTEXT = json.dumps(BODY, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    with RecordingServer(1024) as server:
        yield server


@pytest.fixture
def client(server: RecordingServer) -> Iterator[ObshellClient]:
    server.clear()
    with ObshellClient(server.url, PASSWORD, lifetime=LIFETIME) as client:
        yield client


def _fields(received: Received) -> dict[str, Any]:
    assert received.header_error is None, received.header_error
    assert received.header_fields is not None
    return received.header_fields


def _honest_header(received: Received, now: float) -> None:
    fields = _fields(received)
    assert fields["Auth"] == PASSWORD
    assert fields["Uri"] == received.target == TARGET
    assert abs(int(fields["Ts"]) - (now + LIFETIME)) <= 2
    assert received.keys is not None
    assert len(received.keys) == 32


def _body_under_keys(received: Received) -> None:
    assert received.body == PLAINTEXT, received.body_error


def _ts_near(expected_offset: float) -> Callable[[Received, float], None]:
    def check(received: Received, now: float) -> None:
        ts = _fields(received)["Ts"]
        assert isinstance(ts, str)
        assert abs(int(ts) - (now + expected_offset)) <= 2
        _body_under_keys(received)

    return check


def _tail_decrypts_under_the_keys_key(received: Received) -> None:
    # CBC with a wrong IV spoils the first block only: the rest proves that the
    # body is encrypted under the key that Keys starts with.
    assert received.keys is not None
    raw = base64.b64decode(received.raw_body)
    decryptor = Cipher(
        algorithms.AES(received.keys[:16]), modes.CBC(bytes(16))
    ).decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    assert (unpadder.update(padded) + unpadder.finalize())[16:] == PLAINTEXT[16:]


def _honest_ciphertext(received: Received) -> bytes:
    assert received.keys is not None
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(PLAINTEXT) + padder.finalize()
    encryptor = Cipher(
        algorithms.AES(received.keys[:16]), modes.CBC(received.keys[16:])
    ).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def check_honest(received: Received, now: float) -> None:
    _honest_header(received, now)
    assert set(_fields(received)) == {"Auth", "Ts", "Uri", "Keys"}
    _body_under_keys(received)


def check_no_header(received: Received, now: float) -> None:
    assert received.ocs_headers == {}
    assert received.raw_body == PLAINTEXT
    assert received.headers["content-type"] == "application/json"


def check_plain_body(received: Received, now: float) -> None:
    _honest_header(received, now)
    assert received.raw_body == PLAINTEXT
    assert received.body_error is not None


def check_garbage_header(received: Received, now: float) -> None:
    assert received.header_name == "X-OCS-Header"
    assert received.header_value == "Zm9vYmFy"
    assert received.header_error is not None


def check_foreign_rsa_key(received: Received, now: float) -> None:
    assert received.header_value is not None
    raw = base64.b64decode(received.header_value)
    assert len(raw) % 128 == 0  # blocks of a 1024-bit key, as the agent's
    assert received.header_error is not None
    assert received.raw_body


def check_numeric_ts(received: Received, now: float) -> None:
    ts = _fields(received)["Ts"]
    assert type(ts) is int
    assert abs(ts - (now + LIFETIME)) <= 2


def check_non_numeric_ts(received: Received, now: float) -> None:
    assert _fields(received)["Ts"] == "soon"
    _body_under_keys(received)


def check_other_uri(received: Received, now: float) -> None:
    assert _fields(received)["Uri"] == "/api/v1/agent/upgrade/check"
    assert received.target == TARGET
    _body_under_keys(received)


def check_uri_without_query(received: Received, now: float) -> None:
    assert _fields(received)["Uri"] == "/api/v1/agent/upgrade"
    assert received.target == TARGET


def check_missing_keys(received: Received, now: float) -> None:
    assert "Keys" not in _fields(received)
    assert received.body_error == "a body but no Keys"
    assert len(base64.b64decode(received.raw_body)) % 16 == 0


def _short_keys(length: int) -> Callable[[Received, float], None]:
    def check(received: Received, now: float) -> None:
        assert received.keys is not None
        assert len(received.keys) == length
        assert received.body_error is not None
        _tail_decrypts_under_the_keys_key(received)

    return check


def check_bad_body_length(received: Received, now: float) -> None:
    _honest_header(received, now)
    assert received.raw_body == b"QUJD"
    assert received.body_error is not None


def check_tampered_ciphertext(received: Received, now: float) -> None:
    _honest_header(received, now)
    honest = _honest_ciphertext(received)
    sent = base64.b64decode(received.raw_body)

    differing = [i for i, (a, b) in enumerate(zip(honest, sent, strict=True)) if a != b]
    assert differing == [len(sent) - 17]
    assert honest[-17] ^ sent[-17] == 0xFF
    assert received.body_error is not None
    assert "padding" in received.body_error


def check_foreign_aes_key(received: Received, now: float) -> None:
    _honest_header(received, now)
    sent = base64.b64decode(received.raw_body)
    assert len(sent) == len(_honest_ciphertext(received))
    assert sent != _honest_ciphertext(received)
    assert received.body != PLAINTEXT


def check_wrong_password(received: Received, now: float) -> None:
    auth = _fields(received)["Auth"]
    assert auth
    assert auth != PASSWORD
    _body_under_keys(received)


def check_empty_auth(received: Received, now: float) -> None:
    assert _fields(received)["Auth"] == ""
    _body_under_keys(received)


def check_agent_header_instead(received: Received, now: float) -> None:
    assert list(received.ocs_headers) == ["X-OCS-Agent-Header"]
    assert _fields(received)["Auth"] == PASSWORD
    _body_under_keys(received)


def check_both_headers(received: Received, now: float) -> None:
    # This client has no agent password: the agent header carries "".
    root = received.ocs_headers["X-OCS-Header"]
    agent = received.ocs_headers["X-OCS-Agent-Header"]
    assert root is not None
    assert agent is not None
    assert (root["Auth"], agent["Auth"]) == (PASSWORD, "")
    assert root["Keys"] == agent["Keys"]
    _body_under_keys(received)


def check_sha256_field(received: Received, now: float) -> None:
    assert _fields(received)["Sha256"] == "deadbeef"
    _honest_header(received, now)
    _body_under_keys(received)


CLAIMS: dict[str, Callable[[Received, float], None]] = {
    "honest": check_honest,
    "no-header": check_no_header,
    "plain-body": check_plain_body,
    "garbage-header": check_garbage_header,
    "foreign-rsa-key": check_foreign_rsa_key,
    "expired-ts": _ts_near(-60),
    "non-numeric-ts": check_non_numeric_ts,
    "numeric-ts": check_numeric_ts,
    "far-future-ts": _ts_near(86400),
    "uri-of-another-path": check_other_uri,
    "uri-without-query": check_uri_without_query,
    "missing-keys": check_missing_keys,
    "keys-16-bytes": _short_keys(16),
    "keys-24-bytes": _short_keys(24),
    "bad-body-length": check_bad_body_length,
    "tampered-ciphertext": check_tampered_ciphertext,
    "foreign-aes-key": check_foreign_aes_key,
    "wrong-password": check_wrong_password,
    "empty-auth": check_empty_auth,
    "agent-header-instead": check_agent_header_instead,
    "both-headers": check_both_headers,
    "sha256-field": check_sha256_field,
}


def test_every_forgery_has_a_claim_checked_here() -> None:
    assert set(FORGERIES) == set(CLAIMS)


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=list(FORGERIES))
def test_forgery_puts_its_defect_on_the_wire(
    client: ObshellClient, server: RecordingServer, forgery: Forgery
) -> None:
    now = time.time()

    reply = Forger(client).send("POST", TARGET, BODY, forgery)

    CLAIMS[forgery.name](server.last, now)
    assert reply.exchange.forgery == forgery.name
    assert reply.exchange.label == forgery.description
    assert reply.exchange is client.recorder.last
    assert PASSWORD not in json.dumps(client.recorder.to_list(), ensure_ascii=False)


def test_both_headers_carry_their_own_passwords(server: RecordingServer) -> None:
    with ObshellClient(server.url, PASSWORD, agent_password=AGENT_PASSWORD) as client:
        send_forged(client, "POST", TARGET, BODY, forgeries.BOTH_HEADERS)
        dump = json.dumps(client.recorder.to_list())

    root = server.last.ocs_headers["X-OCS-Header"]
    agent = server.last.ocs_headers["X-OCS-Agent-Header"]
    assert root is not None
    assert agent is not None
    assert (root["Auth"], agent["Auth"]) == (PASSWORD, AGENT_PASSWORD)
    assert PASSWORD not in dump
    assert AGENT_PASSWORD not in dump


def test_the_default_header_follows_the_client(server: RecordingServer) -> None:
    with ObshellClient(server.url, PASSWORD, agent_password=AGENT_PASSWORD) as client:
        send_forged(client, "POST", TARGET, BODY, forgeries.EXPIRED_TS)

    assert list(server.last.ocs_headers) == ["X-OCS-Agent-Header"]
    assert _fields(server.last)["Auth"] == AGENT_PASSWORD


@pytest.mark.parametrize("body", ["{} x", "[]", "null", '"x"', b"\x00raw"])
def test_malformed_bodies_are_encrypted_exactly(
    client: ObshellClient, server: RecordingServer, body: str | bytes
) -> None:
    send_forged(client, "POST", TARGET, body, forgeries.HONEST)

    expected = body if isinstance(body, bytes) else body.encode()
    assert server.last.body == expected


def test_no_body_means_no_keys(client: ObshellClient, server: RecordingServer) -> None:
    send_forged(
        client, "GET", "/api/v1/task/dag/11?show_details=true", None, forgeries.HONEST
    )

    assert server.last.raw_body == b""
    assert "Keys" not in _fields(server.last)


def test_chosen_header_name_and_extra_fields(
    client: ObshellClient, server: RecordingServer
) -> None:
    forgery = Forgery.headers("X-Custom-Header").replace(
        name="custom", extra_fields={"Token": "t-1", "ForwardType": 2}
    )

    reply = send_forged(client, "POST", TARGET, BODY, forgery)

    value = server.last.headers["x-custom-header"]
    fields, _ = independent_decrypt_header(server.private_key, value)
    assert fields["Token"] == "t-1"
    assert fields["ForwardType"] == 2
    assert fields["Auth"] == PASSWORD  # an unknown name gets the root password
    assert server.last.ocs_headers == {}
    assert reply.exchange.header_name == "X-Custom-Header"


def test_constructors_build_what_they_say() -> None:
    assert Forgery.uri_of("/x").uri == "/x"
    assert Forgery.keys_of_length(7).keys_length == 7
    assert Forgery.with_fields(Sha256="0").extra_fields == {"Sha256": "0"}
    assert forgeries.EXPIRED_TS.replace(name="older", ts_offset=-600).ts_offset == -600
    assert forgeries.EXPIRED_TS.ts_offset == -60


def test_a_negative_keys_length_is_a_usage_error(client: ObshellClient) -> None:
    with pytest.raises(UsageError, match="keys_length"):
        send_forged(client, "POST", TARGET, BODY, Forgery.keys_of_length(-1))


# -- replay --------------------------------------------------------------------------------


def test_replay_resends_the_header_and_body_verbatim(
    client: ObshellClient, server: RecordingServer
) -> None:
    forger = Forger(client)
    original = forger.send("POST", "/api/v1/agent/upgrade", BODY, forgeries.HONEST)
    sent = server.last

    reply = forger.replay(original, "/api/v1/agent/upgrade/check")

    replayed = server.last
    assert replayed.target == "/api/v1/agent/upgrade/check"
    assert replayed.header_value == sent.header_value
    assert replayed.raw_body == sent.raw_body
    assert _fields(replayed)["Uri"] == "/api/v1/agent/upgrade"
    assert reply.exchange.forgery == REPLAYED
    assert reply.exchange.header_fields == original.exchange.header_fields


def test_replay_accepts_an_exchange_or_a_capture_of_a_normal_send(
    client: ObshellClient, server: RecordingServer
) -> None:
    reply = client.upgrade_agent("4.3.1.0", "1.el7")
    sent = server.last
    assert reply.exchange.captured is not None

    Forger(client).replay(reply.exchange, "/api/v1/x", method="PUT")
    assert (server.last.method, server.last.header_value) == ("PUT", sent.header_value)

    Forger(client).replay(reply.exchange.captured, "/api/v1/y")
    assert (server.last.method, server.last.raw_body) == ("POST", sent.raw_body)


def test_captures_stay_out_of_records_and_reprs(client: ObshellClient) -> None:
    reply = client.upgrade_agent("4.3.1.0", "1.el7")
    captured = reply.exchange.captured
    assert captured is not None

    assert "captured" not in reply.exchange.to_dict()
    assert captured.headers["X-OCS-Header"] not in repr(captured)
    assert captured.headers["X-OCS-Header"] not in repr(reply.exchange)


def test_replay_without_a_capture_is_a_usage_error(client: ObshellClient) -> None:
    bare = Exchange(
        "GET", "http://x/", "/", None, None, None, 0, "", 200, {}, "", 0.0, ""
    )

    with pytest.raises(UsageError, match="kept no raw send"):
        Forger(client).replay(bare, "/api/v1/info")


def test_foreign_key_matches_a_legacy_agent_key_size() -> None:
    with (
        RecordingServer(512) as server,
        ObshellClient(server.url, PASSWORD) as client,
    ):
        send_forged(client, "POST", TARGET, BODY, forgeries.FOREIGN_RSA_KEY)

    assert server.last.header_value is not None
    assert len(base64.b64decode(server.last.header_value)) % 64 == 0
    assert server.last.header_error is not None
