"""ObshellClient: typed calls on the wire, replies, evidence, transport errors, DAGs."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from obshell_contract.client import ObshellClient, Reply
from obshell_contract.errors import TransportError, UsageError
from obshell_contract.forgery import GARBAGE_HEADER, send_forged
from obshell_contract.recording import Recorder
from tests.support.recording_server import (
    DECRYPT_FAILED_ENVELOPE,
    OK_ENVELOPE,
    Answer,
    Received,
    RecordingServer,
)

PASSWORD = 'root-"<&é>-Zq9'
NODE_NAMES = [
    "Create upgrade dir",
    "Download all required packages",
    "Check all required packages",
    "Unpack all required packages",
    "Backup for upgrade",
    "Install new obshell",
    "Restart obshell",
    "Upgrade post table maintain",
    "Remove upgrade check task dir",
]


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    with RecordingServer(1024) as server:
        yield server


@pytest.fixture
def fresh(server: RecordingServer) -> RecordingServer:
    server.clear()
    server.answer_status, server.answer = 200, OK_ENVELOPE
    server.responder = None
    server.echo_secrets = False
    server.fail_next(0)
    return server


@pytest.fixture
def client(fresh: RecordingServer) -> Iterator[ObshellClient]:
    with ObshellClient(fresh.url, PASSWORD) as client:
        yield client


def _closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# -- typed calls on the wire ------------------------------------------------------------


def test_upgrade_agent_sends_version_and_release_only(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    reply = client.upgrade_agent("4.3.1.0", "100000012025010101.el7")

    assert reply.http_status == 200
    assert (fresh.last.method, fresh.last.target) == ("POST", "/api/v1/agent/upgrade")
    assert (
        fresh.last.body == b'{"version":"4.3.1.0","release":"100000012025010101.el7"}'
    )


def test_upgrade_agent_with_dir_and_extra_keys(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    client.upgrade_agent("4.3.1.0", "1.el7", "/data/upg", extra={"extra": 1})

    assert fresh.last.body_json == {
        "version": "4.3.1.0",
        "release": "1.el7",
        "upgradeDir": "/data/upg",
        "extra": 1,
    }


def test_upgrade_check_posts_to_the_check_route(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    client.upgrade_check("4.3.1.0", "1.el7", "")

    assert fresh.last.target == "/api/v1/agent/upgrade/check"
    assert fresh.last.body_json == {
        "version": "4.3.1.0",
        "release": "1.el7",
        "upgradeDir": "",
    }


@pytest.mark.parametrize(
    ("show_details", "query"),
    [(True, "show_details=true"), (False, "show_details=false")],
)
def test_get_dag_signs_the_query(
    client: ObshellClient, fresh: RecordingServer, show_details: bool, query: str
) -> None:
    client.get_dag("11000000000000000001", show_details)

    assert fresh.last.target == f"/api/v1/task/dag/11000000000000000001?{query}"
    assert fresh.last.header_field("Uri") == fresh.last.target


def test_odd_ids_stay_one_path_segment(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    client.get_dag("../9 x")

    assert fresh.last.target == "/api/v1/task/dag/..%2F9%20x?show_details=true"
    assert fresh.last.header_field("Uri") == fresh.last.target


@pytest.mark.parametrize(
    ("call", "method", "target", "body"),
    [
        (lambda c: c.operate_dag("142", "cancel"), "POST", "/api/v1/task/dag/142", b'{"operator":"cancel"}'),
        (lambda c: c.get_node("1007"), "GET", "/api/v1/task/node/1007", b""),
        (lambda c: c.get_sub_task("1008"), "GET", "/api/v1/task/sub_task/1008", b""),
        (lambda c: c.unfinished_dags(), "GET", "/api/v1/task/dag/unfinish", b""),
        (lambda c: c.last_maintenance_dag(), "GET", "/api/v1/task/dag/maintain/ob", b""),
    ],
    ids=["operate_dag", "get_node", "get_sub_task", "unfinished_dags", "last_maintenance_dag"],
)  # fmt: skip
def test_task_calls_are_authenticated(
    client: ObshellClient,
    fresh: RecordingServer,
    call: Any,
    method: str,
    target: str,
    body: bytes,
) -> None:
    call(client)

    received = fresh.last
    assert (received.method, received.target) == (method, target)
    assert received.header_name == "X-OCS-Header"
    assert received.header_field("Auth") == PASSWORD
    assert (received.body or b"") == body


@pytest.mark.parametrize(
    ("name", "target"),
    [("info", "/api/v1/info"), ("status", "/api/v1/status"), ("time", "/api/v1/time")],
)
def test_discovery_calls_are_not_authenticated(
    client: ObshellClient, fresh: RecordingServer, name: str, target: str
) -> None:
    getattr(client, name)()

    assert fresh.last.target == target
    assert fresh.last.ocs_headers == {}
    assert fresh.secret_fetches == 0


def test_public_key_matches_the_servers(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    expected = fresh.private_key.public_key().public_numbers()

    assert client.public_key().public_numbers() == expected
    assert client.secret().data["public_key"] == fresh.public_key_b64()


def test_public_key_fetched_once_per_client(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    client.upgrade_agent("4.3.1.0", "1.el7")
    client.get_dag("11")
    client.unfinished_dags()

    assert fresh.secret_fetches == 1


def test_decrypt_failed_is_resent_once_through_the_client(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    client.unfinished_dags()
    fresh.fail_next(1)

    reply = client.upgrade_agent("4.3.1.0", "1.el7")

    assert reply.successful
    assert fresh.secret_fetches == 2
    assert [r.target for r in fresh.received].count("/api/v1/agent/upgrade") == 2
    assert reply.exchange.label == "resent after DecryptFailed"


def test_generic_request_with_raw_body_and_headers(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    client.request(
        "post",
        "/api/v1/agent/upgrade",
        raw_body=b"{} x",
        headers={"X-OBSHELL-Trace-ID": "abc"},
    )

    assert fresh.last.method == "POST"
    assert fresh.last.body == b"{} x"
    assert fresh.last.headers["x-obshell-trace-id"] == "abc"


def test_unauthenticated_json_body_is_sent_plain(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    client.request(
        "POST", "/api/v1/agent/upgrade", json_body={"a": "é"}, authenticated=False
    )

    assert fresh.last.raw_body == '{"a":"é"}'.encode()
    assert fresh.last.headers["content-type"] == "application/json"


def test_both_bodies_or_a_relative_path_are_usage_errors(client: ObshellClient) -> None:
    with pytest.raises(UsageError, match="not both"):
        client.request("POST", "/x", json_body={}, raw_body=b"{}")
    with pytest.raises(UsageError, match="must start with '/'"):
        client.request("GET", "api/v1/info")


# -- replies -------------------------------------------------------------------------


def test_reply_of_a_successful_envelope(client: ObshellClient) -> None:
    reply = client.info()

    assert reply.successful
    assert reply.has_data_key
    assert reply.data == {"recorded": True}
    assert reply.error is None
    assert (reply.err_code, reply.code, reply.message) == (None, None, None)
    assert reply.trace_id == "0123456789abcdef"
    assert reply.headers["content-type"] == "application/json; charset=utf-8"


def test_reply_of_an_error_envelope_is_returned_not_raised(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    fresh.responder = lambda received: (401, DECRYPT_FAILED_ENVELOPE)

    reply = client.info()

    assert reply.http_status == 401
    assert not reply.successful
    assert not reply.has_data_key
    assert reply.err_code == "Security.Authentication.Header.DecryptFailed"
    assert reply.code == 1
    assert reply.message is not None
    assert reply.message.startswith("Decrypt http header failed: ")
    assert reply.trace_id == ""


def test_reply_of_a_body_that_is_not_json(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    fresh.responder = lambda received: (502, "<html>bad gateway</html>")

    reply = client.info()

    assert reply.http_status == 502
    assert reply.body is None
    assert reply.text == "<html>bad gateway</html>"
    assert not reply.successful
    assert reply.err_code is None


def test_reply_with_data_null(client: ObshellClient, fresh: RecordingServer) -> None:
    fresh.responder = lambda received: (
        400,
        {"successful": False, "data": None, "error": {}},
    )

    reply = client.info()

    assert reply.has_data_key
    assert reply.data is None
    assert reply.error == {}


# -- evidence --------------------------------------------------------------------------


def test_records_never_show_the_password_or_the_aes_keys(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    fresh.echo_secrets = True

    reply = client.upgrade_agent("4.3.1.0", "1.el7", extra={"password": "in-body-pw"})

    keys_b64 = fresh.last.header_field("Keys")
    key_and_iv = base64.b64decode(keys_b64)
    assert reply.message is not None
    assert PASSWORD in reply.message  # the server did echo it
    assert keys_b64 in reply.message

    forms = [
        PASSWORD,
        json.dumps(PASSWORD)[1:-1],
        "in-body-pw",
        keys_b64,
        key_and_iv.hex(),
        key_and_iv[:16].hex(),
        base64.b64encode(key_and_iv[:16]).decode(),
    ]
    dumps = [
        json.dumps(client.recorder.to_list()),
        json.dumps(client.recorder.to_list(), ensure_ascii=False),
        repr(reply),
        repr(client.recorder.exchanges),
    ]
    for dump in dumps:
        for form in forms:
            assert form not in dump


def test_record_of_an_authenticated_call(client: ObshellClient) -> None:
    reply = client.upgrade_agent("4.3.1.0", "1.el7", label="a valid upgrade")

    exchange = reply.exchange
    assert exchange is client.recorder.last
    assert exchange.label == "a valid upgrade"
    assert exchange.header_name == "X-OCS-Header"
    assert exchange.header_fields is not None
    assert (
        exchange.header_fields["Auth"] == exchange.header_fields["Keys"] == "[redacted]"
    )
    assert exchange.plaintext_body == '{"version":"4.3.1.0","release":"1.el7"}'
    assert exchange.status == 200
    assert exchange.forgery is None
    assert exchange.wire_body_size > len(exchange.plaintext_body)
    json.dumps(exchange.to_dict())


def test_a_shared_recorder_collects_several_clients(fresh: RecordingServer) -> None:
    recorder = Recorder()
    with (
        ObshellClient(fresh.url, "first-pw", recorder=recorder) as first,
        ObshellClient(fresh.url, "second-pw", recorder=recorder) as second,
    ):
        fresh.echo_secrets = True
        first.get_dag("11")
        second.get_dag("12")

    dump = json.dumps(recorder.to_list())
    assert len(recorder) == 4  # two key fetches, two polls
    assert "first-pw" not in dump
    assert "second-pw" not in dump


def test_the_recorder_can_be_cleared(client: ObshellClient) -> None:
    client.info()
    client.recorder.clear()

    assert list(client.recorder) == []
    assert client.recorder.last is None


def test_on_reply_sees_every_reply(fresh: RecordingServer) -> None:
    seen: list[Reply] = []
    with ObshellClient(fresh.url, PASSWORD, on_reply=seen.append) as client:
        first = client.info()
        second = client.upgrade_agent("4.3.1.0", "1.el7")
        third = send_forged(client, "POST", "/api/v1/agent/upgrade", {}, GARBAGE_HEADER)

    assert seen == [first, second, third]
    assert third.http_status == 401


# -- transport errors -----------------------------------------------------------------


def test_closed_port_raises_transport_error_naming_the_url() -> None:
    url = _closed_url()
    with ObshellClient(url, PASSWORD) as client:
        with pytest.raises(TransportError, match=f"GET {url}/api/v1/info") as caught:
            client.info()
        with pytest.raises(TransportError, match=url):
            client.upgrade_agent("4.3.1.0", "1.el7")

    assert PASSWORD not in str(caught.value)
    exchange = client.recorder.last
    assert exchange is not None
    assert (exchange.status, exchange.uri) == (0, "/api/v1/info")
    assert exchange.transport_error is not None


def test_a_timeout_raises_transport_error(fresh: RecordingServer) -> None:
    def slow(received: Received) -> Answer:
        time.sleep(0.4)
        return 200, OK_ENVELOPE

    fresh.responder = slow
    with (
        ObshellClient(fresh.url, PASSWORD, timeout=0.1) as client,
        pytest.raises(TransportError, match="could not be reached"),
    ):
        client.info()


# -- following a DAG -------------------------------------------------------------------


def _dag(state: str, stage: int) -> dict[str, Any]:
    nodes = [{"id": f"1{i}", "name": name} for i, name in enumerate(NODE_NAMES, 1)]
    return {
        "id": "11",
        "dag_id": 1,
        "stage": stage,
        "max_stage": 9,
        "state": state,
        "nodes": nodes,
    }


def _envelope(dag: dict[str, Any]) -> dict[str, Any]:
    return {**OK_ENVELOPE, "data": dag}


def _error(status: int, err_code: str) -> dict[str, Any]:
    return {
        "successful": False,
        "timestamp": OK_ENVELOPE["timestamp"],
        "duration": 0,
        "status": status,
        "traceId": "0123456789abcdef",
        "error": {"errCode": err_code, "message": "…"},
    }


def _script(*answers: Answer | None) -> Any:
    queue = list(answers)
    return lambda received: queue.pop(0) if len(queue) > 1 else queue[0]


def test_follow_dag_until_succeed(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    fresh.responder = _script(
        (200, _envelope(_dag("RUNNING", 1))),
        (200, _envelope(_dag("RUNNING", 1))),
        (200, _envelope(_dag("RUNNING", 7))),
        None,  # the agent restarts: connection dropped
        (404, _error(404, "Task.NotFound")),
        (200, _envelope(_dag("RUNNING", 8))),
        (200, _envelope(_dag("SUCCEED", 9))),
    )
    seen: list[Reply] = []

    trace = client.follow_dag("11", deadline=5, poll_interval=0.01, on_poll=seen.append)

    assert trace.final == _dag("SUCCEED", 9)
    assert not trace.timed_out
    assert trace.stopped_by is None
    assert len(trace.polls) == 7
    assert len(seen) == 6  # no reply for the dropped connection
    assert trace.states == ["RUNNING"] * 4 + ["SUCCEED"]
    assert trace.polls[3].dag is None
    assert trace.polls[3].note.startswith("unreachable: ")
    assert [row[:2] for row in trace.stage_timeline()] == [
        (1, "Create upgrade dir"),
        (7, "Restart obshell"),
        (8, "Upgrade post table maintain"),
        (9, "Remove upgrade check task dir"),
    ]
    first = trace.stage_timeline()[0]
    assert first[2] == trace.polls[0].offset_s
    assert first[3] == trace.polls[1].offset_s


def test_follow_dag_ends_on_failed(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    fresh.responder = _script((200, _envelope(_dag("FAILED", 2))))

    trace = client.follow_dag("11", deadline=5, poll_interval=0.01)

    assert trace.final is not None
    assert trace.final["state"] == "FAILED"
    assert trace.stage_timeline() == [
        (
            2,
            "Download all required packages",
            trace.polls[0].offset_s,
            trace.polls[0].offset_s,
        )
    ]


def test_follow_dag_times_out(client: ObshellClient, fresh: RecordingServer) -> None:
    fresh.responder = _script((200, _envelope(_dag("RUNNING", 3))))
    started = time.monotonic()

    trace = client.follow_dag("11", deadline=0.3, poll_interval=0.05)

    assert trace.timed_out
    assert trace.final is None
    assert 0.3 <= time.monotonic() - started < 2
    assert len(trace.polls) >= 3


def test_follow_dag_stops_on_an_unexpected_error(
    client: ObshellClient, fresh: RecordingServer
) -> None:
    fresh.responder = _script(
        (200, _envelope(_dag("RUNNING", 1))), (500, _error(500, "Common.Unexpected"))
    )

    trace = client.follow_dag("11", deadline=5, poll_interval=0.01)

    assert trace.stopped_by is not None
    assert trace.stopped_by.err_code == "Common.Unexpected"
    assert trace.final is None
    assert not trace.timed_out
    assert len(trace.polls) == 2
