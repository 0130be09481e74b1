"""The HTML report: one self-contained file that reads offline.

Charts are inline SVG drawn here (no script, no fonts, no network); styles are inline. The
page is meant to be mailed or attached to a ticket, so it must render from a file:// URL with
nothing else around it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Final

from trackguard.audit.model import AuditReport, DriftCluster, Finding, Timeline, TypeDrift

TITLE: Final = "trackguard audit report"
MAX_LINES: Final = 8
_COLORS: Final = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
)
_TYPE_COLORS: Final = {
    "string": "#1f77b4",
    "number": "#ff7f0e",
    "boolean": "#2ca02c",
    "null": "#7f7f7f",
    "object": "#9467bd",
    "array": "#8c564b",
}
_SEVERITY_COLORS: Final = {
    "critical": "#8b0000",
    "error": "#d62728",
    "warning": "#b8860b",
    "info": "#1f77b4",
}
_CSS: Final = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222;
max-width:1100px}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{color:#fff;border-radius:3px;padding:0 .35rem;font-size:.8rem}
.muted{color:#666;font-size:.85rem}svg.chart{display:block;margin:.5rem 0}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _time(ts: int, width: int) -> str:
    fmt = "%Y-%m-%d" if width >= 86400 else "%m-%d %H:%M"
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def _legend(names: list[str]) -> str:
    items = "".join(
        f'<span><i style="background:{_COLORS[i % len(_COLORS)]}"></i>{_e(n)}</span>'
        for i, n in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def line_chart(
    chart_id: str,
    title: str,
    lines: list[tuple[str, list[float]]],
    timeline: Timeline,
    *,
    percent: bool = False,
) -> str:
    """An SVG line chart over the timeline's buckets, one polyline per series."""
    width, height, left, right, top, bottom = 760, 260, 56, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max((len(v) for _, v in lines), default=0)
    peak = max((max(v) for _, v in lines if v), default=0.0) or 1.0
    if percent:
        peak = max(peak, 0.01)
    step = plot_w / max(count - 1, 1)
    parts = [
        f'<svg class="chart" id="{_e(chart_id)}" role="img" aria-label="{_e(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_e(title)}</title>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        label = f"{100 * value:.0f}%" if percent else f"{value:.0f}"
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{label}</text>'
        )
    for i in range(0, count, max(1, count // 6)):
        x = left + i * step
        ts = timeline.start + i * timeline.bucket_seconds
        anchor = "end" if count > 1 and i == count - 1 else "start" if i == 0 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{height - 14}" font-size="11" '
            f'text-anchor="{anchor}">{_e(_time(ts, timeline.bucket_seconds))}</text>'
        )
    for n, (name, values) in enumerate(lines):
        color = _COLORS[n % len(_COLORS)]
        points = " ".join(
            f"{left + i * step:.1f},{top + plot_h - plot_h * v / peak:.1f}"
            for i, v in enumerate(values)
        )
        if len(values) == 1:
            cx, cy = points.split(",")
            parts.append(
                f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"><title>{_e(name)}</title>'
                "</circle>"
            )
        else:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                f'points="{points}"><title>{_e(name)}</title></polyline>'
            )
    parts.append("</svg>")
    return "".join(parts) + _legend([name for name, _ in lines])


def bar_chart(chart_id: str, title: str, bars: list[tuple[str, dict[str, int]]]) -> str:
    """Horizontal stacked bars: one bar per label, one segment per type."""
    row, left, width = 22, 220, 760
    height = max(1, len(bars)) * row + 30
    plot_w = width - left - 60
    kinds = sorted({k for _, segs in bars for k in segs})
    palette = {k: _TYPE_COLORS.get(k, _COLORS[i % len(_COLORS)]) for i, k in enumerate(kinds)}
    parts = [
        f'<svg class="chart" id="{_e(chart_id)}" role="img" aria-label="{_e(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{_e(title)}</title>'
    ]
    for i, (label, segments) in enumerate(bars):
        y = 8 + i * row
        total = sum(segments.values()) or 1
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" font-size="12" '
            f'text-anchor="end">{_e(label[:34])}</text>'
        )
        x = float(left)
        for kind, value in segments.items():
            w = plot_w * value / total
            color = palette[kind]
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="16" '
                f'fill="{color}"><title>{_e(f"{label}: {kind} {value}")}</title></rect>'
            )
            x += w
        parts.append(
            f'<text x="{left + plot_w + 6}" y="{y + 14}" font-size="11">'
            f"{sum(segments.values())}</text>"
        )
    parts.append("</svg>")
    legend = "".join(f'<span><i style="background:{palette[k]}"></i>{_e(k)}</span>' for k in kinds)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _findings(findings: tuple[Finding, ...]) -> str:
    if not findings:
        return "<p>No findings.</p>"
    rows = []
    for f in findings:
        examples = "<br>".join(f"{_e(x.where)}: {_e(x.detail)}" for x in f.examples)
        rows.append(
            f'<tr><td><span class="sev" style="background:{_SEVERITY_COLORS[f.severity]}">'
            f'{_e(f.severity)}</span></td><td>{_e(f.title)}<div class="muted">{_e(f.id)}'
            f'</div></td><td class="n">{f.count}</td><td class="n">{100 * f.share:.1f}% of '
            f"{_e(f.of)}</td><td>{examples}</td></tr>"
        )
    return (
        '<table id="findings"><thead><tr><th>severity</th><th>finding</th><th>count</th>'
        f"<th>share</th><th>examples</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _variant(c: DriftCluster, name: str, count: int) -> str:
    """One variant and, unless it is certain, its confidence and evidence."""
    out = f'<span class="variant">{_e(name)}</span> ({count})'
    for m in c.matches:
        if m.name == name and m.confidence != "certain":
            out += f' <span class="{m.confidence}">{m.confidence}: {_e(m.evidence)}</span>'
    return out


def _drift(report: AuditReport) -> str:
    if not report.drift:
        return '<p id="drift-none">No naming drift.</p>'
    rows = "".join(
        f'<tr><td class="canonical">{_e(c.canonical)}</td><td>'
        + ", ".join(_variant(c, v.name, v.count) for v in c.variants)
        + f'</td><td class="n">{c.total}</td><td>{"plan" if c.from_plan else "traffic"}</td></tr>'
        for c in report.drift
    )
    return (
        '<table id="drift-clusters"><thead><tr><th>suggested name</th><th>variants (events)'
        f"</th><th>events</th><th>from</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _type_table(rows: tuple[TypeDrift, ...]) -> str:
    if not rows:
        return "<p>No key was seen with more than one type.</p>"
    body = "".join(
        f"<tr><td>{_e(r.event)}</td><td>{_e(r.key)}</td><td>"
        + ", ".join(f"{_e(t)} {n}" for t, n in r.types.items())
        + "</td><td>"
        + "<br>".join(f"{_e(t)}: {_e(w)}" for t, w in r.examples.items())
        + "</td></tr>"
        for r in rows
    )
    return (
        '<table id="type-drift"><thead><tr><th>event</th><th>key</th><th>types seen</th>'
        f"<th>first seen</th></tr></thead><tbody>{body}</tbody></table>"
    )


def _kv_table(table_id: str, data: dict[str, int]) -> str:
    rows = "".join(f'<tr><td>{_e(k)}</td><td class="n">{v}</td></tr>' for k, v in data.items())
    return f'<table id="{table_id}"><tbody>{rows}</tbody></table>'


def _timeline_charts(timeline: Timeline | None) -> str:
    if timeline is None or not timeline.series:
        return "<p>The log has no request times, so there is no timeline.</p>"
    shown = list(timeline.series[:MAX_LINES])
    volume = [(s.name, [float(v) for v in s.total]) for s in shown]
    rates = [
        (s.name, [i / t if t else 0.0 for i, t in zip(s.invalid, s.total, strict=True)])
        for s in shown
    ]
    minutes = timeline.bucket_seconds // 60
    note = f'<p class="muted">Buckets of {minutes} minutes; top {len(shown)} series.</p>'
    gaps = ""
    if timeline.gaps:
        items = "".join(
            f"<li>{_e(g.name)}: {_e(_time(g.start, 60))} to {_e(_time(g.end, 60))} "
            f"({g.expected:g} events expected)</li>"
            for g in timeline.gaps
        )
        gaps = f'<h3>Gaps</h3><ul id="gaps">{items}</ul>'
    return (
        "<h2>Volume over time</h2>"
        + note
        + line_chart("chart-volume", "Events per bucket", volume, timeline)
        + "<h2>Invalid rate over time</h2>"
        + '<p class="muted">Share of each event that Customer.io or the plan rejects.</p>'
        + line_chart("chart-invalid", "Invalid share per bucket", rates, timeline, percent=True)
        + gaps
    )


def render_html(report: AuditReport) -> str:
    """The whole report as one HTML document."""
    t = report.totals
    plan = f"plan {_e(report.plan)}" if report.plan else "contract only"
    inputs = "".join(
        f'<tr><td>{_e(i.path)}</td><td>{_e(i.format)}</td><td class="n">{i.records}</td>'
        f'<td class="n">{i.readable}</td><td class="n">{i.unreadable}</td>'
        f'<td class="n">{i.skipped}</td><td class="n">{i.blank}</td></tr>'
        for i in report.inputs
    )
    type_bars = [
        (f"{r.event}.{r.key}" if r.event != "*" else f"* {r.key}", r.types)
        for r in report.type_drift
    ][:30]
    stamp_bars = [("format", report.timestamps), ("recency", report.recency)]
    caps = "".join(f"<li>{_e(c)}</li>" for c in report.caps)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{TITLE}</title><style>{_CSS}</style></head><body>
<h1>{TITLE}</h1>
<p>{plan}; {t.records} records ({t.bytes / 1e6:.1f} MB) read in {t.seconds:.1f} s:
{t.requests} requests checked{t.pipelines_note}, {t.unreadable} unreadable,
{t.skipped} skipped (not Customer.io's APIs), {t.blank} blank lines; {t.events} events.</p>
<table id="inputs"><thead><tr><th>file</th><th>format</th><th>records</th><th>readable</th>
<th>unreadable</th><th>skipped</th><th>blank</th></tr></thead><tbody>{inputs}</tbody></table>
<h2>Verdicts and log statuses</h2>
{_kv_table("outcomes", report.outcomes)}{_kv_table("statuses", report.statuses)}
<h2>Findings</h2>{_findings(report.findings)}
{_timeline_charts(report.timeline)}
<h2>Naming drift</h2>{_drift(report)}
<h2>Type census</h2>
{
        bar_chart("chart-types", "Types of keys seen with more than one type", type_bars)
        if type_bars
        else ""
    }
{_type_table(report.type_drift)}
<h2>Timestamps</h2>
{bar_chart("chart-timestamps", "Event timestamps", stamp_bars) if report.timestamps else ""}
<h2>Identifiers</h2>{_kv_table("identifiers", report.identifiers)}
{f"<h2>Limits reached</h2><ul>{caps}</ul>" if caps else ""}
<p class="muted">trackguard {_e(report.version)}</p>
</body></html>
"""
