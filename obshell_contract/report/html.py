"""Rendering the compliance document as one self-contained, offline HTML page."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from obshell_contract.report.results import STATUSES
from obshell_contract.report.svg import STATUS_COLOURS, area_chart, timeline_chart

__all__ = ["TEMPLATE", "json_script", "render_html"]

TEMPLATE = "compliance.html.j2"

# What a JSON text needs so that no sequence in it can close the <script> block
# it sits in or start markup: the same escapes Go's encoding/json writes.
_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def json_script(value: Any) -> Markup:
    """``value`` as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    for char, escape in _SCRIPT_ESCAPES.items():
        text = text.replace(char, escape)
    return Markup(text)


def render_html(document: Mapping[str, Any]) -> str:
    """The report page for a (redacted) compliance document."""
    by_area = [(row["area"], row["counts"]) for row in document["summary"]["by_area"]]
    failure_index = {f["nodeid"]: n for n, f in enumerate(document["failures"])}

    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            doc=document,
            statuses=STATUSES,
            status_colours=STATUS_COLOURS,
            area_svg=area_chart(by_area),
            timeline_svg=timeline_chart(document["timeline"]),
            failure_index=failure_index,
            # A fresh nonce per page: only the report's own script may run.
            nonce=secrets.token_urlsafe(16),
        )
    )


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("obshell_contract", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["json_script"] = json_script
    return environment
