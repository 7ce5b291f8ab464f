"""Self-tests of the contract's JSON Schemas and of their loader."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from obshell_contract import schemas
from obshell_contract.errors import SchemaError
from obshell_contract.schemas import SchemaSet

DATA = Path(__file__).parent / "data" / "schemas"

# The contract's own schemas. Other files in schemas/ (the report's, for one) get
# the structural checks only: their conventions and cases belong to their owners.
CONTRACT = (
    schemas.REQUEST,
    schemas.ENVELOPE,
    schemas.API_ERROR,
    schemas.DAG_DETAIL,
    schemas.NODE_DETAIL,
    schemas.TASK_DETAIL,
    schemas.UPGRADE_RESPONSE,
    schemas.AGENT_SECRET,
    schemas.AGENT_INFO,
    schemas.AGENT_STATUS,
    schemas.DAG_LIST,
    schemas.COMMON,
)

# The nine nodes of the upgrade DAG, in stage order (protocol reference §5.3).
UPGRADE_NODES = (
    "Create upgrade dir",
    "Download all required packages",
    "Check all required packages",
    "Unpack all required packages",
    "Backup for upgrade",
    "Install new obshell",
    "Restart obshell",
    "Upgrade post table maintain",
    "Remove upgrade check task dir",
)
ZERO_TIME = "0001-01-01T00:00:00Z"
# The last log line of the sub-task that fails when the package was never uploaded.
FAILED_LOG = "ERROR: [Common.Unexpected]: Unexpected error: record not found"

# Keywords that fail on their own; their location is where a violation points.
ASSERTIONS = frozenset(
    {
        "anyOf",
        "const",
        "dependentRequired",
        "enum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "format",
        "maxItems",
        "maxLength",
        "maximum",
        "minItems",
        "minLength",
        "minimum",
        "not",
        "oneOf",
        "pattern",
        "required",
        "type",
        "uniqueItems",
    }
)
CLOSERS = frozenset({"additionalProperties", "unevaluatedProperties"})


def load_data(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def case_id(case: dict[str, Any]) -> str:
    return f"{case['schema']}: {case['why']}"


INVALID_CASES = load_data("invalid.json")
VALID_CASES = load_data("valid.json")


def all_examples() -> Iterator[tuple[str, str, Any]]:
    """(schema URI, test id, example) for each schema and each ``$defs`` entry."""
    for name in schemas.names():
        contents = schemas.schema(name)
        uri = contents["$id"]
        for index, example in enumerate(contents.get("examples", [])):
            yield uri, f"{name}[{index}]", example

        for key, definition in contents.get("$defs", {}).items():
            for index, example in enumerate(definition.get("examples", [])):
                yield f"{uri}#/$defs/{key}", f"{name}/{key}[{index}]", example


def assertion_sites(filename: str, node: object, pointer: str) -> Iterator[str]:
    """Every keyword location that can report a violation of its own.

    ``anyOf`` and ``not`` report at themselves and ``if`` never reports, so their
    branches are not entered; ``then``, ``else``, ``allOf`` and the property maps
    pass their subschemas' own violations through.
    """
    if not isinstance(node, dict):
        return

    for key, value in node.items():
        here = f"{pointer}/{key}"
        if key in ASSERTIONS or (key in CLOSERS and value is False):
            yield f"{filename}#{here}"

        if key in {"properties", "$defs", "dependentSchemas"}:
            for child, subschema in value.items():
                yield from assertion_sites(filename, subschema, f"{here}/{child}")
        elif key in {"items", "then", "else"} or key in CLOSERS:
            yield from assertion_sites(filename, value, here)
        elif key == "allOf":
            for index, subschema in enumerate(value):
                yield from assertion_sites(filename, subschema, f"{here}/{index}")


def sub_task(task_id: int, name: str, state: str, ip: str) -> dict[str, Any]:
    started = state not in {"PENDING", "READY"}
    logs = {"SUCCEED": ["done"], "FAILED": [FAILED_LOG], "RUNNING": []}

    return {
        "id": f"1{task_id}",
        "task_id": task_id,
        "name": name,
        "state": state,
        "operator": "RUN",
        "start_time": "2026-05-08T17:06:48.201345+08:00" if started else ZERO_TIME,
        "end_time": "2026-05-08T17:06:51.730012+08:00" if started else ZERO_TIME,
        "additional_data": None,
        "execute_times": 1 if started else 0,
        "execute_agent": {"ip": ip, "port": 2886},
        "task_logs": logs.get(state),
    }


def node_state(stage: int, failed_stage: int | None) -> str:
    if failed_stage is None or stage < failed_stage:
        return "SUCCEED"

    return "FAILED" if stage == failed_stage else "PENDING"


def upgrade_node(stage: int, state: str, agents: list[str]) -> dict[str, Any]:
    """A parallel node: one sub-task per agent, all in the node's state."""
    name = UPGRADE_NODES[stage - 1]
    tasks = [
        sub_task(100 + 10 * stage + i, name, state, ip) for i, ip in enumerate(agents)
    ]

    return {
        "id": f"1{stage}",
        "node_id": stage,
        "name": name,
        "state": state,
        "operator": "RUN",
        "start_time": tasks[0]["start_time"],
        "end_time": tasks[0]["end_time"],
        "additional_data": {} if len(agents) > 1 else None,
        "sub_tasks": tasks,
    }


def upgrade_dag(agents: list[str], failed_stage: int | None) -> dict[str, Any]:
    """The upgrade DAG with details, built as protocol reference §5 describes."""
    stages = range(1, len(UPGRADE_NODES) + 1)
    nodes = [upgrade_node(s, node_state(s, failed_stage), agents) for s in stages]

    return {
        "id": "12",
        "dag_id": 2,
        "name": "Upgrade obshell 4.5.1.0-100000012026050817.el8",
        "stage": failed_stage or len(UPGRADE_NODES),
        "max_stage": len(UPGRADE_NODES),
        "maintenance_type": 2,
        "maintenance_key": "",
        "state": "SUCCEED" if failed_stage is None else "FAILED",
        "operator": "RUN",
        "start_time": "2026-05-08T17:06:48.201345+08:00",
        "end_time": "2026-05-08T17:09:12.5+08:00",
        "additional_data": {},
        "nodes": nodes,
    }


def values_of(key: str, node: object) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere in a JSON document."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from values_of(key, v)
    elif isinstance(node, list):
        for item in node:
            yield from values_of(key, item)


def write_schema(directory: Path, name: str, body: dict[str, Any]) -> None:
    contents = {
        "$schema": schemas.METASCHEMA,
        "$id": f"{schemas.BASE_URI}{name}.schema.json",
        **body,
    }
    (directory / f"{name}.schema.json").write_text(json.dumps(contents))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and refuse) every attempt to resolve a name or open a socket."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError(f"the schema loader touched the network: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


# --- the schema files ---------------------------------------------------------


@pytest.mark.parametrize("name", schemas.names())
def test_schema_passes_its_metaschema(name: str) -> None:
    contents = schemas.schema(name)

    Draft202012Validator.check_schema(contents)

    assert contents["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", schemas.names())
def test_schema_is_identified_by_its_file_name(name: str) -> None:
    contents = schemas.schema(name)

    assert (
        contents["$id"]
        == f"https://schemas.obshell-contract.invalid/{name}.schema.json"
    )


@pytest.mark.parametrize("name", CONTRACT)
def test_schema_is_titled_and_described(name: str) -> None:
    contents = schemas.schema(name)

    assert contents["title"].strip()
    assert contents["description"].strip()


@pytest.mark.parametrize("name", CONTRACT)
def test_schema_has_examples(name: str) -> None:
    contents = schemas.schema(name)

    if name == schemas.COMMON:
        # ``common`` holds only definitions: each of them carries examples.
        assert contents["$defs"]
        assert all(d.get("examples") for d in contents["$defs"].values())
    else:
        assert contents["examples"]


@pytest.mark.parametrize("name", schemas.names())
def test_refs_are_relative(name: str) -> None:
    refs = list(values_of("$ref", schemas.schema(name)))

    assert all("://" not in ref for ref in refs), refs


@pytest.mark.parametrize("name", schemas.names())
def test_patterns_mean_the_same_in_ecma_262_and_python(name: str) -> None:
    # Python's \d matches any Unicode digit and its $ also matches before a
    # final newline; ECMA-262, the dialect JSON Schema names, does neither.
    patterns = list(values_of("pattern", schemas.schema(name)))

    assert all("\\d" not in p for p in patterns), patterns
    assert all(not p.endswith("$") for p in patterns), patterns


def test_every_constant_names_a_schema_file() -> None:
    missing = set(CONTRACT) - set(schemas.names())

    assert missing == set()


@pytest.mark.parametrize(
    ("uri", "example"),
    [pytest.param(uri, example, id=i) for uri, i, example in all_examples()],
)
def test_example_is_valid(uri: str, example: Any) -> None:
    checker = Draft202012Validator.FORMAT_CHECKER
    validator = Draft202012Validator(
        {"$ref": uri}, registry=schemas.registry(), format_checker=checker
    )

    errors = [e.message for e in validator.iter_errors(example)]

    assert errors == []


# --- published page and protocol oracles -------------------------------------


def test_published_response_example_is_valid() -> None:
    response = load_data("published-response.json")

    assert schemas.violations(response, schemas.UPGRADE_RESPONSE) == []
    assert schemas.violations(response["data"], schemas.DAG_DETAIL) == []


def test_published_request_example_is_valid() -> None:
    # The page wraps the body in quotes; the file holds the object it means.
    request = load_data("published-request.json")

    assert schemas.violations(request, schemas.REQUEST) == []


@pytest.mark.parametrize("case", VALID_CASES, ids=case_id)
def test_oracle_instance_is_valid(case: dict[str, Any]) -> None:
    found = schemas.violations(case["instance"], case["schema"])

    assert [str(v) for v in found] == []


@pytest.mark.parametrize(
    ("agents", "failed_stage"),
    [
        pytest.param(["192.168.1.1"], None, id="one agent, succeeded"),
        pytest.param(["192.168.1.1", "192.168.1.2", "::1"], None, id="three agents"),
        pytest.param(["192.168.1.1", "192.168.1.2"], 2, id="failed at download"),
    ],
)
def test_upgrade_dag_with_nodes_and_sub_tasks_is_valid(
    agents: list[str], failed_stage: int | None
) -> None:
    dag = upgrade_dag(agents, failed_stage)
    envelope = {
        "successful": True,
        "timestamp": "2026-05-08T17:09:13.004+08:00",
        "duration": 7,
        "status": 200,
        "traceId": "5b1e09d3c7a2f468",
        "data": dag,
    }

    assert schemas.violations(dag, schemas.DAG_DETAIL) == []
    assert schemas.violations(envelope, schemas.ENVELOPE) == []
    assert schemas.violations({"contents": [dag]}, schemas.DAG_LIST) == []
    assert all(schemas.is_valid(n, schemas.NODE_DETAIL) for n in dag["nodes"])
    assert len(dag["nodes"][0]["sub_tasks"]) == len(agents)


# --- hand-written invalid instances -------------------------------------------


@pytest.mark.parametrize("case", INVALID_CASES, ids=case_id)
def test_invalid_instance_fails_at_the_expected_pointer(case: dict[str, Any]) -> None:
    found = schemas.violations(case["instance"], case["schema"])

    # Exactly one violation: a case that trips several constraints proves little.
    assert [(v.pointer, v.keyword) for v in found] == [
        (case["pointer"], case["keyword"])
    ], [str(v) for v in found]
    assert not schemas.is_valid(case["instance"], case["schema"])


def test_invalid_case_ids_are_unique() -> None:
    ids = [case_id(case) for case in INVALID_CASES + VALID_CASES]

    assert len(ids) == len(set(ids))


def test_every_constraint_has_an_invalid_case() -> None:
    sites = {
        site
        for name in CONTRACT
        for site in assertion_sites(f"{name}.schema.json", schemas.schema(name), "")
    }
    exercised = {
        violation.schema_path
        for case in INVALID_CASES
        for violation in schemas.violations(case["instance"], case["schema"])
    }

    assert sorted(sites - exercised) == []
    assert sorted(exercised - sites) == []


# --- the loader ---------------------------------------------------------------


def test_schema_path_follows_refs_into_common() -> None:
    sub = upgrade_dag(["192.168.1.1"], None)["nodes"][0]["sub_tasks"][0]

    found = schemas.violations({**sub, "state": "DONE"}, schemas.TASK_DETAIL)

    assert found == [
        schemas.SchemaViolation(
            pointer="/state",
            message="'DONE' is not one of "
            "['PENDING', 'READY', 'RUNNING', 'FAILED', 'SUCCEED']",
            keyword="enum",
            schema_path="common.schema.json#/$defs/state/enum",
        )
    ]
    assert str(found[0]).startswith("/state: 'DONE' is not one of")


def test_violations_come_in_document_order() -> None:
    dag = upgrade_dag(["192.168.1.1"], None)
    dag["nodes"] += [dict(dag["nodes"][0], id=f"1{n}") for n in range(9, 12)]
    for index in (10, 2):
        dag["nodes"][index]["state"] = "DONE"
    dag["stage"] = 0

    found = schemas.violations(dag, schemas.DAG_DETAIL)

    assert [v.pointer for v in found] == ["/nodes/2/state", "/nodes/10/state", "/stage"]


def test_pointer_escapes_slash_and_tilde(tmp_path: Path) -> None:
    write_schema(tmp_path, "map", {"additionalProperties": {"type": "integer"}})

    found = SchemaSet.load(tmp_path).violations({"a/b~c": "x"}, "map")

    assert [v.pointer for v in found] == ["/a~1b~0c"]
    assert found[0].schema_path == "map.schema.json#/additionalProperties/type"


def test_formats_are_enforced() -> None:
    checker = schemas.validator(schemas.ENVELOPE).format_checker

    assert checker is not None
    assert {"date-time", "ipv4", "ipv6"} <= set(checker.checkers)
    assert not checker.conforms("2024-01-09T19:26:25", "date-time")


def test_loader_caches_registry_and_validators() -> None:
    assert schemas.registry() is schemas.registry()
    assert schemas.validator(schemas.DAG_DETAIL) is schemas.validator(
        schemas.DAG_DETAIL
    )


def test_schema_returns_a_copy() -> None:
    schemas.schema(schemas.ENVELOPE)["required"].clear()

    assert "traceId" in schemas.schema(schemas.ENVELOPE)["required"]
    assert not schemas.is_valid({"successful": True}, schemas.ENVELOPE)


@pytest.mark.parametrize("name", ["nope", "envelope.schema.json", ""])
def test_unknown_schema_name_lists_the_known_names(name: str) -> None:
    with pytest.raises(SchemaError) as caught:
        schemas.violations({}, name)

    message = str(caught.value)
    assert repr(name) in message
    assert all(known in message for known in schemas.names())


def test_ref_to_an_unknown_uri_is_a_schema_error_without_network(
    tmp_path: Path, no_network: list[object]
) -> None:
    write_schema(tmp_path, "remote", {"$ref": "https://example.com/a.schema.json"})

    with pytest.raises(SchemaError, match="never fetched") as caught:
        SchemaSet.load(tmp_path)

    assert "https://example.com/a.schema.json" in str(caught.value)
    assert no_network == []


def test_ref_to_a_missing_sibling_file_is_a_schema_error(
    tmp_path: Path, no_network: list[object]
) -> None:
    write_schema(tmp_path, "lonely", {"$ref": "missing.schema.json"})

    with pytest.raises(SchemaError, match=r"missing\.schema\.json.*known: lonely"):
        SchemaSet.load(tmp_path)

    assert no_network == []


def test_ref_to_a_missing_definition_is_a_schema_error(tmp_path: Path) -> None:
    write_schema(tmp_path, "defs", {"$defs": {"a": {}}, "$ref": "#/$defs/b"})

    with pytest.raises(SchemaError, match=r"'defs\.schema\.json' at '/\$ref'"):
        SchemaSet.load(tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("{", "is not JSON", id="not JSON"),
        pytest.param("[]", "not an object", id="not an object"),
        pytest.param(
            json.dumps({"$schema": schemas.METASCHEMA, "$id": "x"}),
            "expected \\$id",
            id="wrong $id",
        ),
        pytest.param(
            json.dumps(
                {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "$id": f"{schemas.BASE_URI}bad.schema.json",
                }
            ),
            "expected \\$schema",
            id="draft-07",
        ),
        pytest.param(
            json.dumps(
                {
                    "$schema": schemas.METASCHEMA,
                    "$id": f"{schemas.BASE_URI}bad.schema.json",
                    "type": "integr",
                }
            ),
            "breaks the 2020-12 metaschema at '/type'",
            id="metaschema violation",
        ),
    ],
)
def test_broken_schema_file_is_a_schema_error(
    tmp_path: Path, text: str, match: str
) -> None:
    (tmp_path / "bad.schema.json").write_text(text)

    with pytest.raises(SchemaError, match=match):
        SchemaSet.load(tmp_path)


def test_empty_or_missing_directory_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"no \*\.schema\.json files"):
        SchemaSet.load(tmp_path)

    with pytest.raises(SchemaError, match="does not exist"):
        SchemaSet.load(tmp_path / "absent")


def test_schema_hashes_cover_every_file() -> None:
    # A JSON file not named *.schema.json would be skipped by the loader unseen.
    files = sorted(schemas.SCHEMA_DIR.glob("*.json"))

    hashes = schemas.schema_hashes()

    assert all(p.name.endswith(".schema.json") for p in files), files
    assert hashes == {
        p.name.removesuffix(".schema.json"): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
    }
