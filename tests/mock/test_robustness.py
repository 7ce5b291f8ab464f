"""Random requests at the mock: it never crashes, always answers an envelope, never leaks.

Hypothesis sends random methods, paths, headers and bodies, then random but
correctly encrypted headers and bodies (so that ``Verify`` and the upgrade
binding are reached). Every answer must be a schema-valid envelope whose
``status`` is the HTTP status, no handler may raise, and neither password may
appear in any answer, raw or JSON-escaped.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obshell_contract import crypto
from obshell_contract.mock import MockAgent
from obshell_contract.mock.gostd import marshal
from tests.mock.wire import PROFILES, UPGRADE, Wire, WireReply, assert_envelope

# Characters JSON and Go escape, so that every escaped form is searched too.
PASSWORD = 'pw-<&>"\\-\u2028-Zq8'
AGENT_PASSWORD = "agent-pw-Kx7"
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# Encrypting costs more per example; fewer of them still reach every check.
ENCRYPTED_SETTINGS = settings(SETTINGS, max_examples=60)

ROUTES = [
    "/api/v1/secret",
    "/api/v1/info",
    "/api/v1/status",
    "/api/v1/time",
    UPGRADE,
    "/api/v1/agent/upgrade/check",
    "/api/v1/task/dag/11",
    "/api/v1/task/dag/unfinish",
    "/api/v1/task/dag/maintain/ob",
    "/api/v1/task/node/11",
    "/api/v1/task/sub_task/11",
    "/api/v1/agent/upgrade/",
]
HEADER_KEYS = [
    "Auth",
    "Ts",
    "Uri",
    "Keys",
    "session_id",
    "Token",
    "Sha256",
    "ForwardType",
    "ForwardAgent",
    "auth",
    "ts",
    "uri",
    "keys",
]

_PATH_CHARS = string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@/?"
_TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
_LATIN1_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F)) + "".join(
    chr(c) for c in range(0xA0, 0x100)
)

methods = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]
) | st.text(string.ascii_uppercase, min_size=1, max_size=8)
paths = st.one_of(
    st.sampled_from(ROUTES),
    st.builds(
        lambda route, tail: route + tail,
        st.sampled_from(ROUTES),
        st.text(_PATH_CHARS, max_size=20),
    ),
    st.text(_PATH_CHARS, max_size=40).map(lambda tail: "/" + tail),
)
header_values = st.text(_LATIN1_PRINTABLE, max_size=60).map(str.strip)
headers = st.dictionaries(
    st.sampled_from(
        [
            "X-OCS-Header",
            "X-OCS-Agent-Header",
            "X-OBSHELL-Trace-ID",
            "Content-Type",
            "Accept-Language",
        ]
    )
    | st.text(_TOKEN, min_size=1, max_size=12),
    header_values | st.binary(max_size=200).map(crypto.b64encode),
    max_size=4,
)
bodies = (
    st.none()
    | st.binary(max_size=300)
    | st.binary(max_size=300).map(lambda b: crypto.b64encode(b).encode())
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module", params=PROFILES)
def mock(request: pytest.FixtureRequest) -> Iterator[MockAgent]:
    """One agent per profile for every example: its state carries over."""
    agent = MockAgent(
        profile=request.param,
        password=PASSWORD,
        agent_password=AGENT_PASSWORD,
        stage_seconds=0.01,
    )
    with agent:
        yield agent
    assert agent.handler_errors == []


@pytest.fixture(scope="module")
def wire(mock: MockAgent) -> Wire:
    """One client per agent, so that the public key is fetched once."""
    return Wire(mock, PASSWORD)


def _forms(secret: str) -> list[bytes]:
    go = marshal(secret)[1:-1]
    return [secret.encode(), json.dumps(secret)[1:-1].encode(), go]


def assert_sound(mock: MockAgent, method: str, reply: WireReply) -> None:
    """An envelope (or gin's redirect), no handler error, no password."""
    __tracebackhide__ = True
    assert mock.handler_errors == [], mock.handler_errors
    answer = reply.body + repr(reply.headers).encode()
    for secret in (PASSWORD, AGENT_PASSWORD):
        for form in _forms(secret):
            assert form not in answer, f"{secret!r} leaked: {answer!r}"

    if reply.status in (301, 307):
        assert mock.profile.redirect_trailing_slash
        assert reply.headers["location"].startswith("/")
        return
    if method == "HEAD":
        assert reply.body == b""
        return
    assert_envelope(reply)


@SETTINGS
@given(method=methods, path=paths, extra=headers, body=bodies)
def test_random_requests(
    mock: MockAgent,
    wire: Wire,
    method: str,
    path: str,
    extra: dict[str, str],
    body: bytes | None,
) -> None:
    reply = wire.send(method, path, headers=extra, body=body)

    assert_sound(mock, method, reply)


@ENCRYPTED_SETTINGS
@given(
    path=st.sampled_from(ROUTES),
    fields=st.dictionaries(
        st.sampled_from(HEADER_KEYS) | st.text(max_size=8), json_values, max_size=6
    ),
    valid_base=st.booleans(),
    header_name=st.sampled_from(["X-OCS-Header", "X-OCS-Agent-Header"]),
    body=bodies,
)
def test_random_encrypted_headers(
    mock: MockAgent,
    wire: Wire,
    path: str,
    fields: dict[str, Any],
    valid_base: bool,
    header_name: str,
    body: bytes | None,
) -> None:
    base = wire.header_fields(path, crypto.AesKeys.random()) if valid_base else {}
    header = wire.encrypt_header({**base, **fields})

    reply = wire.send("POST", path, headers={header_name: header}, body=body)

    assert_sound(mock, "POST", reply)


upgrade_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "version": json_values | st.text(string.digits + ".", max_size=12),
            "release": json_values | st.text(string.digits + ".el", max_size=12),
        },
        optional={"upgradeDir": json_values | st.text(max_size=12)},
    ),
)


@SETTINGS
@given(
    payload=upgrade_bodies,
    route=st.sampled_from([UPGRADE, UPGRADE + "/check", "/api/v1/task/dag/11"]),
)
def test_random_encrypted_bodies(
    mock: MockAgent, wire: Wire, payload: Any, route: str
) -> None:
    reply = wire.call("POST", route, raw_plaintext=json.dumps(payload).encode())

    assert_sound(mock, "POST", reply)
    # The reference profile answers a client's mistakes with a 4xx: its only
    # 500 is the maintenance lock (a DAG from an earlier example still runs).
    if mock.profile.name == "reference" and reply.status >= 500:
        assert reply.err_code == "OB.Cluster.UnderMaintenanceWithDag", reply.body
