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
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

import obshell_contract
from obshell_contract.clauses import Clause, load_catalogue
from obshell_contract.errors import ContractError, UsageError
from obshell_contract.evidence import CLAUSE_PROPERTY, LEVEL_PROPERTY
from obshell_contract.log import logger
from obshell_contract.redaction import Redactor
from obshell_contract.report.commands import replay_command, reproduce_command
from obshell_contract.report.document import (
    Commands,
    RunInfo,
    build_document,
    case_file_id,
)
from obshell_contract.report.gate import (
    RunFacts,
    Verdict,
    apply_waivers,
    decide,
    diff_baseline,
)
from obshell_contract.report.html import render_html
from obshell_contract.report.masking import add_secrets, redact_report, run_redactor
from obshell_contract.report.options import Settings, add_options
from obshell_contract.report.results import Collector, TestRecord, clause_results

__all__ = ["MARKER", "REPORTER_KEY", "ComplianceReporter", "add_secrets"]

MARKER = "clause(*ids): the contract clauses this test checks"
REPORTER_KEY = pytest.StashKey["ComplianceReporter"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


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

    reporter = ComplianceReporter(config, settings, run_redactor(config))
    config.stash[REPORTER_KEY] = reporter
    config.pluginmanager.register(reporter, "obshell-compliance-reporter")


def pytest_unconfigure(config: pytest.Config) -> None:
    reporter = config.stash.get(REPORTER_KEY, None)
    if reporter is not None:
        del config.stash[REPORTER_KEY]
        config.pluginmanager.unregister(reporter)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Copy the clause marks into ``user_properties``: JUnit shows them, xdist ships them.

    Each clause is followed by its level, so that JUnit readers can pair them.
    """
    catalogue = load_catalogue()
    for mark in item.iter_markers("clause"):
        for cid in map(str, mark.args):
            if (CLAUSE_PROPERTY, cid) in item.user_properties:
                continue
            item.user_properties.append((CLAUSE_PROPERTY, cid))
            if cid in catalogue:
                item.user_properties.append((LEVEL_PROPERTY, catalogue[cid].level))


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
        run_redactor(self.config)

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
        return reproduce_command(self.config, record.nodeid, record.target)

    def _replay(self, record: TestRecord) -> str | None:
        name = self._cases_name(record)
        return None if name is None else replay_command(name, record.target)

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
