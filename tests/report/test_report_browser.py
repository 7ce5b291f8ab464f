"""The report in a real browser: offline, inert server text, working filters.

Debian's Chromium, driven by Playwright, renders a report of the contract suite
run against the mock with the ``markup-in-errors`` fault (``real_run``) (the server's error
messages carry ``<script>alert(1)</script><b>x</b>``), and a synthetic report
whose every field carries raw markup. Every request other than ``file:`` is
blocked and recorded; none may be attempted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.report.synthetic import MIXED, RealRun, SuiteRun
from tests.report.test_report_html import HOSTILE

pytest_plugins = ("pytester",)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "reports"


@dataclass
class Visit:
    """A page as the browser showed it, and everything it tried to do."""

    page: Any
    blocked: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def visible_rows(self, status: str | None = None) -> int:
        selector = (
            "tr.clause" if status is None else f'tr.clause[data-status="{status}"]'
        )
        count: int = self.page.locator(f"{selector}:visible").count()
        return count


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium package to run it"
        )
    sync_api = pytest.importorskip("playwright.sync_api")

    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def visit(browser: Any) -> Iterator[Callable[[Path], Visit]]:
    contexts: list[Any] = []

    def open_report(path: Path) -> Visit:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        visit = Visit(page)
        context.route("**/*", lambda route: _only_files(route, visit.blocked))
        page.on(
            "dialog",
            lambda dialog: (visit.dialogs.append(dialog.message), dialog.dismiss()),
        )
        page.on("pageerror", lambda error: visit.errors.append(str(error)))

        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        return visit

    yield open_report
    for context in contexts:
        context.close()


def _only_files(route: Any, blocked: list[str]) -> None:
    if route.request.url.startswith("file:"):
        route.continue_()
        return
    blocked.append(route.request.url)
    route.abort()


def show_all_exchanges(visit: Visit) -> int:
    """Press every "Show exchanges" button (in one round trip); how many there were."""
    count: int = visit.page.evaluate(
        """() => {
            const buttons = document.querySelectorAll("button.show-exchanges");
            buttons.forEach((button) => button.click());
            return buttons.length;
        }"""
    )
    return count


def assert_inert(visit: Visit) -> None:
    __tracebackhide__ = True
    page = visit.page
    assert visit.blocked == []
    assert visit.dialogs == []
    assert visit.errors == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The template uses no <b> and no <img>: any such element was injected.
    assert page.locator("b").count() == 0
    assert page.locator("img").count() == 0
    executable = page.evaluate(
        "Array.from(document.scripts).filter(s => s.type !== 'application/json').length"
    )
    assert executable == 1


def test_markup_from_the_mock_stays_text_in_the_browser(
    visit: Callable[[Path], Visit], real_run: RealRun
) -> None:
    # The mock's markup-in-errors fault breaks ERR-04, among others.
    assert "ERR-04" in real_run.document["verdict"]["line"]
    html = real_run.html_path

    shown = visit(html)
    assert show_all_exchanges(shown) > 0
    assert shown.page.locator("div.exchange").count() > 0

    assert_inert(shown)
    body = shown.page.inner_text("body")
    assert "<script>alert(1)</script><b>x</b>" in body
    assert (
        shown.page.locator('tr.clause[data-status="failed"]#clause-ERR-04').count() == 1
    )
    ARTIFACTS.mkdir(exist_ok=True)
    shown.page.screenshot(
        path=str(ARTIFACTS / "browser-markup-in-errors.png"), full_page=False
    )


def test_raw_markup_in_every_field_stays_text(
    visit: Callable[[Path], Visit],
    suite: Callable[..., Path],
    run_suite: Callable[..., SuiteRun],
) -> None:
    suite(test_hostile=HOSTILE.replace("alert(1)", "window.__pwned = 1; alert(1)"))
    run = run_suite()

    shown = visit(run.html_path)
    show_all_exchanges(shown)

    assert_inert(shown)
    assert "<b>x</b>" in shown.page.inner_text("#failure-0")


def test_filters_hide_and_show_clause_rows(
    visit: Callable[[Path], Visit],
    suite: Callable[..., Path],
    run_suite: Callable[..., SuiteRun],
) -> None:
    suite(test_mixed=MIXED)
    shown = visit(run_suite().html_path)
    total = shown.visible_rows()
    passed = shown.visible_rows("passed")
    must = shown.page.locator('tr.clause[data-level="MUST"]').count()

    shown.page.locator('#filters input[value="passed"]').uncheck()
    assert shown.visible_rows("passed") == 0
    assert shown.visible_rows() == total - passed
    assert shown.page.inner_text("#shown-count") == str(total - passed)

    shown.page.locator('#filters input[value="passed"]').check()
    shown.page.select_option("#level-filter", "MUST")
    assert shown.visible_rows() == must
    assert shown.page.locator('tr.clause[data-level="SHOULD"]:visible').count() == 0

    shown.page.select_option("#level-filter", "all")
    assert shown.visible_rows() == total
    assert passed == 2
    assert shown.errors == []
    assert shown.blocked == []
