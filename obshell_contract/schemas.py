"""The contract's JSON Schemas: loaded once into one registry, then validated against.

The schema files live in ``schemas/`` at the repository root, one shape per
``<name>.schema.json``, each with the ``$id``
``https://schemas.obshell-contract.invalid/<name>.schema.json``. They refer to each
other with relative ``$ref``; the registry resolves those from the files and never
from the network, so an unknown URI is a :class:`SchemaError`.

Validation uses Draft 2020-12 with formats *enforced* (``date-time`` needs the
``rfc3339-validator`` package, which is a dependency). :func:`violations` reports
each failure as a :class:`SchemaViolation` with an RFC 6901 pointer into the
instance and the keyword's location in the schema files.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import referencing.exceptions
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import (  # type: ignore[import-untyped]
    SchemaError as MetaschemaError,
)
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from obshell_contract.errors import SchemaError
from obshell_contract.log import logger

__all__ = [
    "AGENT_INFO",
    "AGENT_SECRET",
    "AGENT_STATUS",
    "API_ERROR",
    "BASE_URI",
    "COMMON",
    "DAG_DETAIL",
    "DAG_LIST",
    "ENVELOPE",
    "NODE_DETAIL",
    "REQUEST",
    "SCHEMA_DIR",
    "TASK_DETAIL",
    "UPGRADE_RESPONSE",
    "SchemaSet",
    "SchemaViolation",
    "is_valid",
    "names",
    "registry",
    "schema",
    "schema_hashes",
    "validator",
    "violations",
]

# TODO: ship schemas/ as package data; a non-editable install has no repository root.
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
BASE_URI = "https://schemas.obshell-contract.invalid/"
SUFFIX = ".schema.json"
METASCHEMA = "https://json-schema.org/draft/2020-12/schema"

REQUEST = "upgrade-agent-request"
ENVELOPE = "envelope"
API_ERROR = "api-error"
DAG_DETAIL = "dag-detail"
NODE_DETAIL = "node-detail"
TASK_DETAIL = "task-detail"
UPGRADE_RESPONSE = "upgrade-agent-response"
AGENT_SECRET = "agent-secret"
AGENT_INFO = "agent-info"
AGENT_STATUS = "agent-status"
DAG_LIST = "dag-list"
COMMON = "common"

# Without these checkers a ``format`` keyword silently passes; refuse to validate.
_ENFORCED_FORMATS = frozenset({"date-time", "ipv4", "ipv6"})

# Where 2020-12 keywords hold subschemas; everything else (``enum``, ``examples``,
# annotations) is data, even when it looks like a schema.
_ONE_SUBSCHEMA = frozenset(
    {
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_MAP_OF_SUBSCHEMAS = frozenset(
    {"$defs", "dependentSchemas", "patternProperties", "properties"}
)
_LIST_OF_SUBSCHEMAS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


@dataclass(frozen=True)
class SchemaViolation:
    """One way an instance fails a schema.

    ``pointer`` is an RFC 6901 JSON pointer into the instance (``""`` for the
    root); ``keyword`` is the failing JSON Schema keyword; ``schema_path`` is where
    that keyword sits, as ``<file>#<pointer>`` (``$ref`` already followed).
    ``message`` is jsonschema's text, which quotes the offending value.
    """

    pointer: str
    message: str
    keyword: str
    schema_path: str

    def __str__(self) -> str:
        where = self.pointer or "(root)"
        return f"{where}: {self.message} [{self.keyword} at {self.schema_path}]"


class SchemaSet:
    """The schemas of one directory, their registry, and cached validators."""

    def __init__(self, directory: Path, files: Mapping[str, bytes]) -> None:
        self.directory = directory
        self._hashes = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
        self._contents = {
            n: _parse(directory / _filename(n), b) for n, b in files.items()
        }

        self.registry: Registry[Any] = _build_registry(self._contents, self.names())
        self._locations = _index_locations(self._contents)
        self._validators: dict[str, Draft202012Validator] = {}

        for name, contents in self._contents.items():
            _check_refs(self.registry, name, contents)

    @classmethod
    def load(cls, directory: Path = SCHEMA_DIR) -> SchemaSet:
        """Read every ``*.schema.json`` of ``directory``; ``SchemaError`` if one is bad."""
        if not directory.is_dir():
            raise SchemaError(f"schema directory {str(directory)!r} does not exist")

        paths = sorted(directory.glob("*" + SUFFIX))
        if not paths:
            raise SchemaError(f"no *{SUFFIX} files in {str(directory)!r}")

        files = {p.name.removesuffix(SUFFIX): p.read_bytes() for p in paths}
        logger.debug("loaded %d schemas from %s", len(files), directory)
        return cls(directory, files)

    def names(self) -> list[str]:
        """The schema names, sorted."""
        return sorted(self._contents)

    def schema(self, name: str) -> dict[str, Any]:
        """A copy of the named schema's JSON."""
        return copy.deepcopy(self._contents_of(name))

    def hashes(self) -> dict[str, str]:
        """The sha256 hex digest of each schema file's bytes, by name."""
        return dict(self._hashes)

    def validator(self, name: str) -> Draft202012Validator:
        """The Draft 2020-12 validator of ``name``, with formats enforced (cached)."""
        if name not in self._validators:
            self._validators[name] = _make_validator(
                self._contents_of(name), self.registry
            )
        return self._validators[name]

    def violations(self, instance: object, name: str) -> list[SchemaViolation]:
        """Every way ``instance`` fails schema ``name``, in document order."""
        errors = self.validator(name).iter_errors(instance)
        found = [self._violation(error, name) for error in errors]
        return sorted(found, key=_sort_key)

    def is_valid(self, instance: object, name: str) -> bool:
        """Whether ``instance`` passes schema ``name``."""
        return bool(self.validator(name).is_valid(instance))

    def _contents_of(self, name: str) -> dict[str, Any]:
        try:
            return self._contents[name]
        except KeyError:
            known = ", ".join(self.names())
            raise SchemaError(
                f"unknown schema {name!r}: expected one of {known} "
                f"(files {_filename('<name>')} in {str(self.directory)!r})"
            ) from None

    def _violation(self, error: ValidationError, name: str) -> SchemaViolation:
        # A ``false`` subschema fails without a keyword of its own.
        keyword = error.validator if isinstance(error.validator, str) else "false"
        return SchemaViolation(
            pointer=_pointer(error.absolute_path),
            message=error.message,
            keyword=keyword,
            schema_path=self._schema_path(error, name, keyword),
        )

    def _schema_path(self, error: ValidationError, name: str, keyword: str) -> str:
        # jsonschema does not record ``$ref`` hops in ``schema_path``, so find the
        # failing subschema by identity among the loaded files instead.
        location = self._locations.get(id(error.schema))
        if location is None:
            fallback = _pointer(error.absolute_schema_path)
            return f"{_filename(name)}#{fallback}"

        filename, pointer = location
        return f"{filename}#{pointer}/{keyword}"


@functools.cache
def _default() -> SchemaSet:
    return SchemaSet.load(SCHEMA_DIR)


def registry() -> Registry[Any]:
    """The one registry holding every schema of ``schemas/`` (cached)."""
    return _default().registry


def names() -> list[str]:
    """The names of the schemas in ``schemas/``, sorted."""
    return _default().names()


def schema(name: str) -> dict[str, Any]:
    """A copy of the named schema; ``SchemaError`` lists the names if unknown."""
    return _default().schema(name)


def validator(name: str) -> Draft202012Validator:
    """The cached ``Draft202012Validator`` of ``name`` (registry and formats set)."""
    return _default().validator(name)


def violations(instance: object, name: str) -> list[SchemaViolation]:
    """Every way ``instance`` fails schema ``name``, sorted by pointer."""
    return _default().violations(instance, name)


def is_valid(instance: object, name: str) -> bool:
    """Whether ``instance`` passes schema ``name``."""
    return _default().is_valid(instance, name)


def schema_hashes() -> dict[str, str]:
    """The sha256 hex digest of each schema file, by name: for reports."""
    return _default().hashes()


def _filename(name: str) -> str:
    return name + SUFFIX


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        contents = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SchemaError(f"schema file {str(path)!r} is not JSON: {error}") from error

    if not isinstance(contents, dict):
        raise SchemaError(
            f"schema file {str(path)!r} holds {contents!r}, not an object"
        )

    _check_header(path, contents)
    return contents


def _check_header(path: Path, contents: dict[str, Any]) -> None:
    expected_id = BASE_URI + path.name
    if contents.get("$id") != expected_id:
        raise SchemaError(
            f"schema file {str(path)!r}: expected $id {expected_id!r}, "
            f"got {contents.get('$id')!r}"
        )

    if contents.get("$schema") != METASCHEMA:
        raise SchemaError(
            f"schema file {str(path)!r}: expected $schema {METASCHEMA!r}, "
            f"got {contents.get('$schema')!r}"
        )

    try:
        Draft202012Validator.check_schema(contents)
    except MetaschemaError as error:
        raise SchemaError(
            f"schema file {str(path)!r} breaks the 2020-12 metaschema at "
            f"{_pointer(error.absolute_path)!r}: {error.message}"
        ) from error


def _build_registry(
    contents: Mapping[str, dict[str, Any]], known: list[str]
) -> Registry[Any]:
    def retrieve(uri: str) -> Resource[Any]:
        # Called only for URIs that no loaded file claims: never go and fetch them.
        raise SchemaError(
            f"$ref to {uri!r} matches no loaded schema "
            f"(known: {', '.join(known)}); schemas are never fetched"
        )

    resources = [
        (BASE_URI + _filename(name), DRAFT202012.create_resource(schema))
        for name, schema in contents.items()
    ]
    # attrs names the init argument ``retrieve`` (field ``_retrieve``); mypy's
    # attrs support does not see through referencing's wrapper.
    empty: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    return empty.with_resources(resources).crawl()


def _check_refs(registry: Registry[Any], name: str, contents: dict[str, Any]) -> None:
    # Resolve every ``$ref`` now, so a dangling one fails at load and not midway
    # through validating an agent's response.
    base = BASE_URI + _filename(name)
    resolver = registry.resolver(base_uri=base)
    for pointer, ref in _refs(contents):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable as error:
            cause = _own_error(error) or error
            raise SchemaError(
                f"schema {_filename(name)!r} at {pointer!r}: cannot resolve "
                f"$ref {ref!r}: {cause}"
            ) from error


def _own_error(error: BaseException) -> SchemaError | None:
    # referencing wraps what ``retrieve`` raises, sometimes twice: dig it out.
    cause = error.__cause__ or error.__context__
    while cause is not None and not isinstance(cause, SchemaError):
        cause = cause.__cause__ or cause.__context__
    return cause


def _subschemas(node: object, pointer: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``node`` and every object subschema under it, with JSON pointers."""
    if not isinstance(node, dict):
        return

    yield pointer, node
    for key, value in node.items():
        here = f"{pointer}/{_escape(key)}"
        if key in _ONE_SUBSCHEMA:
            yield from _subschemas(value, here)
        elif key in _MAP_OF_SUBSCHEMAS and isinstance(value, dict):
            for child, subschema in value.items():
                yield from _subschemas(subschema, f"{here}/{_escape(child)}")
        elif key in _LIST_OF_SUBSCHEMAS and isinstance(value, list):
            for index, subschema in enumerate(value):
                yield from _subschemas(subschema, f"{here}/{index}")


def _refs(contents: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for pointer, subschema in _subschemas(contents, ""):
        ref = subschema.get("$ref")
        if isinstance(ref, str):
            yield f"{pointer}/$ref", ref


def _index_locations(
    contents: Mapping[str, dict[str, Any]],
) -> dict[int, tuple[str, str]]:
    return {
        id(subschema): (_filename(name), pointer)
        for name, schema in contents.items()
        for pointer, subschema in _subschemas(schema, "")
    }


def _make_validator(
    contents: dict[str, Any], registry: Registry[Any]
) -> Draft202012Validator:
    checker = Draft202012Validator.FORMAT_CHECKER
    missing = _ENFORCED_FORMATS - set(checker.checkers)
    if missing:
        raise SchemaError(
            f"formats {sorted(missing)} would not be checked: install "
            "rfc3339-validator (date-time) so that formats are enforced"
        )

    return Draft202012Validator(contents, registry=registry, format_checker=checker)


def _pointer(path: Iterable[str | int]) -> str:
    return "".join(f"/{_escape(part)}" for part in path)


def _escape(part: str | int) -> str:
    # RFC 6901: "~" first, so the "~1" made for "/" is not escaped again.
    return str(part).replace("~", "~0").replace("/", "~1")


def _sort_key(violation: SchemaViolation) -> tuple[list[tuple[int, int, str]], str]:
    # Array indices compare as numbers, so /nodes/2 comes before /nodes/10.
    parts = violation.pointer.split("/")[1:] if violation.pointer else []
    key = [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]
    return key, violation.schema_path
