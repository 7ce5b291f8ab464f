"""The pytest plugin behind compliance reports, release gating and the JUnit defaults.

Loaded by the suite's plugin (``pytest_plugins``) or with ``-p
obshell_contract.report.plugin``. Outputs are on by default only for runs of the
contract suite (paths inside a ``contract_tests`` directory); any explicit
report option turns them on for other runs. Only the controller reports: on
pytest-xdist workers the plugin does no more than tag items with their clauses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

import obshell_contract
from obshell_contract.clauses import Clause, load_catalogue
from obshell_contract.errors import ContractError, UsageError
from obshell_contract.evidence import (
    CLAUSE_PROPERTY,
    EVIDENCE_PROPERTY,
    LEVEL_PROPERTY,
    TARGET_PROPERTY,
)
from obshell_contract.log import logger
from obshell_contract.redaction import Redactor
from obshell_contract.report.document import (
    Commands,
    RunInfo,
    build_document,
    case_file_id,
)
from obshell_contract.report.gate import (
    Gate,
    RunFacts,
    Verdict,
    Waiver,
    apply_waivers,
    decide,
    diff_baseline,
    load_baseline,
    load_waivers,
    parse_gate,
)
from obshell_contract.report.html import render_html
from obshell_contract.report.results import Collector, TestRecord, clause_results

__all__ = [
    "DEFAULT_HTML",
    "DEFAULT_JSON",
    "DEFAULT_JUNIT",
    "REPORTER_KEY",
    "ComplianceReporter",
    "Settings",
    "add_secrets",
    "is_contract_run",
]

DEFAULT_HTML = Path("reports/compliance.html")
DEFAULT_JSON = Path("reports/compliance.json")
DEFAULT_JUNIT = Path("reports/junit.xml")
CONTRACT_DIR = "contract_tests"
MARKER = "clause(*ids): the contract clauses this test checks"

# Option names whose values are secrets, and the environment variables that
# may carry them; the suite's plugin owns the options themselves.
_SECRET_OPTIONS = ("obshell_password", "obshell_agent_password")
_SECRET_ENV = ("OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD")

REPORTER_KEY = pytest.StashKey["ComplianceReporter"]()
_SECRETS_KEY = pytest.StashKey[Redactor]()


# -- options ---------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("obshell-contract reports")
    group.addoption(
        "--compliance-report",
        dest="compliance_report",
        metavar="PATH",
        help=f"write the HTML compliance report here (default for the contract "
        f"suite: {DEFAULT_HTML})",
    )
    group.addoption(
        "--compliance-json",
        dest="compliance_json",
        metavar="PATH",
        help=f"write the JSON compliance report here (default for the contract "
        f"suite: {DEFAULT_JSON})",
    )
    group.addoption(
        "--no-compliance-report",
        dest="no_compliance_report",
        action="store_true",
        help="write no compliance files (HTML, JSON, default JUnit); still gate",
    )
    group.addoption(
        "--gate",
        dest="compliance_gate",
        metavar="must|should|none",
        help="fail the run on failed MUST clauses (default), on MUST and SHOULD, "
        "or never (report only)",
    )
    group.addoption(
        "--waivers",
        dest="compliance_waivers",
        metavar="PATH",
        help="TOML file of [[waiver]] clause/reason/expires: accepted failures",
    )
    group.addoption(
        "--compliance-baseline",
        dest="compliance_baseline",
        metavar="PATH",
        help="an earlier compliance.json: report what newly fails and what was fixed",
    )


# -- settings --------------------------------------------------------------------


@dataclass
class Settings:
    """What the user asked of the reporter, checked."""

    active: bool
    gate: Gate = "must"
    html: Path | None = None
    json: Path | None = None
    junit: Path | None = None
    waivers: list[Waiver] = field(default_factory=list)
    waivers_file: Path | None = None
    baseline: dict[str, str] | None = None
    baseline_file: Path | None = None

    @property
    def cases_dir(self) -> Path | None:
        written = self.html or self.json
        return written.parent / "cases" if written else None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Read and check the options; a bad value raises a one-line UsageError."""
        option = config.option
        here = config.invocation_params.dir
        explicit = {
            name: getattr(option, name, None)
            for name in (
                "compliance_report",
                "compliance_json",
                "compliance_gate",
                "compliance_waivers",
                "compliance_baseline",
            )
        }
        contract = is_contract_run(config.args, here)
        wanted = contract or any(v is not None for v in explicit.values())
        # Listing tests (--collect-only) runs none: there is nothing to judge.
        settings = cls(active=wanted and not option.collectonly)
        if not settings.active:
            return settings

        settings.gate = parse_gate(explicit["compliance_gate"] or "must")
        settings._read_inputs(here, explicit)
        if not option.no_compliance_report:
            settings._choose_outputs(config, here, explicit, contract)
        return settings

    def _read_inputs(self, here: Path, explicit: dict[str, Any]) -> None:
        if explicit["compliance_waivers"]:
            self.waivers_file = here / explicit["compliance_waivers"]
            self.waivers = load_waivers(self.waivers_file, load_catalogue())
        if explicit["compliance_baseline"]:
            self.baseline_file = here / explicit["compliance_baseline"]
            self.baseline = load_baseline(self.baseline_file)

    def _choose_outputs(
        self,
        config: pytest.Config,
        here: Path,
        explicit: dict[str, Any],
        contract: bool,
    ) -> None:
        root = config.rootpath
        if explicit["compliance_report"]:
            self.html = here / explicit["compliance_report"]
        elif contract:
            self.html = root / DEFAULT_HTML
        if explicit["compliance_json"]:
            self.json = here / explicit["compliance_json"]
        elif contract:
            self.json = root / DEFAULT_JSON
        if contract and not config.option.xmlpath:
            self.junit = root / DEFAULT_JUNIT


def is_contract_run(args: Sequence[str], here: Path) -> bool:
    """Whether every path the run was given lies in a ``contract_tests`` directory."""
    paths = [arg.split("::", 1)[0] for arg in args if not arg.startswith("-")]
    if not paths:
        return False
    return all(CONTRACT_DIR in (here / path).resolve().parts for path in paths)


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


# -- hooks that run everywhere ---------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Registering the same marker line twice is harmless; the suite's plugin
    # registers it too.
    config.addinivalue_line("markers", MARKER)
    if hasattr(config, "workerinput"):
        return

    try:
        settings = Settings.from_config(config)
    except UsageError as exc:
        # pytest prints its own UsageError as one "ERROR: ..." line, exit 4.
        raise pytest.UsageError(str(exc)) from None
    if not settings.active:
        return
    if settings.junit is not None:
        # junitxml reads this in its own pytest_configure, which runs after ours.
        config.option.xmlpath = str(settings.junit)

    redactor = _redactor(config)
    redactor.extend(_run_secrets(config))
    reporter = ComplianceReporter(config, settings, redactor)
    config.stash[REPORTER_KEY] = reporter
    config.pluginmanager.register(reporter, "obshell-compliance-reporter")


def pytest_unconfigure(config: pytest.Config) -> None:
    reporter = config.stash.get(REPORTER_KEY, None)
    if reporter is not None:
        del config.stash[REPORTER_KEY]
        config.pluginmanager.unregister(reporter)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Copy the clause marks into ``user_properties``: JUnit shows them, xdist ships them."""
    catalogue = load_catalogue()
    for mark in item.iter_markers("clause"):
        for cid in mark.args:
            _add_property(item, CLAUSE_PROPERTY, str(cid))
            clause = catalogue.get(str(cid))
            if clause is not None:
                _add_property(item, LEVEL_PROPERTY, clause.level)


def _add_property(item: pytest.Item, key: str, value: str) -> None:
    # Levels repeat when a test names several clauses; JUnit pairs them in order.
    if key == LEVEL_PROPERTY or (key, value) not in item.user_properties:
        item.user_properties.append((key, value))


# -- the reporter (controller only) ---------------------------------------------


class ComplianceReporter:
    """Collects every test report, then writes the documents and sets the verdict."""

    def __init__(
        self, config: pytest.Config, settings: Settings, redactor: Redactor
    ) -> None:
        self.config = config
        self.settings = settings
        self.redactor = redactor
        self.collector = Collector(redactor)
        self.collection_errors: list[str] = []
        self.started = dt.datetime.now().astimezone()
        self._t0 = time.perf_counter()
        self.verdict: Verdict | None = None
        self.written: list[Path] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = dt.datetime.now().astimezone()
        self._t0 = time.perf_counter()
        # Every plugin is configured by now: learn the suite's secrets (its
        # random mock password among them).
        self.redactor.extend(_suite_secrets(self.config))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # First of all reporters, so the terminal and JUnit see redacted text.
        redact_report(report, self.redactor)
        self.collector.add(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        redact_report(report, self.redactor)
        if report.failed:
            self.collection_errors.append(f"collecting {report.nodeid or '.'}")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        document, self.verdict = self._judge(session, int(exitstatus))
        try:
            self._write(document)
        except OSError as exc:
            # A report that cannot be written must not pass for a clean run.
            raise pytest.UsageError(
                f"cannot write the compliance report: {exc}"
            ) from None
        session.exitstatus = self.verdict.exit_status

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.verdict is None:
            return
        for path in self.written:
            terminalreporter.write_line(f"obshell-contract: wrote {self._shown(path)}")
        colour = {"PASS": "green", "FAIL": "red"}.get(self.verdict.result, "purple")
        terminalreporter.write_line(self.verdict.line, **{colour: True, "bold": True})

    # -- judging ---------------------------------------------------------------

    def _judge(
        self, session: pytest.Session, exitstatus: int
    ) -> tuple[dict[str, Any], Verdict]:
        catalogue = load_catalogue()
        records = self.collector.records
        results = clause_results(catalogue, records)
        today = self.started.date()
        apply_waivers(results, self.settings.waivers, today)

        facts = RunFacts(
            pytest_status=exitstatus,
            tests_run=len(records),
            pytest_failed=any(r.outcome in ("failed", "error") for r in records),
            errors=self._errors(records, catalogue),
            report=self._report_name(),
            stopped=_stop_reason(session),
        )
        verdict = decide(
            results, self.settings.gate, self.settings.waivers, facts, today
        )
        baseline = None
        if self.settings.baseline is not None:
            baseline = diff_baseline(
                self._shown(self.settings.baseline_file),
                self.settings.baseline,
                results,
            )

        document = build_document(
            results,
            records,
            verdict,
            self._run_info(),
            waivers=self.settings.waivers,
            baseline=baseline,
            commands=Commands(self._reproduce, self._replay, self._cases_name),
            redactor=self.redactor,
        )
        return document, verdict

    def _errors(
        self, records: Sequence[TestRecord], catalogue: dict[str, Clause]
    ) -> list[str]:
        errors = list(self.collection_errors)
        for record in records:
            known = [cid for cid in record.clauses if cid in catalogue]
            if record.outcome == "error":
                errors.append(record.nodeid)
            elif record.outcome == "failed" and not known:
                # A failed test that names no clause cannot be gated away.
                errors.append(record.nodeid)
        return errors

    def _run_info(self) -> RunInfo:
        return RunInfo(
            suite_version=obshell_contract.__version__,
            started_at=self.started,
            duration=time.perf_counter() - self._t0,
            gate=self.settings.gate,
            hypothesis=_hypothesis_facts(self.config),
            schema_hashes=_schema_hashes(),
            workers=_workers(self.config),
            waivers_file=_maybe_str(
                self.settings.waivers_file and self._shown(self.settings.waivers_file)
            ),
            baseline_file=_maybe_str(
                self.settings.baseline_file and self._shown(self.settings.baseline_file)
            ),
        )

    # -- commands shown for a failure ------------------------------------------

    def _reproduce(self, record: TestRecord) -> str:
        args = ["python", "-m", "pytest", record.nodeid, *_target_args(record.target)]
        for name, flag in (
            ("allow_upgrade", "--allow-upgrade"),
            ("hypothesis_seed", "--hypothesis-seed"),
            ("hypothesis_profile", "--hypothesis-profile"),
        ):
            value = self.config.getoption(name, default=None)
            if value is True:
                args.append(flag)
            elif value not in (None, False):
                args += [flag, str(value)]
        return f"cd {shlex.quote(str(self.config.rootpath))} && {shlex.join(args)}"

    def _replay(self, record: TestRecord) -> str | None:
        name = self._cases_name(record)
        if name is None:
            return None
        target = record.target or {}
        if target.get("mock_profile") or not target.get("url"):
            mock = shlex.join(["obshell-mock", *_mock_args(target)])
            return (
                f"{mock}  # prints its URL; the embedded mock of the run is gone\n"
                f"obshell-contract-replay {shlex.quote(name)} --url URL"
            )
        return f"obshell-contract-replay {shlex.quote(name)} --url {shlex.quote(target['url'])}"

    def _cases_name(self, record: TestRecord) -> str | None:
        path = self._cases_path(record)
        return None if path is None else self._shown(path)

    def _cases_path(self, record: TestRecord) -> Path | None:
        cases_dir = self.settings.cases_dir
        if cases_dir is None or not record.evidence.cases:
            return None
        return cases_dir / f"{case_file_id(record.nodeid)}.json"

    # -- writing ---------------------------------------------------------------

    def _write(self, document: dict[str, Any]) -> None:
        if self.settings.json is not None:
            text = json.dumps(document, indent=1, ensure_ascii=False)
            self._save(self.settings.json, text + "\n")
        if self.settings.html is not None:
            self._save(self.settings.html, render_html(document))

        # Cases of an earlier run would pass for failures of this one.
        cases_dir = self.settings.cases_dir
        if cases_dir is not None and cases_dir.is_dir():
            for stale in cases_dir.glob("*.json"):
                stale.unlink()
        for record in self.collector.records:
            path = self._cases_path(record)
            if path is not None and record.has_failure:
                self._save(path, self._cases_json(record))

    def _cases_json(self, record: TestRecord) -> str:
        content = {
            "nodeid": record.nodeid,
            "clauses": record.clauses,
            "target": record.target,
            "cases": [asdict(case) for case in record.evidence.cases],
        }
        return (
            json.dumps(self.redactor.json(content), indent=1, ensure_ascii=False) + "\n"
        )

    def _save(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.written.append(path)
        logger.info("compliance report: wrote %s", path)

    def _report_name(self) -> str | None:
        written = self.settings.html or self.settings.json
        return self._shown(written) if written else None

    def _shown(self, path: Path | None) -> str:
        """A path as the user would type it: relative to where pytest was started."""
        if path is None:
            return ""
        try:
            return str(path.relative_to(self.config.invocation_params.dir))
        except ValueError:
            return str(path)


# -- helpers ---------------------------------------------------------------------


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


def _suite_secrets(config: pytest.Config) -> list[str]:
    """The passwords the suite's plugin settled on, when it runs in this session."""
    suite = sys.modules.get("obshell_contract.plugin")
    if suite is None or not config.pluginmanager.is_registered(suite):
        return []
    secrets: list[str] = suite.run_settings(config).secrets
    return secrets


def _target_args(target: dict[str, Any] | None) -> list[str]:
    if not target:
        return []
    if target.get("mock_profile"):
        return _mock_args(target, prefix="--mock-")
    return ["--obshell-url", str(target["url"])] if target.get("url") else []


def _mock_args(target: dict[str, Any], prefix: str = "--") -> list[str]:
    args = [f"{prefix}profile", str(target.get("mock_profile") or "reference")]
    for fault in target.get("mock_faults") or []:
        args += [f"{prefix}fault", str(fault)]
    return args


def _hypothesis_facts(config: pytest.Config) -> dict[str, Any]:
    seed = config.getoption("hypothesis_seed", default=None)
    profile = "default"
    # Importing Hypothesis costs seconds; a run that never did uses its default.
    hypothesis = sys.modules.get("hypothesis")
    if hypothesis is not None:
        profile = hypothesis.settings.get_current_profile_name()
    return {"profile": profile, "seed": None if seed is None else str(seed)}


def _schema_hashes() -> dict[str, str]:
    try:
        from obshell_contract import schemas

        hashes: dict[str, str] = schemas.schema_hashes()
    except (ImportError, ContractError, OSError) as exc:
        logger.warning("compliance report: no schema hashes: %s", exc)
        return {}
    return hashes


def _stop_reason(session: pytest.Session) -> str | None:
    reason = session.shouldstop or session.shouldfail
    return str(reason) if reason else None


def _workers(config: pytest.Config) -> int:
    workers = config.getoption("numprocesses", default=None)
    return workers if isinstance(workers, int) else 0


def _maybe_str(value: str | Path | None) -> str | None:
    return str(value) if value else None
