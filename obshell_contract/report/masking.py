"""The run's secrets, and masking them in pytest's own reports before any writer.

The suite's recorder masks secrets in the evidence as it is taken; this is the
last line of defence for everything else a report carries (tracebacks, captured
output, properties), which pytest's terminal and JUnit writers print as is.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, cast

import pytest

from obshell_contract.evidence import EVIDENCE_PROPERTY, TARGET_PROPERTY
from obshell_contract.redaction import Redactor

__all__ = ["RedactedLongrepr", "add_secrets", "redact_report", "run_redactor"]

# Option names whose values are secrets, and the environment variables that
# may carry them; the suite's plugin owns the options themselves.
_SECRET_OPTIONS = ("obshell_password", "obshell_agent_password")
_SECRET_ENV = ("OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD")
_SECRETS_KEY = pytest.StashKey[Redactor]()


def add_secrets(config: pytest.Config, *secrets: str | None) -> None:
    """Tell the reporter about more secrets (e.g. a random mock password).

    Everything the run writes is redacted with them; call it from
    ``pytest_configure`` or a session fixture on the controller.
    """
    _redactor(config).extend(secrets)


def _redactor(config: pytest.Config) -> Redactor:
    if _SECRETS_KEY not in config.stash:
        config.stash[_SECRETS_KEY] = Redactor()
    return config.stash[_SECRETS_KEY]


def _run_secrets(config: pytest.Config) -> list[str]:
    from_options = [config.getoption(name, default=None) for name in _SECRET_OPTIONS]
    from_env = [os.environ.get(name) for name in _SECRET_ENV]
    return [s for s in (*from_options, *from_env) if isinstance(s, str) and s]


def run_redactor(config: pytest.Config) -> Redactor:
    """The run's redactor, knowing every secret known so far.

    Call it again once every plugin is configured: the suite's plugin settles
    on its passwords (a random one for the embedded mock) in its own
    ``pytest_configure``.
    """
    redactor = _redactor(config)
    redactor.extend(_run_secrets(config))
    redactor.extend(_suite_secrets(config))
    return redactor


def _suite_secrets(config: pytest.Config) -> list[str]:
    """The passwords the suite's plugin settled on, when it runs in this session."""
    suite = sys.modules.get("obshell_contract.plugin")
    if suite is None or not config.pluginmanager.is_registered(suite):
        return []
    secrets: list[str] = suite.run_settings(config).secrets
    return secrets


class RedactedLongrepr:
    """A failure's text after redaction, shaped enough like pytest's own repr.

    pytest's short summary and JUnit read ``reprcrash.message``; the terminal
    calls ``toterminal``.
    """

    @dataclass
    class Crash:
        path: str
        lineno: int
        message: str

    def __init__(self, text: str, reprcrash: RedactedLongrepr.Crash | None) -> None:
        self.text = text
        self.reprcrash = reprcrash

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


def redact_report(
    report: pytest.TestReport | pytest.CollectReport, redactor: Redactor
) -> None:
    """Mask the run's secrets in everything a report carries, in place."""
    _redact_longrepr(report, redactor)
    report.sections = [(title, redactor.text(text)) for title, text in report.sections]
    if isinstance(report, pytest.TestReport):
        report.user_properties = [
            (key, redactor.text(value) if isinstance(value, str) else value)
            for key, value in report.user_properties
        ]
        if isinstance(getattr(report, "wasxfail", None), str):
            report.wasxfail = redactor.text(report.wasxfail)
    for name in (EVIDENCE_PROPERTY, TARGET_PROPERTY):
        value = getattr(report, name, None)
        if isinstance(value, str):
            setattr(report, name, redactor.text(value))


def _redact_longrepr(
    report: pytest.TestReport | pytest.CollectReport, redactor: Redactor
) -> None:
    longrepr = report.longrepr
    if longrepr is None:
        return
    if isinstance(longrepr, tuple):
        path, lineno, reason = longrepr
        report.longrepr = (path, lineno, redactor.text(reason))
        return

    text = report.longreprtext
    redacted = redactor.text(text)
    if redacted == text:
        return
    crash = getattr(longrepr, "reprcrash", None)
    # Duck-typed: pytest's TerminalRepr is not public API.
    report.longrepr = cast(Any, RedactedLongrepr)(
        redacted,
        None
        if crash is None
        else RedactedLongrepr.Crash(
            redactor.text(str(crash.path)), crash.lineno, redactor.text(crash.message)
        ),
    )
