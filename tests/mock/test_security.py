"""Header and body decryption and ``Verify``, in the agent's order (§1, §2.3, §2.4)."""

from __future__ import annotations

import json
import re
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from obshell_contract import crypto
from obshell_contract.mock import MockAgent
from obshell_contract.mock.errors import AgentError
from obshell_contract.mock.gostd import (
    StructField,
    StructType,
    decode_first,
    decode_struct,
    go_base64_decode,
    go_parse_int,
)
from obshell_contract.mock.security import HttpHeader, Verifier
from obshell_contract.mock.server import go_time_ns
from tests.mock.wire import (
    DROP,
    NEWER,
    PASSWORD,
    UPGRADE,
    AgentFactory,
    Wire,
    WireReply,
    assert_envelope,
    assert_error,
)

UNFINISHED = "/api/v1/task/dag/unfinish"
DECRYPT_FAILED = "Security.Authentication.Header.DecryptFailed"
CHARSET_JSON = "application/json; charset=utf-8"


def assert_decrypt_failed(reply: WireReply, detail: str | None = None) -> None:
    __tracebackhide__ = True
    envelope = assert_error(reply, 401, DECRYPT_FAILED, code=1)
    assert reply.message.startswith("Decrypt http header failed: "), reply.body
    if detail is not None:
        assert reply.message == f"Decrypt http header failed: {detail}"
    assert envelope["traceId"] == ""
    assert reply.content_type == CHARSET_JSON


def _encrypted(wire: Wire, plaintext: bytes) -> dict[str, str]:
    return {"X-OCS-Header": crypto.rsa_encrypt_chunked(wire.public_key, plaintext)}


# -- a1: no header ---------------------------------------------------------------


def test_no_header_is_a_400_with_a_trace_id(wire: Wire) -> None:
    reply = wire.send("POST", UPGRADE, body=json.dumps({"version": "x"}).encode())

    envelope = assert_error(
        reply,
        400,
        "Request.Header.NotFound",
        "X-OCS-Agent-Header or X-OCS-Header not found in http request header",
    )
    assert "data" not in envelope
    assert re.fullmatch(r"[0-9a-f]{16}", envelope["traceId"])
    assert reply.content_type == "application/json"


def test_empty_header_values_count_as_absent(wire: Wire) -> None:
    reply = wire.send(
        "POST", UPGRADE, headers={"X-OCS-Header": "", "X-OCS-Agent-Header": " "}
    )

    assert_error(reply, 400, "Request.Header.NotFound")


def test_the_trace_header_is_echoed_on_errors(wire: Wire) -> None:
    reply = wire.send("POST", UPGRADE, headers={"X-OBSHELL-Trace-ID": "abc"})

    assert reply.envelope["traceId"] == "abc"


# -- a2: undecryptable header ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("Zm9vYmFy", "crypto/rsa: decryption error"),
        ("Zm9v YmFy", "illegal base64 data at input byte 4"),
        ("Zm9vYmF", "illegal base64 data at input byte 4"),
    ],
)
def test_garbage_headers_fail_to_decrypt(wire: Wire, value: str, detail: str) -> None:
    assert_decrypt_failed(
        wire.send("POST", UPGRADE, headers={"X-OCS-Header": value}), detail
    )


@pytest.mark.parametrize(
    ("plaintext", "detail"),
    [
        (
            b'{"Auth":"x","Ts":12,"Uri":"/"}',
            "json: cannot unmarshal number into Go struct field HttpHeader.Ts of type string",
        ),
        (b'{"Keys":"!!!!"}', "illegal base64 data at input byte 0"),
        (b'{"Keys":"-_-_"}', "illegal base64 data at input byte 0"),
        (
            b'{"Keys":7}',
            "json: cannot unmarshal number into Go struct field HttpHeader.Keys of type []uint8",
        ),
        (
            b'{"ForwardType":1.5}',
            "json: cannot unmarshal number 1.5 into Go struct field HttpHeader.ForwardType of type int",
        ),
        (
            b'{"ForwardAgent":{"port":"x"}}',
            "json: cannot unmarshal string into Go struct field HttpHeader.ForwardAgent.port of type int",
        ),
        (b"[]", "json: cannot unmarshal array into Go value of type secure.HttpHeader"),
        (b"hello", None),
        (b"", "EOF"),
        (b"   ", "EOF"),
        (b'{"Auth":', "unexpected EOF"),
    ],
)
def test_headers_that_are_not_a_go_http_header_fail(
    wire: Wire, plaintext: bytes, detail: str | None
) -> None:
    reply = wire.send("POST", UPGRADE, headers=_encrypted(wire, plaintext))

    assert_decrypt_failed(reply, detail)


def test_a_header_under_another_key_fails(wire: Wire) -> None:
    other = crypto.generate_private_key(1024).public_key()
    fields = wire.header_fields(UPGRADE, None)
    value = crypto.encrypt_header(other, fields)

    assert_decrypt_failed(wire.send("POST", UPGRADE, headers={"X-OCS-Header": value}))


def test_a_header_with_a_short_last_block_fails(wire: Wire) -> None:
    value = wire.encrypt_header(wire.header_fields(UPGRADE, None))
    raw = crypto.b64decode_strict(value)[:-1]

    reply = wire.send("POST", UPGRADE, headers={"X-OCS-Header": crypto.b64encode(raw)})

    assert_decrypt_failed(reply, "crypto/rsa: decryption error")


def test_the_agent_header_is_decrypted_even_when_the_other_is_fine(wire: Wire) -> None:
    good = wire.encrypt_header(wire.header_fields(UNFINISHED, None))

    reply = wire.send(
        "GET", UNFINISHED, headers={"X-OCS-Header": good, "X-OCS-Agent-Header": "Zm9v"}
    )

    assert_decrypt_failed(reply)


# -- what a decrypted header may look like ---------------------------------------


def test_lowercase_keys_as_the_sdk_sends_them_are_accepted(wire: Wire) -> None:
    keys = crypto.AesKeys.random()
    fields = {
        "auth": PASSWORD,
        "ts": crypto.expiry(5),
        "uri": UPGRADE,
        "keys": keys.wire,
    }
    body = crypto.aes_encrypt(
        keys, json.dumps(dict(zip(("version", "release"), NEWER, strict=True))).encode()
    )

    reply = wire.send(
        "POST",
        UPGRADE,
        headers={
            "X-OCS-Header": crypto.encrypt_header(
                wire.public_key, fields, chunk_size=53
            )
        },
        body=body.encode(),
    )

    assert assert_envelope(reply)["successful"] is True


def test_unknown_keys_and_trailing_bytes_are_ignored(wire: Wire) -> None:
    fields = wire.header_fields(UNFINISHED, None, Sha256="deadbeef", Extra=[1, 2])
    plaintext = json.dumps(fields).encode() + b" trailing garbage"

    reply = wire.send("GET", UNFINISHED, headers=_encrypted(wire, plaintext))

    assert reply.status == 200


def test_the_last_of_duplicate_keys_wins_whatever_their_case(wire: Wire) -> None:
    plaintext = (
        f'{{"Uri":"/elsewhere","Auth":"{PASSWORD}","Ts":"{crypto.expiry(60)}","uri":"{UNFINISHED}"}}'
    ).encode()

    reply = wire.send("GET", UNFINISHED, headers=_encrypted(wire, plaintext))

    assert reply.status == 200


def test_keys_may_also_be_an_array_of_bytes(wire: Wire) -> None:
    keys = crypto.AesKeys.random()
    fields = wire.header_fields(UPGRADE, None, Keys=list(keys.key + keys.iv))
    body = crypto.aes_encrypt(keys, b"{}").encode()

    reply = wire.send(
        "POST",
        UPGRADE,
        headers={"X-OCS-Header": wire.encrypt_header(fields)},
        body=body,
    )

    assert_error(reply, 400, "Common.BindJsonFailed")


def test_a_null_header_is_an_empty_one(wire: Wire) -> None:
    reply = wire.send("POST", UPGRADE, headers=_encrypted(wire, b"null"))

    assert_error(reply, 401, "Security.Authentication.Header.UriMismatch", code=10008)


# -- Verify: URI, timestamp, password ---------------------------------------------


def test_uri_mismatch_wins_over_a_wrong_password(wire: Wire) -> None:
    reply = wire.call(
        "POST",
        UPGRADE,
        {"version": "1"},
        Uri="/api/v1/agent/upgrade/check",
        Auth="wrong",
    )

    envelope = assert_error(
        reply,
        401,
        "Security.Authentication.Header.UriMismatch",
        "URI mismatch",
        code=10008,
    )
    assert re.fullmatch(r"[0-9a-f]{16}", envelope["traceId"])


def test_the_signed_uri_must_include_the_query(wire: Wire) -> None:
    target = "/api/v1/task/dag/unfinish?show_details=true"

    missing = wire.call("GET", target, Uri=UNFINISHED)
    exact = wire.call("GET", target)

    assert_error(missing, 401, "Security.Authentication.Header.UriMismatch", code=10008)
    assert exact.status == 200


def test_a_wrong_password_is_refused(wire: Wire) -> None:
    reply = wire.call("POST", UPGRADE, {"version": "1"}, Auth="not-" + PASSWORD)

    assert_error(
        reply,
        401,
        "Security.Authentication.IncorrectOceanbasePassword",
        "Unauthorized: OceanBase password is incorrect",
        code=10008,
    )
    assert "not-" + PASSWORD not in reply.body.decode()


def test_an_expired_ts_is_refused_before_the_password(wire: Wire) -> None:
    reply = wire.call("POST", UPGRADE, {}, Ts=crypto.expiry(-60), Auth="wrong")

    assert_error(
        reply,
        401,
        "Security.Authentication.Expired",
        "Unauthorized: Authentication expired",
        code=10008,
    )


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("soon", 'parsing "soon": invalid syntax'),
        ("", 'parsing "": invalid syntax'),
        ("1_000", 'parsing "1_000": invalid syntax'),
        ("99999999999999999999", 'parsing "99999999999999999999": value out of range'),
    ],
)
def test_a_ts_that_is_not_an_int64_is_invalid(wire: Wire, ts: str, reason: str) -> None:
    reply = wire.call("GET", UNFINISHED, Ts=ts)

    assert_error(
        reply,
        401,
        "Security.Authentication.Timestamp.Invalid",
        f"Unauthorized: Invalid timestamp: {ts}, err: strconv.ParseInt: {reason}",
        code=10008,
    )


def test_a_missing_ts_is_invalid(wire: Wire) -> None:
    reply = wire.call("GET", UNFINISHED, Ts=DROP)

    assert_error(reply, 401, "Security.Authentication.Timestamp.Invalid", code=10008)


def test_a_far_future_ts_is_accepted(wire: Wire) -> None:
    assert wire.call("GET", UNFINISHED, Ts=crypto.expiry(86400 * 365)).status == 200


def test_an_empty_auth_skips_the_ts_check_and_fails_on_the_password(wire: Wire) -> None:
    reply = wire.call("GET", UNFINISHED, Auth="", Ts="expired-anyway")

    assert_error(
        reply, 401, "Security.Authentication.IncorrectOceanbasePassword", code=10008
    )


@pytest.mark.parametrize("ts", ["soon", "1"])
def test_an_empty_root_password_accepts_an_empty_auth_with_any_ts(
    agent_factory: AgentFactory, profile: str, ts: str
) -> None:
    wire = Wire(agent_factory(profile=profile, password=""), password="")

    assert wire.call("GET", UNFINISHED, Ts=ts).status == 200


def test_an_empty_root_password_still_checks_a_non_empty_auth(
    agent_factory: AgentFactory, profile: str
) -> None:
    wire = Wire(agent_factory(profile=profile, password=""), password="guess")

    expired = wire.call("GET", UNFINISHED, Ts="1")
    fresh = wire.call("GET", UNFINISHED)

    assert_error(expired, 401, "Security.Authentication.Expired", code=10008)
    assert_error(
        fresh, 401, "Security.Authentication.IncorrectOceanbasePassword", code=10008
    )


def test_the_same_header_and_body_can_be_replayed(wire: Wire) -> None:
    headers = {
        "X-OCS-Header": wire.encrypt_header(wire.header_fields(UNFINISHED, None))
    }

    replies = [wire.send("GET", UNFINISHED, headers=headers) for _ in range(2)]

    assert [reply.status for reply in replies] == [200, 200]


def test_the_sha256_field_is_ignored(wire: Wire) -> None:
    reply = wire.call(
        "POST",
        UPGRADE,
        dict(zip(("version", "release"), NEWER, strict=True)),
        Sha256="deadbeef",
    )

    assert reply.status == 200


@pytest.mark.parametrize("received", [99, 100])
def test_ts_is_an_inclusive_expiry(received: int) -> None:
    verifier = Verifier("CLUSTER AGENT", "pw", None)
    header = HttpHeader("oceanbase", auth="pw", ts="100", uri="/x")

    verifier.verify(header, request_uri="/x", received_at=received)


def test_ts_one_second_past_is_expired() -> None:
    verifier = Verifier("CLUSTER AGENT", "pw", None)
    header = HttpHeader("oceanbase", auth="pw", ts="100", uri="/x")

    with pytest.raises(AgentError, match="Authentication expired"):
        verifier.verify(header, request_uri="/x", received_at=101)


def test_header_repr_shows_no_secret() -> None:
    header = HttpHeader("oceanbase", auth="pw-secret", keys=b"k" * 32, uri="/x")

    assert "pw-secret" not in repr(header)
    assert "kkkk" not in repr(header)


# -- the agent header and the agent password -------------------------------------


def test_the_agent_header_checks_the_agent_password(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(agent_password="agent-pw"), password="agent-pw")

    right = wire.agent_call("GET", UNFINISHED)
    wrong = wire.agent_call("GET", UNFINISHED, Auth="nope")

    assert right.status == 200
    assert_error(
        wrong,
        401,
        "Security.Authentication.IncorrectAgentPassword",
        "Unauthorized: Agent password is incorrect",
        code=10008,
    )


def test_the_agent_header_wins_over_the_root_header(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(agent_password="agent-pw")
    wire = Wire(agent)
    root = wire.encrypt_header(wire.header_fields(UNFINISHED, None))
    wrong_agent = wire.encrypt_header(wire.header_fields(UNFINISHED, None, Auth="nope"))

    reply = wire.send(
        "GET",
        UNFINISHED,
        headers={"X-OCS-Header": root, "X-OCS-Agent-Header": wrong_agent},
    )

    assert_error(
        reply, 401, "Security.Authentication.IncorrectAgentPassword", code=10008
    )


def test_the_agent_header_without_an_agent_password_is_refused(wire: Wire) -> None:
    reply = wire.agent_call("GET", UNFINISHED)

    assert_error(
        reply,
        401,
        "Security.Authentication.WithOceanBasePassword",
        "Unauthorized: Should use oceanbase_password to verify: agent password is not initialized",
        code=10008,
    )


def test_obproxy_task_ids_need_the_agent_header(wire: Wire) -> None:
    target = "/api/v1/task/dag/4" + "0" * 20

    reply = wire.call("GET", target)

    assert_error(
        reply,
        401,
        "Security.Authentication.WithAgentPassword",
        "Unauthorized: Should use agent_password to verify: this route only support agent password",
        code=10008,
    )


# -- sessions and identities -----------------------------------------------------


def test_a_session_replaces_the_password_and_none_exists(wire: Wire) -> None:
    reply = wire.call("GET", UNFINISHED, session_id="00", Auth="wrong")

    assert_error(
        reply,
        401,
        "Security.Authentication.SessionInvalid",
        "Session is invalid",
        code=10008,
    )


@pytest.mark.parametrize("ts", ["1", "soon"])
def test_a_session_with_a_bad_ts_is_expired(wire: Wire, ts: str) -> None:
    reply = wire.call("GET", UNFINISHED, session_id="00", Ts=ts)

    assert_error(
        reply,
        401,
        "Security.Authentication.Expired",
        "Authentication expired",
        code=10008,
    )


def test_a_single_agent_lets_anything_through_and_refuses_to_upgrade(
    agent_factory: AgentFactory, profile: str
) -> None:
    agent = agent_factory(profile=profile, identity="SINGLE")
    wire = Wire(agent, password="anything")

    reply = wire.upgrade(*NEWER)

    envelope = assert_error(
        reply,
        400,
        "Agent.Identify.NotSupportOperation",
        f"'127.0.0.1:{agent.port}' is 'SINGLE', instead of 'CLUSTER AGENT', "
        "does not support this operation",
    )
    assert envelope["data"] is None


def test_a_single_agent_with_an_agent_password_wants_the_agent_header(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(identity="SINGLE", agent_password="a"), password="a")

    root = wire.call("GET", UNFINISHED)
    agent = wire.agent_call("GET", UNFINISHED)

    assert_error(root, 401, "Security.Authentication.WithAgentPassword", code=10008)
    assert agent.status == 200


def test_a_follower_without_a_master_cannot_forward(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(identity="FOLLOWER"))

    reply = wire.call("GET", UNFINISHED)

    assert_error(reply, 500, "Request.Forward.MasterAgent.NotFound")


def test_a_master_checks_the_root_password(agent_factory: AgentFactory) -> None:
    wire = Wire(agent_factory(identity="MASTER"), password="wrong")

    assert_error(
        wire.call("GET", UNFINISHED),
        401,
        "Security.Authentication.IncorrectOceanbasePassword",
        code=10008,
    )


# -- body decryption: e1-e5 ------------------------------------------------------


def _send_body(wire: Wire, body: bytes, keys: bytes | None) -> WireReply:
    fields = wire.header_fields(UPGRADE, None)
    if keys is not None:
        fields["Keys"] = crypto.b64encode(keys)
    headers = {"X-OCS-Header": wire.encrypt_header(fields)}
    return wire.send("POST", UPGRADE, headers=headers, body=body)


def _assert_recovery(agent: MockAgent, reply: WireReply) -> None:
    __tracebackhide__ = True
    envelope = assert_error(
        reply, 500, "Common.Unexpected", "Unexpected error: Internal Server Error"
    )
    assert envelope == agent.recovery_envelope
    assert reply.content_type == CHARSET_JSON


def _assert_early_error(
    reply: WireReply, status: int, err_code: str, message: str | None = None
) -> None:
    __tracebackhide__ = True
    envelope = assert_error(reply, status, err_code, message)
    assert envelope["traceId"] == ""
    assert "data" not in envelope
    assert reply.content_type == CHARSET_JSON


@pytest.mark.parametrize("keys", [None, b"k" * 8, b"k" * 15])
def test_e1_missing_or_short_keys(
    agent_factory: AgentFactory, profile: str, keys: bytes | None
) -> None:
    agent = agent_factory(profile=profile)

    reply = _send_body(Wire(agent), b"QUJD", keys)

    status = 400 if profile == "reference" else 500
    _assert_early_error(
        reply,
        status,
        "Request.Body.Decrypt.AES.KeyAndIv.Invalid",
        "Unauthorized: AES key and IV size error",
    )
    assert agent.dags() == []


@pytest.mark.parametrize("length", [16, 20, 31, 33, 48])
def test_e2_keys_of_the_wrong_size(
    agent_factory: AgentFactory, profile: str, length: int
) -> None:
    agent = agent_factory(profile=profile)
    body = crypto.aes_encrypt(crypto.AesKeys.random(), b"{}").encode()

    reply = _send_body(Wire(agent), body, b"k" * length)

    if profile == "reference":
        _assert_early_error(reply, 400, "Request.Body.Decrypt.AES.KeyAndIv.Invalid")
    else:
        _assert_recovery(agent, reply)
    assert agent.dags() == []


def test_e3_a_plain_json_body_under_a_valid_header(
    agent_factory: AgentFactory, profile: str
) -> None:
    agent = agent_factory(profile=profile)
    body = json.dumps(dict(zip(("version", "release"), NEWER, strict=True))).encode()

    reply = _send_body(Wire(agent), body, b"k" * 32)

    if profile == "reference":
        _assert_early_error(
            reply,
            400,
            "Request.Body.Decrypt.AES.Failed",
            "Unauthorized: Decrypt http body failed: illegal base64 data at input byte 0",
        )
    else:
        _assert_recovery(agent, reply)
    assert agent.dags() == []


def test_e4_a_body_that_is_not_whole_blocks(
    agent_factory: AgentFactory, profile: str
) -> None:
    agent = agent_factory(profile=profile)

    reply = _send_body(Wire(agent), b"QUJD", b"k" * 32)

    _assert_early_error(
        reply,
        400 if profile == "reference" else 500,
        "Request.Body.Decrypt.AES.ContentLength.Invalid",
        "Unauthorized: Decrypted string length is not a multiple of the block size",
    )


def _cbc(keys: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(keys[:16]), modes.CBC(keys[16:])).encryptor()
    return crypto.b64encode(encryptor.update(block) + encryptor.finalize()).encode()


@pytest.mark.parametrize(
    ("last_byte", "agent_outcome"),
    [(200, "panic"), (5, "EOF"), (0, "EOF")],
)
def test_e5_ciphertext_that_decrypts_to_garbage(
    agent_factory: AgentFactory, profile: str, last_byte: int, agent_outcome: str
) -> None:
    # What a foreign key produces, made deterministic: the last byte decides
    # whether the agent's unpadding panics or yields garbage (swallowed: EOF).
    agent = agent_factory(profile=profile)
    keys = crypto.AesKeys.random()
    body = _cbc(
        keys.key + keys.iv,
        b"\x01\x02garbage!!" + b"\x07\x06\x05\x04" + bytes([last_byte]),
    )

    reply = _send_body(Wire(agent), body, keys.key + keys.iv)

    if profile == "reference":
        _assert_early_error(
            reply,
            400,
            "Request.Body.Decrypt.AES.Failed",
            "Unauthorized: Decrypt http body failed: invalid PKCS#7 padding",
        )
    elif agent_outcome == "panic":
        _assert_recovery(agent, reply)
    else:
        assert_error(reply, 400, "Common.BindJsonFailed", "Bind JSON failed: EOF")
    assert agent.dags() == []


def test_the_recovery_timestamp_is_frozen_at_start(agent_factory: AgentFactory) -> None:
    agent = agent_factory(profile="obshell-4.5")
    wire = Wire(agent)

    first = _send_body(wire, b'{"a":1}', b"k" * 32)
    time.sleep(0.01)
    second = _send_body(wire, b'{"a":1}', b"k" * 20)

    fresh = assert_envelope(wire.send("GET", "/api/v1/info"))
    assert first.body == second.body
    assert first.envelope["timestamp"] == go_time_ns(
        agent.started_ns, agent.config.timezone
    )
    assert fresh["timestamp"] != first.envelope["timestamp"]


def test_an_empty_body_binds_as_an_empty_object(wire: Wire) -> None:
    reply = _send_body(wire, b"", None)

    assert_error(reply, 400, "Common.BindJsonFailed")
    assert "'Version'" in reply.message
    assert "'Release'" in reply.message


def test_an_absent_body_binds_as_an_empty_object(wire: Wire) -> None:
    reply = wire.call("POST", UPGRADE)

    assert_error(reply, 400, "Common.BindJsonFailed")


# -- Go's standard library, as the agent inherits it ------------------------------


@pytest.mark.parametrize(
    ("text", "decoded", "error"),
    [
        (b"Zm9vYmFy", b"foobar", None),
        (b"Zm9v\r\nYmFy", b"foobar", None),
        (b"QUJD", b"ABC", None),
        (b"QQ==", b"A", None),
        (b"", b"", None),
        (b"Zm9vYmF", b"foo", 4),
        (b'{"a":1}', b"", 0),
        (b"QQ=", b"", 3),
        (b"QQ==QUJD", b"A", 4),
        (b"Q===", b"", 1),
        (b"Zm9v-_", b"foo", 4),
    ],
)
def test_base64_decodes_as_go_does(
    text: bytes, decoded: bytes, error: int | None
) -> None:
    expected_error = (
        None if error is None else f"illegal base64 data at input byte {error}"
    )

    assert go_base64_decode(text) == (decoded, expected_error)


@pytest.mark.parametrize(
    ("text", "value", "reason"),
    [
        ("12", 12, None),
        ("+7", 7, None),
        ("-0", 0, None),
        ("", 0, "invalid syntax"),
        ("1.0", 0, "invalid syntax"),
        ("٣", 0, "invalid syntax"),
        ("9223372036854775807", 2**63 - 1, None),
        ("9223372036854775808", 2**63 - 1, "value out of range"),
    ],
)
def test_parse_int_is_go_strconv(text: str, value: int, reason: str | None) -> None:
    assert go_parse_int(text) == (value, reason)


def test_struct_decoding_keeps_going_after_a_type_error() -> None:
    struct = StructType(
        "T", "pkg.T", (StructField("a", "string"), StructField("b", "string"))
    )

    fields, error = decode_struct(decode_first('{"a":1,"B":"x","b":"y","c":2}'), struct)

    assert fields == {"b": "y"}
    assert (
        error == "json: cannot unmarshal number into Go struct field T.a of type string"
    )


def test_decoding_rejects_nan_and_replaces_lone_surrogates() -> None:
    assert decode_first('"\\ud800x"') == "\ufffdx"
    with pytest.raises(ValueError, match="invalid character"):
        decode_first("NaN")
