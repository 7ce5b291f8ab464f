"""The mock's fault registry: named defects, each breaking exactly one promise.

A fault is switched on by name (``MockConfig.faults``, ``--fault NAME``). The
HTTP layer implements the ``server`` faults; the DAG engine implements the
``engine`` faults by checking ``name in faults``. Both are listed here so that
``--list-faults`` shows every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from obshell_contract.errors import UsageError

__all__ = [
    "ENGINE_FAULTS",
    "FAULTS",
    "SERVER_FAULTS",
    "Fault",
    "check_faults",
]

Layer = Literal["server", "engine"]


@dataclass(frozen=True)
class Fault:
    """One deliberate defect: its name, the promise it breaks, where it lives."""

    name: str
    description: str
    layer: Layer


def _fault(name: str, layer: Layer, description: str) -> Fault:
    return Fault(name, description, layer)


_ALL = (
    # -- the DAG engine --------------------------------------------------------
    _fault(
        "dag-state-outside-enum",
        "engine",
        "a DAG or node state outside the five-value enum is reported (DONE for SUCCEED)",
    ),
    _fault(
        "dag-stage-backwards",
        "engine",
        "the DAG stage goes back by one between two polls while it runs",
    ),
    _fault(
        "dag-wrong-max-stage",
        "engine",
        "max_stage is 8 while the DAG has 9 nodes",
    ),
    _fault(
        "dag-never-finishes",
        "engine",
        "the upgrade DAG stays RUNNING at stage 5 forever",
    ),
    _fault(
        "dag-id-mismatch",
        "engine",
        "the generic id is not '1' followed by dag_id",
    ),
    _fault(
        "concurrent-upgrade",
        "engine",
        "no maintenance lock: a second upgrade is accepted while one runs",
    ),
    _fault(
        "version-not-updated",
        "engine",
        "after SUCCEED the agent keeps reporting its old version in /api/v1/info",
    ),
    _fault(
        "node-state-disagrees",
        "engine",
        "a node reports SUCCEED while its sub-tasks are still RUNNING",
    ),
    # -- the HTTP server -------------------------------------------------------
    _fault(
        "accept-unencrypted",
        "server",
        "a request without X-OCS-Header is processed as if authenticated",
    ),
    _fault(
        "accept-plain-body",
        "server",
        "a plain JSON body under a valid header is accepted and processed",
    ),
    _fault(
        "ignore-password",
        "server",
        "a wrong password is accepted",
    ),
    _fault(
        "ignore-expiry",
        "server",
        "an expired Ts is accepted",
    ),
    _fault(
        "ignore-uri",
        "server",
        "a header signed for another URI is accepted",
    ),
    _fault(
        "accept-malformed-version",
        "server",
        "any version string is accepted and an upgrade DAG created for it "
        "(no format, order or package check)",
    ),
    _fault(
        "error-with-200",
        "server",
        "errors are answered with HTTP 200 (and status 200), the error inside",
    ),
    _fault(
        "status-mismatch",
        "server",
        "the envelope's status differs from the HTTP status (one more)",
    ),
    _fault(
        "drop-trace-id",
        "server",
        "envelopes carry no traceId key",
    ),
    _fault(
        "echo-password",
        "server",
        "the wrong password a client sent is echoed in the 401 message",
    ),
    _fault(
        "500-on-bad-input",
        "server",
        "bind and validation errors become 500 Common.Unexpected",
    ),
    _fault(
        "wrong-errcode",
        "server",
        "authentication failures carry errCode Common.Unexpected instead of their own",
    ),
    _fault(
        "bad-timestamp",
        "server",
        "the envelope timestamp has no offset (2026-01-02 03:04:05)",
    ),
    _fault(
        "markup-in-errors",
        "server",
        "error messages carry HTML markup (<script>alert(1)</script><b>x</b>)",
    ),
)

FAULTS: dict[str, Fault] = {fault.name: fault for fault in _ALL}
ENGINE_FAULTS = frozenset(name for name, f in FAULTS.items() if f.layer == "engine")
SERVER_FAULTS = frozenset(name for name, f in FAULTS.items() if f.layer == "server")


def check_faults(names: Iterable[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple, refusing any name that is not registered."""
    chosen = tuple(names)
    for name in chosen:
        if name not in FAULTS:
            known = ", ".join(sorted(FAULTS))
            raise UsageError(f"--fault {name!r} is not a known fault; known: {known}")
    return chosen
