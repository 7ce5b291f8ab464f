"""Checks every reply of a run must pass, and the expectations tests state.

The envelope checks run on *every* reply a contract test receives and are
recorded as :class:`~obshell_contract.evidence.Check` observations, so a broken
envelope fails the ENV-* clauses whichever test happened to see it. The
``expect_*`` helpers are the assertions tests make about their own clauses.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from obshell_contract import schemas
from obshell_contract.evidence import Case
from obshell_contract.redaction import REDACTED

if TYPE_CHECKING:
    from obshell_contract.client import Reply
    from obshell_contract.evidence import Evidence

__all__ = [
    "ContractViolation",
    "Observer",
    "case_of",
    "envelope_conformance",
    "expect_error",
    "expect_held",
    "expect_rejected",
    "expect_success",
    "markup_free",
    "secret_free",
]

TRACE_ID = re.compile(r"^[0-9a-f]{16}$")
# Tags and entities a plain-text message has no reason to carry.
MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|&[a-zA-Z]+;|javascript:", re.IGNORECASE)


class ContractViolation(AssertionError):
    """A reply broke a clause: says what the contract expects and what came back.

    ``case`` is the request in plaintext with what a compliant agent answers,
    for the report's replay command; None when no single request is to blame.
    """

    def __init__(
        self, clause: str, expected: str, actual: str, case: Case | None = None
    ) -> None:
        super().__init__(f"{clause}: expected {expected}; received {actual}")
        self.clause = clause
        self.expected = expected
        self.actual = actual
        self.case = case


def case_of(reply: Reply, **expect: Any) -> Case:
    """The plaintext request behind ``reply``, to be resent with fresh encryption."""
    exchange = reply.exchange
    return Case(
        method=exchange.method,
        path=exchange.uri,
        body=exchange.plaintext_body,
        forgery=exchange.forgery,
        expect=expect,
    )


# -- observations on every reply -------------------------------------------------


class Observer:
    """Runs the every-reply checks; a client calls it with each :class:`Reply`.

    ``sent_trace_ids`` lists trace ids a test chose to send, which replies may
    echo instead of a generated one.
    """

    def __init__(self, evidence: Evidence, secrets: list[str]) -> None:
        self.evidence = evidence
        self.secrets = [secret for secret in secrets if secret]
        self.sent_trace_ids: set[str] = set()

    def __repr__(self) -> str:
        return f"Observer(<{len(self.secrets)} secrets>)"

    def __call__(self, reply: Reply) -> None:
        envelope_conformance(reply, self.evidence, sent_trace_ids=self.sent_trace_ids)
        secret_free(reply, self.secrets, self.evidence)
        markup_free(reply, self.evidence)


def envelope_conformance(
    reply: Reply, evidence: Evidence, *, sent_trace_ids: set[str] | None = None
) -> None:
    """Record ENV-01 to ENV-06 for one reply."""
    body = reply.body
    if not isinstance(body, dict):
        evidence.check(
            "ENV-01",
            False,
            expected="a JSON object (the envelope)",
            actual=f"HTTP {reply.http_status} with "
            f"{_excerpt(reply.exchange.response_text)}",
        )
        return

    _schema_conformance(body, evidence)
    _status_agreement(reply, body, evidence)
    _trace_id_conformance(body, evidence, sent_trace_ids or set())
    _content_type_conformance(reply, evidence)


def _schema_conformance(body: dict[str, Any], evidence: Evidence) -> None:
    found = schemas.violations(body, schemas.ENVELOPE)
    timestamp = [v for v in found if v.pointer == "/timestamp"]
    others = [v for v in found if v.pointer != "/timestamp"]
    expected = "an envelope valid against envelope.schema.json"
    for violation in others:
        evidence.check(
            "ENV-01",
            False,
            expected=expected,
            actual=violation.message,
            pointer=violation.pointer,
        )
    if not others:
        evidence.check("ENV-01", True, expected=expected, actual="valid")
    evidence.check(
        "ENV-05",
        not timestamp,
        expected="timestamp in RFC 3339 with an offset",
        actual=repr(body.get("timestamp")),
        pointer="/timestamp",
    )


def _status_agreement(reply: Reply, body: dict[str, Any], evidence: Evidence) -> None:
    status = body.get("status")
    evidence.check(
        "ENV-02",
        status == reply.http_status,
        expected=f"status == HTTP status {reply.http_status}",
        actual=f"status {status!r}",
        pointer="/status",
    )

    successful = body.get("successful")
    has_error = "error" in body
    consistent = successful is (reply.http_status < 400) and has_error is (
        not successful
    )
    evidence.check(
        "ENV-03",
        consistent,
        expected="successful == (HTTP status < 400), and an error iff not successful",
        actual=f"HTTP {reply.http_status}, successful {successful!r}, error "
        f"{'present' if has_error else 'absent'}",
        pointer="/successful",
    )


def _trace_id_conformance(
    body: dict[str, Any], evidence: Evidence, sent: set[str]
) -> None:
    trace_id = body.get("traceId")
    # Errors raised before the agent assigns a trace id carry "".
    passed = isinstance(trace_id, str) and (
        trace_id == "" or trace_id in sent or TRACE_ID.match(trace_id) is not None
    )
    evidence.check(
        "ENV-04",
        passed,
        expected="traceId of 16 lowercase hex digits, an echoed X-OBSHELL-Trace-ID, "
        "or empty before tracing",
        actual=repr(trace_id),
        pointer="/traceId",
    )


def _content_type_conformance(reply: Reply, evidence: Evidence) -> None:
    content_type = reply.headers.get("Content-Type", "")
    evidence.check(
        "ENV-06",
        content_type.split(";")[0].strip() == "application/json",
        expected="Content-Type application/json",
        actual=repr(content_type),
    )


def secret_free(reply: Reply, secrets: list[str], evidence: Evidence) -> None:
    """ERR-01: the response must not contain a password or an AES key.

    Two signs: one of the run's passwords in the raw text, or a mask in the
    recorded text that the raw text did not have. The recorder masks every
    secret of the request too (a forged wrong password, its AES keys), so the
    second sign catches an agent that echoes those.
    """
    known = sum(1 for secret in secrets if secret and secret in reply.text)
    masked = reply.exchange.response_text.count(REDACTED) - reply.text.count(REDACTED)
    leaked = known + max(masked, 0)
    evidence.check(
        "ERR-01",
        not leaked,
        expected="no password or AES key in the response",
        # Never put the secret itself in the evidence: say how many leaked.
        actual=f"{leaked} secret(s) found in the response" if leaked else "none",
    )


def markup_free(reply: Reply, evidence: Evidence) -> None:
    """ERR-04: error messages are plain text."""
    message = (reply.error or {}).get("message")
    if not isinstance(message, str):
        return
    found = MARKUP.search(message)
    evidence.check(
        "ERR-04",
        found is None,
        expected="a plain-text error message",
        actual="plain text" if found is None else f"markup {found.group(0)!r}",
        pointer="/error/message",
    )


# -- expectations of a test ------------------------------------------------------


def expect_rejected(reply: Reply, clause: str) -> None:
    """The request must have been refused: an error status and an ``error``."""
    __tracebackhide__ = True
    if reply.http_status >= 400 and reply.error is not None:
        return
    raise ContractViolation(
        clause,
        "a rejection (HTTP status >= 400 with an error)",
        f"HTTP {reply.http_status} {_excerpt(reply.exchange.response_text)}",
        case_of(reply, rejected=True),
    )


def expect_error(
    reply: Reply,
    clause: str,
    *,
    status: int,
    err_code: str,
    message: str | None = None,
    message_prefix: str | None = None,
    code: int | None = None,
) -> None:
    """The reply must be exactly the documented error."""
    __tracebackhide__ = True
    error = reply.error or {}
    actual = (
        f"HTTP {reply.http_status}, errCode {reply.err_code!r}, "
        f"code {error.get('code')!r}, message {error.get('message')!r}"
    )
    wanted = f"HTTP {status}, errCode {err_code!r}"
    ok = reply.http_status == status and reply.err_code == err_code
    if code is not None:
        wanted += f", code {code}"
        ok = ok and error.get("code") == code
    if message is not None:
        wanted += f", message {message!r}"
        ok = ok and error.get("message") == message
    if message_prefix is not None:
        wanted += f", message starting {message_prefix!r}"
        ok = ok and str(error.get("message", "")).startswith(message_prefix)
    if not ok:
        raise ContractViolation(
            clause, wanted, actual, case_of(reply, status=status, err_code=err_code)
        )


def expect_held(evidence: Evidence, clause: str) -> None:
    """Every observation about ``clause`` this test made must have held."""
    __tracebackhide__ = True
    failed = [check for check in evidence.failed_checks if check.clause == clause]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise ContractViolation(clause, first.expected, first.actual + more)


def expect_success(reply: Reply, clause: str) -> Any:
    """The reply must be a 200 success; returns its ``data``."""
    __tracebackhide__ = True
    if reply.http_status == 200 and reply.successful:
        return reply.data
    raise ContractViolation(
        clause,
        "HTTP 200 with successful true",
        f"HTTP {reply.http_status} {_excerpt(reply.exchange.response_text)}",
        case_of(reply, status=200, successful=True),
    )


def _excerpt(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[:limit] + "…"
    return repr(text)
