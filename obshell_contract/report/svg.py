"""Inline SVG charts for the HTML report: clause statuses by area, the DAG timeline.

Charts are built as text so that the report stays one offline file; every piece
of text that reaches them (area names, node names, DAG ids) is escaped here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = [
    "STATE_COLOURS",
    "STATUS_COLOURS",
    "area_chart",
    "timeline_chart",
]

STATUS_COLOURS: dict[str, str] = {
    "failed": "#c62828",
    "error": "#6a1b9a",
    "waived": "#ef8f00",
    "passed": "#2e7d32",
    "skipped": "#9e9e9e",
    "not run": "#cfd8dc",
}
STATE_COLOURS: dict[str, str] = {
    "PENDING": "#cfd8dc",
    "READY": "#90caf9",
    "RUNNING": "#1e88e5",
    "SUCCEED": "#2e7d32",
    "FAILED": "#c62828",
}
_OTHER_STATE = "#6a1b9a"

_LABEL_WIDTH = 170
# Node names run to 30 characters ("Download all required packages").
_STAGE_LABEL_WIDTH = 270
_BAR_WIDTH = 420
_ROW = 22
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'
_MAX_DAGS = 12


def area_chart(by_area: Sequence[tuple[str, Mapping[str, int]]]) -> Markup:
    """Horizontal stacked bars: one per area, one segment per clause status."""
    widest = max((sum(counts.values()) for _, counts in by_area), default=0) or 1
    height = _ROW * len(by_area) + 34
    width = _LABEL_WIDTH + _BAR_WIDTH + 60

    parts = [_open_svg(width, height, "Clause statuses by area")]
    for row, (area, counts) in enumerate(by_area):
        parts += _area_row(row * _ROW, area, counts, widest)
    parts.append(_legend(height - 16, STATUS_COLOURS))
    parts.append("</svg>")
    return Markup("".join(parts))


def _area_row(y: int, area: str, counts: Mapping[str, int], widest: int) -> list[str]:
    parts = [_text(_LABEL_WIDTH - 8, y + 15, area, anchor="end")]
    x = float(_LABEL_WIDTH)
    for status, colour in STATUS_COLOURS.items():
        count = counts.get(status, 0)
        if not count:
            continue
        w = _BAR_WIDTH * count / widest
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{_ROW - 6}" '
            f'fill="{colour}"><title>{escape(area)}: {count} {status}</title></rect>'
        )
        x += w
    parts.append(_text(x + 6, y + 15, str(sum(counts.values()))))
    return parts


def timeline_chart(entries: Sequence[Mapping[str, Any]]) -> Markup:
    """One Gantt-like block per observed DAG: a row per stage, bars per state.

    Times are shown relative to the DAG's first observation; an entry seen
    once gets a thin bar so that it stays visible. Tests that followed the
    same DAG and saw the same thing share one block.
    """
    if not entries:
        return Markup("")
    dags = _group_dags(entries)
    blocks = [
        _dag_block(dag_id, nodeids, rows) for dag_id, nodeids, rows in dags[:_MAX_DAGS]
    ]

    height = sum(h for h, _ in blocks) + 24
    width = _STAGE_LABEL_WIDTH + _BAR_WIDTH + 40
    parts = [_open_svg(width, height, "Upgrade DAG timeline as observed")]
    y = 0
    for block_height, body in blocks:
        parts.append(f'<g transform="translate(0,{y})">{body}</g>')
        y += block_height
    parts.append(_legend(height - 12, STATE_COLOURS))
    parts.append("</svg>")

    note = ""
    if len(dags) > _MAX_DAGS:
        note = f"<p>{len(dags) - _MAX_DAGS} more DAGs not drawn.</p>"
    return Markup("".join(parts) + note)


_Rows = list[Mapping[str, Any]]


def _group_dags(
    entries: Sequence[Mapping[str, Any]],
) -> list[tuple[str, list[str], _Rows]]:
    """``(dag_id, tests that saw it, entries)``, one per distinct observation."""
    per_test: dict[tuple[str, str], _Rows] = {}
    for entry in entries:
        key = (str(entry.get("nodeid", "")), str(entry["dag_id"]))
        per_test.setdefault(key, []).append(entry)

    merged: dict[str, tuple[str, list[str], _Rows]] = {}
    for (nodeid, dag_id), rows in per_test.items():
        seen = repr(
            [
                (r["stage"], r["node"], r["state"], r["first_seen"], r["last_seen"])
                for r in rows
            ]
        )
        merged.setdefault(f"{dag_id}|{seen}", (dag_id, [], rows))[1].append(nodeid)
    return list(merged.values())


def _dag_block(dag_id: str, nodeids: list[str], entries: _Rows) -> tuple[int, str]:
    start = min(float(e["first_seen"]) for e in entries)
    span = max(float(e["last_seen"]) for e in entries) - start or 1.0
    stages = sorted({(int(e["stage"]), str(e["node"])) for e in entries})

    seen_by = nodeids[0] if len(nodeids) == 1 else f"seen alike by {len(nodeids)} tests"
    parts = [_text(0, 14, f"DAG {dag_id} — {seen_by}", weight="bold")]
    if len(nodeids) > 1:
        parts.append(f"<title>{escape(chr(10).join(nodeids))}</title>")
    for row, (stage, node) in enumerate(stages):
        y = 20 + row * _ROW
        parts.append(
            _text(_STAGE_LABEL_WIDTH - 8, y + 15, f"{stage} · {node}", anchor="end")
        )
        parts += [
            _state_bar(e, y, start, span)
            for e in entries
            if (int(e["stage"]), str(e["node"])) == (stage, node)
        ]

    axis_y = 20 + len(stages) * _ROW
    parts.append(_axis(axis_y, span))
    return axis_y + 30, "".join(parts)


def _state_bar(entry: Mapping[str, Any], y: int, start: float, span: float) -> str:
    first = float(entry["first_seen"]) - start
    last = float(entry["last_seen"]) - start
    x = _STAGE_LABEL_WIDTH + _BAR_WIDTH * first / span
    w = max(_BAR_WIDTH * (last - first) / span, 2.0)
    state = str(entry["state"])
    colour = STATE_COLOURS.get(state, _OTHER_STATE)
    title = f"{state}: {first:.2f}s to {last:.2f}s"
    return (
        f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{_ROW - 6}" '
        f'fill="{colour}"><title>{escape(title)}</title></rect>'
    )


def _axis(y: int, span: float) -> str:
    left, right = _STAGE_LABEL_WIDTH, _STAGE_LABEL_WIDTH + _BAR_WIDTH
    parts = [f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#555"/>']
    for tick in range(5):
        seconds = span * tick / 4
        x = left + _BAR_WIDTH * tick / 4
        parts.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#555"/>'
        )
        parts.append(_text(x, y + 16, f"{seconds:.2f}s", anchor="middle"))
    return "".join(parts)


def _legend(y: int, colours: Mapping[str, str]) -> str:
    parts = []
    x = 0
    for name, colour in colours.items():
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
        )
        parts.append(_text(x + 14, y, name))
        x += 26 + 8 * len(name)
    return "".join(parts)


def _open_svg(width: int, height: int, label: str) -> str:
    return (
        # No xmlns: inline SVG in HTML needs none, and the report names no URL.
        f'<svg role="img" '
        f'aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {_FONT}>'
    )


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", weight: str = "normal"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="#222">{escape(text)}</text>'
    )
