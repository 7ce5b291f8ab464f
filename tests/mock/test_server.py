"""The mock's HTTP layer: endpoints, routing, envelope bytes, lifecycle, logging."""

from __future__ import annotations

import base64
import http.client
import logging
import re
import socket
import threading
from datetime import timedelta, timezone

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from obshell_contract import schemas
from obshell_contract.mock import MockAgent, MockConfig, default_package
from obshell_contract.mock.errors import AgentError
from obshell_contract.mock.server import go_time_ns
from tests.mock.wire import (
    NEWER,
    PASSWORD,
    UPGRADE,
    AgentFactory,
    Wire,
    assert_envelope,
    assert_error,
)

TRACE_ID = re.compile(r"[0-9a-f]{16}")
RFC3339_NANO = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)"
)
INFO_KEYS = [
    "pid",
    "state",
    "startAt",
    "homePath",
    "obVersion",
    "architecture",
    "ip",
    "port",
    "zone",
    "identity",
    "version",
    "isObproxyAgent",
    "security",
    "supportedAuth",
]
STATUS_KEYS = [
    "agent",
    "state",
    "version",
    "pid",
    "startAt",
    "port",
    "obState",
    "sqlPort",
    "underMaintenance",
]


# -- unauthenticated endpoints ---------------------------------------------------


@pytest.mark.parametrize("bits", [512, 1024])
def test_secret_is_a_pkcs1_public_key_of_the_configured_size(
    agent_factory: AgentFactory, profile: str, bits: int
) -> None:
    agent = agent_factory(profile=profile, key_bits=bits)

    reply = Wire(agent).send("GET", "/api/v1/secret")

    envelope = assert_envelope(reply)
    assert "error" not in envelope
    assert list(reply.data) == ["ip", "port", "public_key"]
    assert (reply.data["ip"], reply.data["port"]) == ("127.0.0.1", agent.port)
    der = base64.b64decode(reply.data["public_key"], validate=True)
    key = serialization.load_der_public_key(_pkcs1_to_spki(der))
    assert isinstance(key, rsa.RSAPublicKey)
    assert (key.key_size, key.public_numbers().e) == (bits, 65537)
    assert schemas.violations(reply.data, schemas.AGENT_SECRET) == []


def _pkcs1_to_spki(der: bytes) -> bytes:
    # PKCS#1 RSAPublicKey DER loads through PEM only; prove it is PKCS#1 that way.
    pem = b"-----BEGIN RSA PUBLIC KEY-----\n"
    pem += base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
    key = serialization.load_pem_public_key(pem)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_info_reports_a_cluster_agent_in_the_agents_key_order(wire: Wire) -> None:
    reply = wire.send("GET", "/api/v1/info")

    assert_envelope(reply)
    data = reply.data
    assert list(data) == INFO_KEYS
    assert data["identity"] == "CLUSTER AGENT"
    assert re.fullmatch(r"\d+(\.\d+)+-\d+", data["version"])
    assert data["supportedAuth"] == ["v2"]
    assert data["startAt"] > 10**18, "startAt is in nanoseconds"
    assert data["security"] is False
    assert schemas.violations(data, schemas.AGENT_INFO) == []


def test_info_security_says_whether_an_agent_password_is_set(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(agent_password="agent-pw")

    assert Wire(agent).send("GET", "/api/v1/info").data["security"] is True


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_status_on_the_bare_path_has_an_empty_trace_id(wire: Wire, method: str) -> None:
    reply = wire.send(method, "/api/v1/status", headers={"X-OBSHELL-Trace-ID": "abc"})

    envelope = assert_envelope(reply)
    assert envelope["traceId"] == ""
    assert list(reply.data) == STATUS_KEYS
    assert reply.data["version"] == wire.agent.version
    assert schemas.violations(reply.data, schemas.AGENT_STATUS) == []


def test_status_with_a_query_gets_a_trace_id(wire: Wire) -> None:
    reply = wire.send("GET", "/api/v1/status?ob_query_timeout=1")

    assert TRACE_ID.fullmatch(assert_envelope(reply)["traceId"])


def test_time_is_the_server_clock_in_rfc3339(wire: Wire) -> None:
    reply = wire.send("GET", "/api/v1/time")

    assert_envelope(reply)
    assert RFC3339_NANO.fullmatch(reply.data)


# -- routing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", UPGRADE),  # wrong method: gin has no 405
        ("PUT", "/api/v1/info"),
        ("DELETE", "/api/v1/task/dag/11"),
        ("GET", "/api/v1/nothing"),
        ("POST", "/api/v1/agent/upgrade/nothing"),
        ("GET", "/api/v1/task/dag/11/extra"),
        ("GET", "/not-api"),
        ("BREW", "/api/v1/info"),
    ],
)
def test_unknown_routes_get_the_agents_404_envelope(
    wire: Wire, method: str, target: str
) -> None:
    reply = wire.send(method, target)

    envelope = assert_error(
        reply, 404, "Common.NotFound", "Element not found: 404 not found"
    )
    assert "data" not in envelope


def test_a_404_still_runs_header_decryption_first(wire: Wire) -> None:
    reply = wire.send("GET", "/api/v1/nothing", headers={"X-OCS-Header": "Zm9vYmFy"})

    assert_error(reply, 401, "Security.Authentication.Header.DecryptFailed", code=1)


def test_head_gets_headers_without_a_body(wire: Wire) -> None:
    reply = wire.send("HEAD", "/api/v1/info")

    assert reply.status == 404
    assert reply.body == b""
    assert int(reply.headers["content-length"]) > 0


def test_percent_encoded_paths_route_like_gin(wire: Wire) -> None:
    reply = wire.send("GET", "/api/v1/%69nfo")

    assert assert_envelope(reply)["successful"] is True


@pytest.mark.parametrize(
    ("method", "target", "status", "location"),
    [
        ("POST", "/api/v1/agent/upgrade/", 307, "/api/v1/agent/upgrade"),
        ("GET", "/api/v1/info/?a=1", 301, "/api/v1/info?a=1"),
    ],
)
def test_trailing_slash_redirects_without_an_envelope_on_obshell_45(
    agent_factory: AgentFactory, method: str, target: str, status: int, location: str
) -> None:
    wire = Wire(agent_factory(profile="obshell-4.5"))

    reply = wire.send(method, target)

    assert (reply.status, reply.headers["location"]) == (status, location)
    assert not reply.body.startswith(b"{")


def test_trailing_slash_is_a_plain_404_in_reference(
    agent_factory: AgentFactory,
) -> None:
    wire = Wire(agent_factory(profile="reference"))

    reply = wire.send("POST", "/api/v1/agent/upgrade/")

    assert_error(reply, 404, "Common.NotFound")


# -- envelope bytes --------------------------------------------------------------


def test_envelope_keys_are_in_the_agents_order_and_compact(wire: Wire) -> None:
    reply = wire.send("POST", UPGRADE, body=b"{}")

    text = reply.body.decode()
    assert text.startswith('{"successful":false,"timestamp":"')
    keys = [m.group(1) for m in re.finditer(r'"(\w+)":', text)][:6]
    assert keys == ["successful", "timestamp", "duration", "status", "traceId", "error"]
    assert ": " not in text
    assert ", " not in text


def test_success_envelope_keys_end_with_data(wire: Wire) -> None:
    reply = wire.send("GET", "/api/v1/time")

    keys = list(reply.envelope)
    assert keys == ["successful", "timestamp", "duration", "status", "traceId", "data"]


def test_html_characters_are_escaped_as_go_does(agent_factory: AgentFactory) -> None:
    # obshell-4.5 compares a malformed version and quotes it back.
    wire = Wire(agent_factory(profile="obshell-4.5"))

    reply = wire.upgrade("<b>&", "1.el7")

    assert b"\\u003cb\\u003e\\u0026-1" in reply.body
    assert b"<" not in reply.body
    assert b"&" not in reply.body
    assert reply.message.startswith("Target version <b>&-1 is not greater")


@pytest.mark.parametrize(
    ("zone", "suffix"),
    [
        (timezone.utc, "Z"),
        (timezone(timedelta(hours=8)), "+08:00"),
        (timezone(timedelta(hours=-3, minutes=-30)), "-03:30"),
    ],
)
def test_timestamps_carry_the_configured_zone(
    agent_factory: AgentFactory, zone: timezone, suffix: str
) -> None:
    wire = Wire(agent_factory(timezone=zone))

    envelope = assert_envelope(wire.send("GET", "/api/v1/info"))

    assert RFC3339_NANO.fullmatch(envelope["timestamp"])
    assert envelope["timestamp"].endswith(suffix)


def test_go_time_trims_nanoseconds_like_go() -> None:
    utc = timezone.utc

    assert go_time_ns(0, utc) == "1970-01-01T00:00:00Z"
    assert go_time_ns(1_500_000_000, utc) == "1970-01-01T00:00:01.5Z"
    assert go_time_ns(123_456_789, timezone(timedelta(hours=8))) == (
        "1970-01-01T08:00:00.123456789+08:00"
    )


def test_trace_id_is_echoed_or_sixteen_hex(wire: Wire) -> None:
    echoed = wire.send("GET", "/api/v1/info", headers={"X-OBSHELL-Trace-ID": "abc"})
    fresh = [wire.send("GET", "/api/v1/info").envelope["traceId"] for _ in range(3)]

    assert echoed.envelope["traceId"] == "abc"
    assert all(TRACE_ID.fullmatch(trace) for trace in fresh)
    assert len(set(fresh)) == 3


def test_content_types_follow_the_middleware_order(wire: Wire) -> None:
    early = wire.send("POST", UPGRADE, headers={"X-OCS-Header": "Zm9vYmFy"})
    late = wire.send("POST", UPGRADE)

    assert early.content_type == "application/json; charset=utf-8"
    assert early.envelope["traceId"] == ""
    assert late.content_type == "application/json"


# -- HTTP behaviour --------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(wire: Wire) -> None:
    connection = http.client.HTTPConnection(wire.host, wire.port, timeout=5)
    try:
        connection.request("GET", "/api/v1/info")
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        connection.request("POST", UPGRADE, body=b"{}")
        second = connection.getresponse()
        second.read()
    finally:
        connection.close()

    assert (first.status, second.status) == (200, 400)
    assert sock is not None
    assert connection.sock is None


def test_requests_session_reuses_its_connection(wire: Wire) -> None:
    with requests.Session() as session:
        session.trust_env = False
        replies = [session.get(wire.agent.url + "/api/v1/info") for _ in range(5)]

    assert [r.status_code for r in replies] == [200] * 5
    assert len(wire.agent.request_log()) == 5


def test_chunked_bodies_are_read(wire: Wire) -> None:
    connection = http.client.HTTPConnection(wire.host, wire.port, timeout=5)
    try:
        connection.request(
            "POST",
            UPGRADE,
            body=iter([b"{", b"}"]),
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()

    assert response.status == 400
    assert b"Request.Header.NotFound" in body


def test_many_threads_are_served_at_once(wire: Wire) -> None:
    statuses: list[int] = []

    def fetch() -> None:
        statuses.append(wire.send("GET", "/api/v1/info").status)

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 20


# -- the in-process API ----------------------------------------------------------


def test_default_package_is_one_newer_than_the_agent() -> None:
    assert default_package("4.5.0.0-100000012026050801") == "-".join(NEWER)
    assert MockAgent().packages == frozenset({"-".join(NEWER)})


def test_config_repr_hides_the_passwords() -> None:
    text = repr(MockConfig(password="sekrit-1", agent_password="sekrit-2"))

    assert "sekrit" not in text
    assert "sekrit" not in repr(MockAgent(password="sekrit-1"))


def test_engine_exists_only_after_start() -> None:
    agent = MockAgent()

    with pytest.raises(RuntimeError, match=r"after start\(\)"):
        agent.engine  # noqa: B018


def test_start_twice_is_refused_and_stop_twice_is_harmless(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory()

    with pytest.raises(RuntimeError, match="already started"):
        agent.start()
    agent.stop()
    agent.stop()


def test_stop_closes_idle_keep_alive_connections(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    connection = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=5)
    connection.request("GET", "/api/v1/info")
    connection.getresponse().read()

    agent.stop()

    try:
        connection.request("GET", "/api/v1/info")
        with pytest.raises((http.client.HTTPException, OSError)):
            connection.getresponse()
    finally:
        connection.close()


def test_context_manager_starts_and_stops() -> None:
    with MockAgent(stage_seconds=0) as agent:
        url = agent.url
        assert requests.get(url + "/api/v1/info", timeout=5).status_code == 200

    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/api/v1/info", timeout=5)


def test_upgrade_dag_has_one_sub_task_per_agent(agent_factory: AgentFactory) -> None:
    wire = Wire(agent_factory(agents=3))

    dag_id = wire.upgrade(*NEWER).data["id"]
    dag = wire.call("GET", f"/api/v1/task/dag/{dag_id}").data

    assert [len(node["sub_tasks"]) for node in dag["nodes"]] == [3] * 9
    assert len(wire.agent.dags()) == 1


# -- never failing silently ------------------------------------------------------


def _break_info(agent: MockAgent) -> None:
    def broken() -> dict[str, object]:
        raise ValueError("boom")

    agent.info = broken  # type: ignore[method-assign]


def test_a_handler_error_is_a_logged_500_and_kept(
    agent_factory: AgentFactory, caplog: pytest.LogCaptureFixture
) -> None:
    agent = agent_factory(profile="reference")
    _break_info(agent)

    with caplog.at_level(logging.ERROR, logger="obshell_contract"):
        reply = Wire(agent).send("GET", "/api/v1/info")

    envelope = assert_error(
        reply, 500, "Common.Unexpected", "Unexpected error: Internal Server Error"
    )
    assert TRACE_ID.fullmatch(envelope["traceId"])
    assert [type(e) for e in agent.handler_errors] == [ValueError]
    assert any("raised ValueError" in r.getMessage() for r in caplog.records)
    agent.handler_errors.clear()


def test_a_handler_error_on_obshell_45_is_the_frozen_recovery_envelope(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(profile="obshell-4.5")
    _break_info(agent)

    replies = [Wire(agent).send("GET", "/api/v1/info") for _ in range(2)]

    envelopes = [assert_error(r, 500, "Common.Unexpected") for r in replies]
    assert envelopes[0] == envelopes[1] == agent.recovery_envelope
    assert envelopes[0]["duration"] == 0
    assert envelopes[0]["traceId"] == ""
    assert len(agent.handler_errors) == 2
    agent.handler_errors.clear()


def test_agent_errors_from_handlers_are_answered_not_kept(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory()

    def refusing() -> dict[str, object]:
        raise AgentError("Test.Refused", 409, "no")

    agent.info = refusing  # type: ignore[method-assign]

    assert_error(Wire(agent).send("GET", "/api/v1/info"), 409, "Test.Refused", "no")
    assert agent.handler_errors == []


# -- the request log -------------------------------------------------------------


def test_request_log_has_one_entry_per_request_without_secrets(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="obshell_contract"):
        wire.upgrade(*NEWER)
        wire.call("POST", UPGRADE, {"version": "1"}, Auth="wrong-" + PASSWORD)

    log = wire.agent.request_log()
    assert [entry["path"] for entry in log][-2:] == [UPGRADE, UPGRADE]
    assert set(log[-1]) == {"method", "path", "status", "errCode", "ms"}
    assert (log[-1]["status"], log[-1]["errCode"]) == (
        401,
        "Security.Authentication.IncorrectOceanbasePassword",
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "obshell_contract"]
    assert any(f"POST {UPGRADE} 200 -" in line for line in lines)
    assert not any(PASSWORD in line for line in lines)
    assert PASSWORD not in repr(log)


def test_an_ipv6_agent_names_itself_in_brackets(agent_factory: AgentFactory) -> None:
    try:
        agent = agent_factory(host="::1", identity="SINGLE")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    wire = Wire(agent)

    reply = wire.upgrade(*NEWER)

    assert agent.url == f"http://[::1]:{agent.port}"
    assert reply.message.startswith(f"'[::1]:{agent.port}' is 'SINGLE', instead of")


@pytest.mark.parametrize(
    "head",
    [
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"Content-Length: -4\r\n\r\n",
        b"Content-Length: many\r\n\r\n",
    ],
)
def test_malformed_framing_is_a_plain_400_not_a_handler_error(
    wire: Wire, head: bytes
) -> None:
    with socket.create_connection((wire.host, wire.port), timeout=5) as sock:
        sock.sendall(b"POST " + UPGRADE.encode() + b" HTTP/1.1\r\nHost: x\r\n" + head)
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"\r\n\r\n400 Bad Request")
    assert wire.agent.handler_errors == []
