"""ObshellAuth on plain ``requests``: header choice, Uri, Keys, key fetching, resend."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from obshell_contract.auth import (
    OCS_AGENT_HEADER,
    OCS_HEADER,
    ObshellAuth,
    exchange_of,
    is_decrypt_failed,
)
from obshell_contract.crypto import load_public_key
from obshell_contract.errors import TransportError
from obshell_contract.recording import Recorder
from tests.support.recording_server import OK_ENVELOPE, RecordingServer

PASSWORD = "root-Pw#1"
AGENT_PASSWORD = "agent-Pw#2"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer(1024) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_uri_is_the_request_target_with_its_query(
    server: RecordingServer, session: requests.Session
) -> None:
    auth = ObshellAuth(PASSWORD)
    session.get(
        f"{server.url}/api/v1/task/dag/11?show_details=true",
        params={"b": "x y", "a": "é/?"},
        auth=auth,
    )

    received = server.last
    assert "?" in received.target
    assert received.header_fields is not None
    assert received.header_fields["Uri"] == received.target
    assert received.target.startswith("/api/v1/task/dag/11?show_details=true&b=x")


def test_get_without_body_sends_no_keys_and_no_body(
    server: RecordingServer, session: requests.Session
) -> None:
    session.get(f"{server.url}/api/v1/task/dag/unfinish", auth=ObshellAuth(PASSWORD))

    received = server.last
    assert received.header_fields is not None
    assert set(received.header_fields) == {"Auth", "Ts", "Uri"}
    assert received.raw_body == b""
    assert "content-type" not in received.headers


def test_post_body_is_encrypted_with_content_type_and_length(
    server: RecordingServer, session: requests.Session
) -> None:
    session.post(
        f"{server.url}/api/v1/agent/upgrade",
        json={"version": "4.3.1.0", "release": "1.el7"},
        auth=ObshellAuth(PASSWORD),
    )

    received = server.last
    assert received.headers["content-type"] == "application/json"
    assert int(received.headers["content-length"]) == len(received.raw_body)
    assert received.raw_body.isascii()
    assert received.body_json == {"version": "4.3.1.0", "release": "1.el7"}
    assert received.keys is not None
    assert len(received.keys) == 32


def test_post_without_body_has_no_keys(
    server: RecordingServer, session: requests.Session
) -> None:
    session.post(f"{server.url}/api/v1/agent/upgrade", auth=ObshellAuth(PASSWORD))

    received = server.last
    assert received.raw_body == b""
    assert received.headers["content-length"] == "0"
    assert received.header_fields is not None
    assert "Keys" not in received.header_fields


def test_root_password_goes_in_x_ocs_header(
    server: RecordingServer, session: requests.Session
) -> None:
    auth = ObshellAuth(PASSWORD, lifetime=25)
    before = int(time.time())
    session.get(f"{server.url}/api/v1/ob/info", auth=auth)

    received = server.last
    assert auth.header_name == received.header_name == OCS_HEADER
    assert list(received.ocs_headers) == [OCS_HEADER]
    assert received.header_field("Auth") == PASSWORD
    assert isinstance(received.header_field("Ts"), str)
    assert before + 25 <= int(received.header_field("Ts")) <= int(time.time()) + 25


def test_agent_password_switches_to_the_agent_header(
    server: RecordingServer, session: requests.Session
) -> None:
    auth = ObshellAuth(PASSWORD, agent_password=AGENT_PASSWORD)
    session.get(f"{server.url}/api/v1/obproxy/info", auth=auth)

    received = server.last
    assert auth.header_name == received.header_name == OCS_AGENT_HEADER
    assert list(received.ocs_headers) == [OCS_AGENT_HEADER]
    assert received.header_field("Auth") == AGENT_PASSWORD


def test_chunk_size_is_honoured(
    server: RecordingServer, session: requests.Session
) -> None:
    session.get(f"{server.url}/api/v1/info", auth=ObshellAuth(PASSWORD, chunk_size=53))

    sizes = server.last.header_chunk_sizes
    assert len(sizes) > 1
    assert all(size <= 53 for size in sizes)
    assert sizes[0] == 53


def test_public_key_is_fetched_once_per_auth(
    server: RecordingServer, session: requests.Session
) -> None:
    auth = ObshellAuth(PASSWORD)
    for _ in range(3):
        session.get(f"{server.url}/api/v1/info", auth=auth)

    assert server.secret_fetches == 1
    assert auth.key_fetches == 1

    session.get(f"{server.url}/api/v1/info", auth=ObshellAuth(PASSWORD))
    assert server.secret_fetches == 2


def test_concurrent_first_requests_fetch_the_key_once(server: RecordingServer) -> None:
    auth = ObshellAuth(PASSWORD)
    statuses: list[int] = []

    def call() -> None:
        with requests.Session() as session:
            statuses.append(
                session.get(f"{server.url}/api/v1/info", auth=auth).status_code
            )

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 8
    assert server.secret_fetches == 1


def test_a_pinned_key_is_used_without_fetching(
    server: RecordingServer, session: requests.Session
) -> None:
    key = load_public_key(server.public_key_b64())
    session.get(f"{server.url}/api/v1/info", auth=ObshellAuth(PASSWORD, public_key=key))

    assert server.secret_fetches == 0
    assert server.last.header_error is None


@pytest.mark.parametrize("legacy", [False, True], ids=["errCode", "legacy-code-1"])
def test_decrypt_failed_refetches_the_key_and_resends_once(
    server: RecordingServer, session: requests.Session, legacy: bool
) -> None:
    auth = ObshellAuth(PASSWORD)
    session.get(f"{server.url}/api/v1/info", auth=auth)
    server.clear()
    server.fail_next(1, legacy=legacy)

    response = session.post(
        f"{server.url}/api/v1/agent/upgrade", json={"version": "1"}, auth=auth
    )

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert server.secret_fetches == 1
    assert auth.resends == 1
    first, second = server.received
    assert first.body == second.body == b'{"version": "1"}'
    # A fresh encryption: new AES keys, new ciphertext.
    assert first.keys != second.keys
    assert first.raw_body != second.raw_body


def test_decrypt_failed_is_never_resent_twice(
    server: RecordingServer, session: requests.Session
) -> None:
    auth = ObshellAuth(PASSWORD)
    server.fail_next(5)

    response = session.post(f"{server.url}/api/v1/agent/upgrade", json={}, auth=auth)

    assert response.status_code == 401
    assert len(server.received) == 2
    assert server.secret_fetches == 2
    assert auth.resends == 1


def test_other_401s_are_not_resent(
    server: RecordingServer, session: requests.Session
) -> None:
    server.answer_status = 401
    server.answer = {
        **OK_ENVELOPE,
        "status": 401,
        "error": {"code": 10008, "errCode": "Security.Authentication.Expired"},
    }

    response = session.get(f"{server.url}/api/v1/info", auth=ObshellAuth(PASSWORD))

    assert response.status_code == 401
    assert not is_decrypt_failed(response)
    assert len(server.received) == 1


def test_a_rotated_key_is_picked_up(
    server: RecordingServer, session: requests.Session
) -> None:
    auth = ObshellAuth(PASSWORD)
    session.get(f"{server.url}/api/v1/info", auth=auth)
    server.rotate_key(1024)

    response = session.post(f"{server.url}/api/v1/agent/upgrade", json={}, auth=auth)

    assert response.status_code == 200
    assert server.last.key_generation == 2
    assert server.last.header_error is None
    assert server.secret_fetches == 2


def test_every_exchange_is_recorded(
    server: RecordingServer, session: requests.Session
) -> None:
    recorder = Recorder()
    auth = ObshellAuth(PASSWORD, recorder=recorder)
    server.fail_next(1)

    response = session.post(f"{server.url}/api/v1/agent/upgrade", json={}, auth=auth)

    labels = [(e.uri, e.status, e.label) for e in recorder]
    assert labels == [
        ("/api/v1/secret", 200, "public key fetch"),
        ("/api/v1/agent/upgrade", 401, ""),
        ("/api/v1/secret", 200, "public key fetch"),
        ("/api/v1/agent/upgrade", 200, "resent after DecryptFailed"),
    ]
    assert exchange_of(response) is recorder.last


def test_repr_hides_the_passwords() -> None:
    auth = ObshellAuth(PASSWORD, agent_password=AGENT_PASSWORD)

    assert PASSWORD not in repr(auth)
    assert AGENT_PASSWORD not in repr(auth)
    assert OCS_AGENT_HEADER in repr(auth)


def test_unreachable_agent_raises_transport_error_naming_the_url(
    session: requests.Session,
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"

    with pytest.raises(TransportError, match=f"GET {url}/api/v1/secret"):
        session.get(f"{url}/api/v1/info", auth=ObshellAuth(PASSWORD))


def test_a_secret_without_a_key_raises_transport_error(
    server: RecordingServer, session: requests.Session
) -> None:
    server.responder = lambda received: (200, "not json")
    # The responder sees only non-secret requests: break the secret route itself.
    server.public_key_b64 = lambda: "not base64!"  # type: ignore[method-assign]

    with pytest.raises(TransportError, match=r"data\.public_key"):
        session.get(f"{server.url}/api/v1/info", auth=ObshellAuth(PASSWORD))


def test_a_changed_password_is_masked_too(
    server: RecordingServer, session: requests.Session
) -> None:
    recorder = Recorder()
    auth = ObshellAuth(PASSWORD, recorder=recorder)
    auth.password = "changed-Pw#3"
    server.echo_secrets = True

    session.post(f"{server.url}/api/v1/agent/upgrade", json={}, auth=auth)

    assert server.last.header_field("Auth") == "changed-Pw#3"
    assert "changed-Pw#3" not in json.dumps(recorder.to_list())
    assert recorder.redactor.text("was changed-Pw#3") == "was [redacted]"
