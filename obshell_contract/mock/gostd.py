"""Go's standard library as the agent inherits it: encoding/json, base64, strconv.

The agent decodes headers and bodies with Go's rules, and the envelope's bytes
are Go's output. Python differs in many small ways (NaN, key case, duplicate
keys, escaping, lenient base64, integer syntax), so the mock goes through here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INT64_MAX",
    "GoJSONError",
    "Number",
    "Object",
    "StructField",
    "StructType",
    "decode_first",
    "decode_struct",
    "go_atoi",
    "go_base64_decode",
    "go_parse_int",
    "go_quote",
    "is_map_or_null",
    "kind_of",
    "marshal",
]

_WHITESPACE = " \t\r\n"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
INT64_MAX = 2**63 - 1
_INT64 = (-(2**63), INT64_MAX)
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {char: index for index, char in enumerate(_B64_ALPHABET)}
_NEWLINES = b"\r\n"


class GoJSONError(ValueError):
    """A decoding error, its message phrased as Go's ``encoding/json`` would."""


@dataclass(frozen=True)
class Number:
    """A JSON number kept as written (Go's ``UseNumber``)."""

    text: str


class Object(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in wire order, duplicates kept."""


@dataclass(frozen=True)
class StructField:
    """One field of a Go struct: its JSON name and Go type.

    ``go_type`` is ``"string"``, ``"int"``, ``"[]uint8"`` or a nested
    :class:`StructType`.
    """

    name: str
    go_type: str | StructType


@dataclass(frozen=True)
class StructType:
    """A Go struct: ``name`` as in field paths, ``qualified`` with its package."""

    name: str
    qualified: str
    fields: tuple[StructField, ...]


# -- decoding --------------------------------------------------------------------


def decode_first(text: str) -> Any:
    """Decode the first JSON value of ``text``; what follows it is ignored.

    This is ``json.NewDecoder(r).Decode(v)``: leading whitespace is skipped,
    an empty input is ``EOF``, trailing bytes are never read.
    """
    start = _skip_whitespace(text, 0)
    if start == len(text):
        raise GoJSONError("EOF")
    value, _ = _raw_decode(text, start)
    return value


def is_map_or_null(text: str) -> bool:
    """Would ``json.Unmarshal(text, &map[string]interface{}{})`` succeed?

    True for one object (numbers must fit a float64) or ``null``, with
    nothing but whitespace around it.
    """
    start = _skip_whitespace(text, 0)
    if start == len(text):
        return False
    try:
        value, end = _raw_decode(text, start)
    except GoJSONError:
        return False
    if _skip_whitespace(text, end) != len(text):
        return False
    return (value is None or isinstance(value, Object)) and _fits_float64(value)


def kind_of(value: Any) -> str:
    """The JSON kind Go names in ``cannot unmarshal <kind> into ...``."""
    if isinstance(value, Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Number):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null"


def decode_struct(value: Any, struct: StructType) -> tuple[dict[str, Any], str | None]:
    """Decode a JSON value into ``struct`` the way Go does.

    Returns the fields that were set (by JSON name) and the first type error,
    if any. Like Go, a type error does not stop decoding: later fields are
    still set. Keys match field names case-insensitively, the last duplicate
    wins, unknown keys are ignored, ``null`` leaves a field unset.
    """
    if value is None:
        return {}, None
    if not isinstance(value, Object):
        return {}, (
            f"json: cannot unmarshal {kind_of(value)} into Go value of type "
            f"{struct.qualified}"
        )
    return _decode_fields(value, struct, struct.name)


def _decode_fields(
    pairs: Object, struct: StructType, path: str
) -> tuple[dict[str, Any], str | None]:
    values: dict[str, Any] = {}
    first_error: str | None = None
    for key, item in pairs:
        field = _find_field(struct, key)
        if field is None or item is None:
            continue

        decoded, error = _decode_field(item, field, f"{path}.{field.name}")
        if error is None:
            values[field.name] = decoded
        elif first_error is None:
            first_error = error
    return values, first_error


def _find_field(struct: StructType, key: str) -> StructField | None:
    for field in struct.fields:
        if field.name == key:
            return field
    folded = key.casefold()
    for field in struct.fields:
        if field.name.casefold() == folded:
            return field
    return None


def _decode_field(item: Any, field: StructField, path: str) -> tuple[Any, str | None]:
    go_type = field.go_type
    if isinstance(go_type, StructType):
        if not isinstance(item, Object):
            return None, _type_error(kind_of(item), path, go_type.qualified)
        return _decode_fields(item, go_type, path)
    if go_type == "string":
        if isinstance(item, str):
            return item, None
        return None, _type_error(kind_of(item), path, "string")
    if go_type == "int":
        return _decode_int(item, path)
    return _decode_bytes(item, path)


def _decode_int(item: Any, path: str) -> tuple[Any, str | None]:
    if not isinstance(item, Number):
        return None, _type_error(kind_of(item), path, "int")
    try:
        number = int(item.text)
    except ValueError:
        number = None
    if number is None or not _INT64[0] <= number <= _INT64[1]:
        return None, _type_error(f"number {item.text}", path, "int")
    return number, None


def _decode_bytes(item: Any, path: str) -> tuple[Any, str | None]:
    # Go decodes []byte from a base64 string, or element-wise from an array.
    if isinstance(item, str):
        decoded, error = go_base64_decode(item.encode("utf-8"))
        return (None, error) if error else (decoded, None)
    if not isinstance(item, list) or isinstance(item, Object):
        return None, _type_error(kind_of(item), path, "[]uint8")

    data = bytearray()
    for element in item:
        if element is None:
            data.append(0)
            continue
        if not isinstance(element, Number):
            return None, _type_error(kind_of(element), path, "uint8")
        if not element.text.isdigit() or int(element.text) > 255:
            return None, _type_error(f"number {element.text}", path, "uint8")
        data.append(int(element.text))
    return bytes(data), None


def _type_error(kind: str, path: str, go_type: str) -> str:
    return (
        f"json: cannot unmarshal {kind} into Go struct field {path} of type {go_type}"
    )


def _skip_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _raw_decode(text: str, start: int) -> tuple[Any, int]:
    decoder = json.JSONDecoder(
        object_pairs_hook=Object,
        parse_float=Number,
        parse_int=Number,
        parse_constant=_reject_constant,
    )
    try:
        value, end = decoder.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise GoJSONError(_syntax_message(text, exc.pos)) from None
    except RecursionError:
        # Go stops at a nesting depth of 10000; Python's stack ends sooner.
        raise GoJSONError("exceeded max depth") from None
    return _replace_lone_surrogates(value), end


def _reject_constant(name: str) -> Any:
    # Go has no NaN or Infinity literals.
    raise json.JSONDecodeError(f"invalid character {name[0]!r}", name, 0)


def _syntax_message(text: str, position: int) -> str:
    # TODO: Go names the context ("after object key", ...); this says less.
    if position >= len(text):
        return "unexpected EOF"
    return f"invalid character {text[position]!r} looking for beginning of value"


def _replace_lone_surrogates(value: Any) -> Any:
    # Go decodes a lone "\ud800" to U+FFFD; Python keeps the surrogate, which
    # could not be encoded again.
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, Object):
        return Object(
            (_replace_lone_surrogates(k), _replace_lone_surrogates(v)) for k, v in value
        )
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    return value


def _fits_float64(value: Any) -> bool:
    # Unmarshal into interface{} parses every number as a float64.
    if isinstance(value, Number):
        return math.isfinite(float(value.text))
    if isinstance(value, Object):
        return all(_fits_float64(v) for _, v in value)
    if isinstance(value, list):
        return all(_fits_float64(v) for v in value)
    return True


# -- encoding --------------------------------------------------------------------


def marshal(value: Any) -> bytes:
    """Encode like Go's ``json.Marshal``: compact, HTML-safe, raw UTF-8.

    ``<``, ``>`` and ``&`` become ``\\u003c``, ``\\u003e``, ``\\u0026`` and
    U+2028/U+2029 are escaped; those characters only occur inside strings, so
    replacing them in the finished text is safe. Lone surrogates become U+FFFD
    as Go writes invalid UTF-8. No trailing newline.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _GO_ESCAPES:
        text = text.replace(raw, escaped)
    return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


_GO_ESCAPES: Sequence[tuple[str, str]] = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


# -- encoding/base64 -------------------------------------------------------------


def go_base64_decode(data: bytes) -> tuple[bytes, str | None]:
    """``base64.StdEncoding.DecodeString``: the bytes decoded and Go's error.

    Go skips CR and LF anywhere, requires padding, and on an error still
    returns the complete 4-character groups before it (the agent's body
    decryption ignores the error and uses those bytes).
    """
    out = bytearray()
    index = 0
    while True:
        index, chunk, error, done = _decode_quantum(data, index)
        out += chunk
        if error is not None:
            return bytes(out), f"illegal base64 data at input byte {error}"
        if done:
            return bytes(out), None


def _decode_quantum(data: bytes, index: int) -> tuple[int, bytes, int | None, bool]:
    # Mirrors Go's decodeQuantum: returns (next index, bytes, error offset, end).
    values: list[int] = []
    while len(values) < 4:
        if index == len(data):
            if not values:
                return index, b"", None, True
            return index, b"", index - len(values), True
        char = data[index]
        index += 1
        if char in _NEWLINES:
            continue
        if char in _B64_VALUE:
            values.append(_B64_VALUE[char])
            continue
        if char != ord("="):
            return index, b"", index - 1, True
        return _finish_padding(data, index, values)
    return index, _assemble(values), None, False


def _finish_padding(
    data: bytes, index: int, values: list[int]
) -> tuple[int, bytes, int | None, bool]:
    if len(values) < 2:
        return index, b"", index - 1, True
    if len(values) == 2:
        index = _skip_newlines(data, index)
        if index == len(data):
            return index, b"", len(data), True
        if data[index] != ord("="):
            return index, b"", index - 1, True
        index += 1
    index = _skip_newlines(data, index)
    chunk = _assemble(values)
    # Trailing garbage after the padding: the group still counts.
    return index, chunk, index if index < len(data) else None, True


def _skip_newlines(data: bytes, index: int) -> int:
    while index < len(data) and data[index] in _NEWLINES:
        index += 1
    return index


def _assemble(values: list[int]) -> bytes:
    padded = values + [0] * (4 - len(values))
    number = padded[0] << 18 | padded[1] << 12 | padded[2] << 6 | padded[3]
    return number.to_bytes(3, "big")[: len(values) - 1]


# -- strconv ---------------------------------------------------------------------


def go_parse_int(text: str) -> tuple[int, str | None]:
    """``strconv.ParseInt(text, 10, 64)``: the value and Go's error reason."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or any(char not in "0123456789" for char in digits):
        return 0, "invalid syntax"
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        return (_INT64[1] if value > 0 else _INT64[0]), "value out of range"
    return value, None


def go_atoi(text: str) -> int:
    """``strconv.Atoi`` with its error dropped, as the agent's version compare does.

    Bad syntax gives 0; an out-of-range value gives the clamped int64.
    """
    return go_parse_int(text)[0]


def go_quote(text: str) -> str:
    """``strconv.Quote`` for the texts the agent quotes in messages.

    TODO: Go writes control characters as \\x01 where JSON escaping writes \\u0001.
    """
    return json.dumps(text, ensure_ascii=False)
