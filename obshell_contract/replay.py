"""``obshell-contract-replay``: resend a failed test's cases with fresh encryption.

Recorded headers expire within seconds (``Ts``) and carry one-off AES keys, so a
failure is reproduced by re-encrypting each recorded plaintext request, with the
same deliberate defect (``forgery``), against a live agent or a fresh mock. Each
case is judged against its ``expect``: ``FAILED`` when the answer still violates
it, ``FIXED`` when it now meets it.

Exit status: 0 every case is fixed, 1 some case still fails, 2 usage error (bad
arguments or file, a case that cannot be rebuilt, an unreachable agent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

from obshell_contract.client import ObshellClient, Reply
from obshell_contract.errors import TransportError, UsageError
from obshell_contract.evidence import Case
from obshell_contract.forgery import FORGERIES, HONEST, Forger, encode_body
from obshell_contract.redaction import Redactor

__all__ = [
    "CaseFile",
    "Outcome",
    "check_url",
    "judge",
    "load_cases",
    "main",
    "replay_case",
]

PROG = "obshell-contract-replay"
EXIT_FIXED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# What ``expect`` may say; anything else is reported, not silently dropped.
EXPECT_KEYS = ("status", "status_class", "err_code", "rejected", "successful")


@dataclass(frozen=True)
class CaseFile:
    """A ``reports/cases/<id>.json`` file as the report plugin writes it."""

    path: Path
    nodeid: str
    clauses: list[str]
    cases: list[Case]


@dataclass(frozen=True)
class Outcome:
    """One replayed case: ``FAILED``, ``FIXED`` or ``UNKNOWN`` (not rebuildable)."""

    verdict: str
    case: Case
    problems: list[str]
    answer: str


def load_cases(path: Path) -> CaseFile:
    """Read a cases file; every defect is a :class:`UsageError` naming the file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not JSON: {exc}") from None

    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list):
        raise UsageError(f"{path}: expected an object with a 'cases' list")
    cases = [_case(item, index, path) for index, item in enumerate(raw["cases"], 1)]
    if not cases:
        raise UsageError(f"{path}: the 'cases' list is empty")
    return CaseFile(
        path, str(raw.get("nodeid", "")), list(raw.get("clauses", [])), cases
    )


def _case(item: Any, index: int, path: Path) -> Case:
    try:
        case = Case(**item)
    except TypeError:
        raise UsageError(
            f"{path}: case {index} is not a {{method, path, body, forgery, expect}} "
            f"object: {item!r}"
        ) from None
    if not isinstance(case.method, str) or not str(case.path).startswith("/"):
        raise UsageError(
            f"{path}: case {index} has no method or absolute path: {item!r}"
        )
    if not isinstance(case.expect, dict) or not case.expect:
        raise UsageError(f"{path}: case {index} says nothing it expects: {item!r}")
    return case


def replay_case(client: ObshellClient, case: Case, redactor: Redactor) -> Outcome:
    """Send ``case`` again with fresh encryption and judge the answer."""
    forgery = (
        HONEST if case.forgery in (None, HONEST.name) else FORGERIES.get(case.forgery)
    )
    if forgery is None:
        known = ", ".join(sorted(FORGERIES))
        problem = f"forgery {case.forgery!r} cannot be rebuilt; known: {known}"
        return Outcome("UNKNOWN", case, [problem], "")

    if forgery is HONEST:
        reply = client.request(case.method, case.path, raw_body=encode_body(case.body))
    else:
        reply = Forger(client).send(case.method, case.path, case.body, forgery)

    problems = judge(case.expect, reply)
    return Outcome(
        "FAILED" if problems else "FIXED", case, problems, _answer(reply, redactor)
    )


def judge(expect: Mapping[str, Any], reply: Reply) -> list[str]:
    """What in ``reply`` violates ``expect``; empty when it meets it."""
    refused = reply.http_status >= 400 or not reply.successful
    checks = {
        "status": lambda want: reply.http_status == want,
        "status_class": lambda want: f"{reply.http_status // 100}xx" == want,
        "err_code": lambda want: reply.err_code == want,
        "rejected": lambda want: refused == bool(want),
        "successful": lambda want: reply.successful == bool(want),
    }
    problems = []
    for key, want in expect.items():
        check = checks.get(key)
        if check is None:
            problems.append(
                f"cannot judge expect[{key!r}]; known: {', '.join(EXPECT_KEYS)}"
            )
        elif not check(want):
            problems.append(f"expected {key} {want!r}")
    return problems


def check_url(url: str) -> str:
    """``--url`` must be an agent's base URL: scheme, host and port only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {url!r}: expected http://HOST:PORT")
    if parts.path not in ("", "/") or parts.query:
        raise UsageError(f"--url {url!r}: expected no path or query")
    return url.rstrip("/")


def _answer(reply: Reply, redactor: Redactor) -> str:
    parts = [f"HTTP {reply.http_status}"]
    if reply.err_code:
        parts.append(reply.err_code)
    if reply.message:
        parts.append(repr(reply.message[:200]))
    elif reply.successful:
        parts.append("successful")
    return redactor.text(" ".join(parts))


# -- the command -----------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line and exit 2, as argparse does, but without the usage block.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Resend the cases of a failed contract test with fresh "
        "encryption and say whether each still fails.",
    )
    parser.add_argument(
        "cases", nargs="+", type=Path, help="reports/cases/<id>.json files"
    )
    parser.add_argument(
        "--url", required=True, help="the agent, e.g. http://127.0.0.1:8080"
    )
    parser.add_argument(
        "--password",
        default=None,
        help="root@sys password (default: $OBSHELL_PASSWORD; prefer the variable)",
    )
    parser.add_argument(
        "--agent-password",
        default=None,
        help="agent password: sends X-OCS-Agent-Header (default: $OBSHELL_AGENT_PASSWORD)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per request"
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of ``obshell-contract-replay``; returns the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    password = (
        args.password
        if args.password is not None
        else os.environ.get("OBSHELL_PASSWORD", "")
    )
    agent_password = (
        args.agent_password or os.environ.get("OBSHELL_AGENT_PASSWORD") or None
    )
    redactor = Redactor([password, agent_password or ""])

    try:
        url = check_url(args.url)
        files = [load_cases(path) for path in args.cases]
        with ObshellClient(
            url, password, agent_password=agent_password, timeout=args.timeout
        ) as client:
            outcomes = [_replay_file(client, f, redactor, out) for f in files]
    except (UsageError, TransportError) as exc:
        print(f"{PROG}: error: {redactor.text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    return _exit_status([o for group in outcomes for o in group], url, out)


def _replay_file(
    client: ObshellClient, cases: CaseFile, redactor: Redactor, out: TextIO
) -> list[Outcome]:
    print(
        f"{cases.path}: {cases.nodeid or 'cases'} ({', '.join(cases.clauses) or 'no clause'})",
        file=out,
    )
    outcomes = []
    for index, case in enumerate(cases.cases, 1):
        outcome = replay_case(client, case, redactor)
        print(_line(index, outcome), file=out)
        outcomes.append(outcome)
    return outcomes


def _line(index: int, outcome: Outcome) -> str:
    case = outcome.case
    what = f"case {index}: {case.method} {case.path}"
    if case.forgery:
        what += f" (forgery {case.forgery})"
    if outcome.verdict == "FIXED":
        return f"FIXED   {what}: {outcome.answer}"
    reasons = "; ".join(outcome.problems)
    got = f"; got {outcome.answer}" if outcome.answer else ""
    return f"{outcome.verdict:<7} {what}: {reasons}{got}"


def _exit_status(outcomes: Sequence[Outcome], url: str, out: TextIO) -> int:
    counts = {
        v: sum(o.verdict == v for o in outcomes) for v in ("FAILED", "FIXED", "UNKNOWN")
    }
    print(
        f"{PROG}: {counts['FAILED']} still failing, {counts['FIXED']} fixed, "
        f"{counts['UNKNOWN']} not rebuildable, against {url}",
        file=out,
    )
    if counts["FAILED"]:
        return EXIT_FAILED
    return EXIT_USAGE if counts["UNKNOWN"] else EXIT_FIXED


if __name__ == "__main__":
    sys.exit(main())
