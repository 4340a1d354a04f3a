"""The HTML report: one self-contained file drawn from a results JSON, readable offline.

Everything the page needs is inside it: plotly.js from the installed plotly package, inlined
once in the head (about 4.8 MB, whatever the run's length), the charts' data, and a short style
sheet using the system's own fonts. Nothing is fetched when it opens. The same function draws
the report at the end of `wefperf run --report` and later with `wefperf report`, always from
the results JSON, so both show the same.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import write_whole

Data = Mapping[str, Any]

MAX_RANGES_SHOWN = 100
MAX_PROBLEMS_SHOWN = 50
CHART_HEIGHT = "340px"
PASS_COLOR, FAIL_COLOR = "#1a7f37", "#cf222e"
COLORS = {"sent": "#8c959f", "acknowledged": "#0969da", "server": "#bf8700", "target": "#57606a",
          # The latency lines: green, blue, orange, purple (max also dotted), none two of one hue.
          "p50": "#1a7f37", "p90": "#0969da", "p99": "#e16f24", "max": "#8250df"}


class NotResults(ValueError):
    """A file that is not a wefperf results JSON: the CLI prints the message as one line, exit 2."""


# -- reading and writing ------------------------------------------------------------------


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A results JSON (of `wefperf run` or `wefperf capacity`), or NotResults saying why not."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotResults(f"{path}: no such file") from None
    except IsADirectoryError:
        raise NotResults(f"{path}: is a directory, not a results JSON") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotResults(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NotResults(f"{path}: not JSON ({exc})") from None
    if not is_results(data):
        raise NotResults(f"{path}: not a wefperf results JSON (no configuration with results or capacity)")
    return data  # type: ignore[no-any-return]


def is_results(data: Any) -> bool:
    return (isinstance(data, dict) and isinstance(data.get("configuration"), dict)
            and (isinstance(data.get("results"), dict) or isinstance(data.get("capacity"), dict)))


def report_beside(results_path: str) -> str:
    """`--report auto`: the results JSON's name with .html, in its folder; "" for a device or pipe."""
    path = Path(results_path)
    if path.exists() and not path.is_file():
        return ""
    return str(path.with_suffix(".html") if path.suffix.lower() == ".json" else Path(f"{path}.html"))


def write_report(data: Data, path: str | os.PathLike[str]) -> Path:
    """Render and write the report whole or not at all (a reader never sees half a page)."""
    return write_page(render_html(data), path)


def write_page(text: str, path: str | os.PathLike[str]) -> Path:
    """Whole or not at all; the umask gives its mode."""
    return write_whole(path, text, ".html")


# -- the page -----------------------------------------------------------------------------


STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; background: #f6f8fa; color: #1f2328; font-size: 14px; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
.meta { color: #57606a; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 600; }
.pass { background: #1a7f37; } .fail { background: #cf222e; } .stop { background: #9a6700; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 8px; margin: 12px 0; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; }
.card .k { color: #57606a; font-size: 12px; } .card .v { font-size: 18px; font-weight: 600; }
.chart { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; margin: 10px 0; padding: 4px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 10px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; }
.note { color: #57606a; } code { font-size: 12px; }
ul { margin: 4px 0; }
"""


def page(title: str, body: Iterable[str], *, charts: bool) -> str:
    """A whole HTML document; plotly.js inline in the head when the body has charts."""
    script = ""
    if charts:
        from plotly.offline import get_plotlyjs

        script = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n{script}\n</head>\n"
        "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def render_html(data: Data) -> str:
    """The report of one results JSON: every section the file has data for."""
    name = str(data.get("test_name") or "wefperf run")
    parts = [_header(data)]
    parts.extend(_headline_cards(data))
    timeline = data.get("timeline") or []
    has_charts = bool(timeline) or bool(_capacity_steps(data))
    if "capacity" in data and isinstance(data["capacity"], dict):
        parts.extend(_capacity_section(data["capacity"]))
    if timeline:
        parts.append("<h2>Over the run, second by second</h2>")
        parts.extend(timeline_charts(data))
    parts.extend(_verdict_section(data))
    parts.extend(_latency_section(data))
    parts.extend(_hosts_section(data))
    parts.extend(_errors_section(data))
    parts.extend(_server_section(data))
    parts.extend(_s3_section(data))
    parts.extend(_settings_section(data))
    parts.append(f'<p class="note">Drawn by wefperf {esc(data.get("wefperf_version") or "")} from the results JSON;'
                 " the page fetches nothing.</p>")
    return page(f"wefperf: {name}", parts, charts=has_charts)


# -- pieces -------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any, digits: int = 0, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{value:,.{digits}f}{unit}"


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """Cells are escaped unless they are `Raw`."""
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell.html if isinstance(cell, Raw) else esc(cell)
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


class Raw:
    """Markup that a table cell takes as it is (already escaped)."""

    def __init__(self, markup: str) -> None:
        self.html = markup


def ok_mark(passed: Any) -> Raw:
    if passed is None:
        return Raw("–")
    return Raw('<span class="ok">✓ pass</span>' if passed else '<span class="bad">✗ fail</span>')


def _verdict_badge(data: Data) -> str:
    verdict = data.get("verdict") or {}
    if verdict.get("exit_code") == 130 or (data.get("results") or {}).get("interrupted"):
        return '<span class="badge stop">INTERRUPTED</span>'
    if verdict.get("passed"):
        return '<span class="badge pass">PASSED</span>'
    if verdict:
        return '<span class="badge fail">FAILED</span>'
    return ""


def _header(data: Data) -> str:
    meta = [f"run {data.get('run_id') or '–'}", str(data.get("timestamp") or "")]
    if data.get("profile"):
        meta.append(f"profile {data['profile']}")
    if data.get("host"):
        meta.append(f"host {data['host']}")
    if data.get("sender"):
        meta.append(f"sender {data['sender']}")
    return (f"<h1>{esc(data.get('test_name') or 'wefperf run')} {_verdict_badge(data)}</h1>"
            f"<div class=\"meta\">{esc(' · '.join(m for m in meta if m))}</div>")


def _headline_cards(data: Data) -> list[str]:
    res = data.get("results") or {}
    lat = (data.get("latency_ms") or {}).get("from_intended_send") or {}
    verdict = data.get("verdict") or {}
    cards: list[tuple[str, str]] = []
    cap = data.get("capacity")
    if isinstance(cap, dict):
        cards.append(("capacity", num(cap.get("events_per_second"), 0, " ev/s")))
    if res:
        cards += [
            ("acknowledged rate", num(res.get("events_per_second_overall"), 0, " ev/s")),
            ("server counted rate", num(res.get("events_per_second_processed"), 0, " ev/s")),
            ("events sent", num(res.get("events_sent"))),
            ("acknowledged", num(res.get("events_acknowledged"))),
            ("failed", num(res.get("events_failed"))),
            ("counted by the server", num(res.get("events_received"))),
            ("duration", num(res.get("load_window_seconds") or res.get("total_time_seconds"), 1, " s")),
        ]
    if verdict.get("target_ratio") is not None:
        cards.append(("target held", num(verdict["target_ratio"] * 100, 1, " %")))
    if lat.get("count"):
        cards += [("latency p50", num(lat.get("p50"), 1, " ms")), ("latency p99", num(lat.get("p99"), 1, " ms")),
                  ("latency p99.9", num(lat.get("p99_9"), 1, " ms"))]
    if not cards:
        return []
    body = "".join(f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
                   for k, v in cards)
    return [f'<div class="cards">{body}</div>']


# -- charts -------------------------------------------------------------------------------


def chart(fig: Any, div_id: str, height: str = CHART_HEIGHT) -> str:
    import plotly.io as pio

    fig.update_layout(margin={"l": 60, "r": 20, "t": 48, "b": 44}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.18}, hovermode="x unified")
    inner = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, default_height=height,
                        config={"displaylogo": False, "responsive": True})
    return f'<div class="chart" data-chart="{esc(div_id)}">{inner}</div>'


def _stage_bounds(config: Data) -> list[tuple[float, float, float]]:
    """(start s, end s, target eps) of each stage, from the configuration's stages."""
    out, at = [], 0.0
    for stage in config.get("stages") or []:
        if not isinstance(stage, dict):
            continue
        duration = float(stage.get("duration_s") or 0)
        out.append((at, at + duration, float(stage.get("target_eps") or 0)))
        at += duration
    return out


def _decorate_stages(fig: Any, stages: list[tuple[float, float, float]], label: bool) -> None:
    """Stages on the time axis: a band for every other one, a line at each boundary, their names."""
    for i, (start, end, eps) in enumerate(stages):
        if i % 2 == 0:
            fig.add_vrect(x0=start, x1=end, fillcolor="#0969da", opacity=0.05, line_width=0, layer="below")
        if i:
            fig.add_vline(x=start, line_dash="dot", line_color="#8c959f", line_width=1)
        if label:
            fig.add_annotation(x=(start + end) / 2, y=1.0, yref="paper", yanchor="bottom", showarrow=False,
                               text=f"stage {i + 1}: → {eps:,.0f}/s", font={"size": 11, "color": "#57606a"})


def _restart_spans(data: Data) -> list[tuple[float, float]]:
    """Each collector restart on the time axis: from when it went away until it was seen back."""
    server = data.get("server_stats") or {}
    spans = []
    for r in server.get("restarts") or [] if isinstance(server, dict) else []:
        if isinstance(r, dict):
            at = float(r.get("at_seconds") or 0)
            spans.append((at, max(at + float(r.get("unreachable_seconds") or 0), float(r.get("seen_at_seconds") or at))))
    return spans


def _decorate_restarts(fig: Any, spans: list[tuple[float, float]], label: bool) -> None:
    """A collector restart: a band over its outage, labelled on the first chart."""
    for start, end in spans:
        fig.add_vrect(x0=start, x1=max(end, start + 0.2), fillcolor=FAIL_COLOR, opacity=0.12, line_width=0,
                      layer="below")
        if label:
            fig.add_annotation(x=start, y=1.0, yref="paper", yanchor="bottom", xanchor="left", showarrow=False,
                               text="collector restart", font={"size": 11, "color": FAIL_COLOR})


def _target_points(data: Data, seconds: int) -> tuple[list[float], list[float]] | None:
    config = data.get("configuration") or {}
    stages = _stage_bounds(config)
    if stages:
        xs, ys = [0.0], [0.0]
        for _, end, eps in stages:
            xs.append(end)
            ys.append(eps)
        return xs, ys
    rate = config.get("target_eps")
    if isinstance(rate, (int, float)) and rate > 0:
        until = float(config.get("duration_secs") or 0) or float(seconds)
        return [0.0, until], [float(rate), float(rate)]
    return None


def server_rates(timeline: Sequence[Data], interval_s: float = 1.0) -> tuple[list[int], list[float | None]]:
    """The server's counted rate at each stats sample: its delta over the time since the previous one."""
    xs: list[int] = []
    ys: list[float | None] = []
    prev: int | None = None
    for row in timeline:
        n = row.get("server_events")
        if n is None:
            continue
        t = int(row.get("t", 0))
        span = t - prev if prev is not None else max(round(interval_s), 1)
        xs.append(t)
        ys.append(n / max(span, 1))
        prev = t
    return xs, ys


def _column(timeline: Sequence[Data], key: str) -> list[Any]:
    return [row.get(key) for row in timeline]


def timeline_charts(data: Data) -> list[str]:
    import plotly.graph_objects as go

    timeline: list[Data] = list(data.get("timeline") or [])
    config = data.get("configuration") or {}
    stages = _stage_bounds(config)
    restarts = _restart_spans(data)
    t = _column(timeline, "t")
    axis = {"title": {"text": "seconds since the load started"}, "rangemode": "tozero"}
    out = []

    rates = go.Figure()
    rates.add_scatter(x=t, y=_column(timeline, "sent_events"), name="sent", mode="lines",
                      line={"color": COLORS["sent"]})
    rates.add_scatter(x=t, y=_column(timeline, "acked_events"), name="acknowledged (2xx)", mode="lines",
                      line={"color": COLORS["acknowledged"]})
    sx, sy = server_rates(timeline, float(config.get("stats_interval_secs") or 1))
    if sx:
        rates.add_scatter(x=sx, y=sy, name="counted by the server (per stats read)", mode="lines+markers",
                          line={"color": COLORS["server"]}, marker={"size": 4})
    target = _target_points(data, len(timeline))
    if target:
        rates.add_scatter(x=target[0], y=target[1], name="target", mode="lines",
                          line={"color": COLORS["target"], "dash": "dash"})
    rates.update_layout(title={"text": "Rate (events per second)"}, xaxis=axis, yaxis={"rangemode": "tozero"})
    _decorate_stages(rates, stages, label=True)
    _decorate_restarts(rates, restarts, label=True)
    out.append(chart(rates, "chart-rates"))

    latency = go.Figure()
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("max_ms", "max")):
        line = {"color": COLORS[label], **({"dash": "dot"} if label == "max" else {})}
        latency.add_scatter(x=t, y=_column(timeline, key), name=label, mode="lines", line=line, connectgaps=False)
    latency.update_layout(title={"text": "Latency from the intended send time, per second (ms)"}, xaxis=axis,
                          yaxis={"rangemode": "tozero"})
    _decorate_stages(latency, stages, label=False)
    _decorate_restarts(latency, restarts, label=False)
    out.append(chart(latency, "chart-latency"))

    lag = go.Figure()
    lag.add_scatter(x=t, y=_column(timeline, "lag_p99_ms"), name="schedule lag p99", mode="lines",
                    line={"color": "#8250df"})
    lag.update_layout(title={"text": "Schedule lag p99, per second (ms): how late batches left"}, xaxis=axis,
                      yaxis={"rangemode": "tozero"}, showlegend=False)
    _decorate_stages(lag, stages, label=False)
    _decorate_restarts(lag, restarts, label=False)
    out.append(chart(lag, "chart-lag", "260px"))

    errors = go.Figure()
    classes = sorted({name for row in timeline for name in (row.get("errors") or {})})
    for name in classes:
        errors.add_bar(x=t, y=[(row.get("errors") or {}).get(name, 0) for row in timeline], name=name)
    if not classes:
        errors.add_scatter(x=t, y=_column(timeline, "failed_events"), name="failed events", mode="lines",
                           line={"color": FAIL_COLOR})
    errors.update_layout(
        title={"text": "Failed events per second, by error class" + ("" if classes else ": none")},
        barmode="stack", xaxis=axis, yaxis={"rangemode": "tozero", **({} if classes else {"range": [0, 1]})},
    )
    _decorate_stages(errors, stages, label=False)
    _decorate_restarts(errors, restarts, label=False)
    out.append(chart(errors, "chart-errors", "260px"))

    flight = go.Figure()
    flight.add_scatter(x=t, y=_column(timeline, "in_flight"), name="in flight", mode="lines",
                       line={"color": "#0969da", "shape": "hv"})
    limit = config.get("concurrency")
    if isinstance(limit, int):
        flight.add_hline(y=limit, line_dash="dot", line_color="#8c959f",
                         annotation_text=f"concurrency {limit}", annotation_position="top left")
    flight.update_layout(title={"text": "Requests in flight at the end of each second"}, xaxis=axis,
                         yaxis={"rangemode": "tozero"}, showlegend=False)
    _decorate_stages(flight, stages, label=False)
    _decorate_restarts(flight, restarts, label=False)
    out.append(chart(flight, "chart-inflight", "260px"))
    return out


# -- capacity -----------------------------------------------------------------------------


def _capacity_steps(data: Data) -> list[Data]:
    cap = data.get("capacity")
    if not isinstance(cap, dict):
        return []
    return [s for s in cap.get("steps") or [] if isinstance(s, dict)]


def capacity_figure(cap: Data, name: str = "p99", color: str = "#0969da") -> Any:
    import plotly.graph_objects as go

    steps = sorted((s for s in cap.get("steps") or [] if isinstance(s, dict)),
                   key=lambda s: float(s.get("target_eps") or 0))
    fig = go.Figure()
    fig.add_scatter(
        x=[s.get("target_eps") for s in steps], y=[s.get("latency_p99_ms") for s in steps], name=name,
        mode="lines+markers", line={"color": color},
        marker={"size": 11, "color": [PASS_COLOR if s.get("passed") else FAIL_COLOR for s in steps],
                "symbol": ["circle" if s.get("passed") else "x" for s in steps], "line": {"width": 1, "color": "#fff"}},
        text=["held" if s.get("passed") else "broke: " + ", ".join(s.get("broken") or []) for s in steps],
        hovertemplate="%{x:,.0f}/s: p99 %{y:,.1f} ms, %{text}<extra></extra>",
    )
    eps = cap.get("events_per_second")
    if isinstance(eps, (int, float)):
        fig.add_vline(x=eps, line_color=PASS_COLOR, line_width=2,
                      annotation_text=f"capacity {eps:,.0f}/s", annotation_position="top left")
    broke = cap.get("lowest_broken_eps")
    if isinstance(broke, (int, float)):
        fig.add_vline(x=broke, line_color=FAIL_COLOR, line_dash="dot",
                      annotation_text=f"broke at {broke:,.0f}/s", annotation_position="top right")
    fig.update_layout(title={"text": "Capacity search: p99 latency at each step's rate (green held, red x broke)"},
                      xaxis={"title": {"text": "target rate (events/s)"}, "rangemode": "tozero"},
                      yaxis={"title": {"text": "p99 latency (ms)"}, "rangemode": "tozero"}, hovermode="closest")
    return fig


def _capacity_section(cap: Data) -> list[str]:
    out = ["<h2>Capacity</h2>"]
    eps = cap.get("events_per_second")
    if isinstance(eps, (int, float)):
        within = f" (within {cap['precision'] * 100:g} %)" if isinstance(cap.get("precision"), (int, float)) else ""
        more = " — every rate up to the maximum held, so it is at least this" if cap.get("reached_max_eps") else ""
        asked = cap.get("highest_rate_held_eps")
        held = f", the highest rate that held was {num(asked)} events/s" if isinstance(asked, (int, float)) else ""
        out.append(f"<p>What the collector acknowledged while a step held every threshold: <b>{esc(num(eps))}"
                   f" events/s</b>{esc(within)}{esc(held)}{esc(more)}.</p>")
    else:
        out.append("<p class=\"bad\">No rate held every threshold, not even the first step.</p>")
    if cap.get("interrupted"):
        out.append('<p class="note">The search was interrupted.</p>')
    if _capacity_steps({"capacity": cap}):
        out.append(chart(capacity_figure(cap), "chart-capacity"))
    rows = []
    for i, s in enumerate(cap.get("steps") or [], 1):
        if not isinstance(s, dict):
            continue
        ratio = s.get("achieved_ratio")
        rows.append([i, num(s.get("target_eps")), num(s.get("achieved_eps")),
                     num(ratio * 100, 1) if isinstance(ratio, (int, float)) else "–", num(s.get("latency_p50_ms"), 1),
                     num(s.get("latency_p99_ms"), 1), num(s.get("latency_p999_ms"), 1),
                     num((s.get("error_ratio") or 0) * 100, 3) if s.get("error_ratio") is not None else "–",
                     num(s.get("server_lag_events")), ok_mark(s.get("passed")), ", ".join(s.get("broken") or [])])
    if rows:
        out.append(table(["step", "target ev/s", "achieved ev/s", "achieved %", "p50 ms", "p99 ms", "p99.9 ms",
                          "errors %", "server lag (events)", "", "thresholds broken"], rows, numeric=range(1, 9)))
    return out


# -- tables -------------------------------------------------------------------------------


def _verdict_section(data: Data) -> list[str]:
    verdict = data.get("verdict")
    if not isinstance(verdict, dict):
        return []
    out = ["<h2>Verdict</h2>", f"<p>{_verdict_badge(data)} exit code {esc(verdict.get('exit_code'))}"]
    if verdict.get("target_ratio") is not None:
        out[-1] += f" · target held {esc(num(verdict['target_ratio'] * 100, 1))} %"
    out[-1] += "</p>"
    reasons = verdict.get("reasons") or []
    if reasons:
        out.append("<ul>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    rows = []
    for j in verdict.get("thresholds") or []:
        op = "≤" if j.get("bound") == "max" else "≥"
        measured = j.get("measured")
        rows.append([j.get("name"), f"{op} {_g(j.get('limit'))}",
                     "not measured" if measured is None else _g(measured), ok_mark(j.get("passed"))])
    if rows:
        out.append(table(["threshold", "bound", "measured", ""], rows, numeric=(1, 2)))
    return out


def _g(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"{value:,.6g}"


def _latency_section(data: Data) -> list[str]:
    lat = data.get("latency_ms")
    if not isinstance(lat, dict):
        return []
    names = {"from_intended_send": "from the intended send time", "service_time": "service time (from the actual send)",
             "schedule_lag": "schedule lag"}
    rows = []
    for key, label in names.items():
        p = lat.get(key)
        if isinstance(p, dict):
            rows.append([label, *_pct_cells(p)])
    res = data.get("results") or {}
    out = ["<h2>Latency percentiles (HDR histograms, ms)</h2>",
           table(["", "batches", "p50", "p90", "p99", "p99.9", "max", "mean"], rows, numeric=range(1, 8))]
    extra = []
    if res.get("late_batches") is not None:
        extra.append(f"late batches (sent more than 10 ms after their time): {num(res.get('late_batches'))}")
    if res.get("due_not_sent"):
        extra.append(f"due but never sent (every sender was busy): {num(res.get('due_not_sent'))} batches")
    if extra:
        out.append("<p class=\"note\">" + esc("; ".join(extra)) + "</p>")
    return out


def _pct_cells(p: dict[str, Any]) -> list[str]:
    """A results JSON percentile object as table cells: count, p50, p90, p99, p99.9, max, mean."""
    return [num(p.get("count")), *(num(p.get(k), 2) for k in ("p50", "p90", "p99", "p99_9", "max", "mean"))]


def _hosts_section(data: Data) -> list[str]:
    """Simulated hosts: each event's latency from when it fell due, deliveries, and the wsman protocol."""
    hosts = data.get("hosts")
    if not isinstance(hosts, dict):
        return []
    out = ["<h2>Simulated hosts</h2>"]
    event = (data.get("latency_ms") or {}).get("event")
    if isinstance(event, dict):
        out.append(table(["event latency (ms, from when each event fell due)", "events", "p50", "p90", "p99",
                          "p99.9", "max", "mean"], [["per event", *_pct_cells(event)]], numeric=range(1, 8)))
    rows = [
        ["hosts (connections opened, hosts that delivered)",
         f"{num(hosts.get('hosts'))} ({num(hosts.get('connections'))}, {num(hosts.get('hosts_delivering'))})"],
        [f"full deliveries ({num(hosts.get('max_items'))} events)", num(hosts.get("full_deliveries"))],
        [f"deliveries on max latency ({_secs(hosts.get('max_latency_s'))})", num(hosts.get("timed_deliveries"))],
        ["events due in the plan", num(hosts.get("events_due"))],
        ["events failed, never sent (no connection or subscription)",
         num((data.get("results") or {}).get("events_failed_unsent"))],
        ["events still held at their hosts when the window closed", num(hosts.get("events_held"))],
        ["hosts that could not connect before the load", num(hosts.get("connect_failures"))],
    ]
    wsman = data.get("wsman")
    if isinstance(wsman, dict):
        rows += [
            ["WS-Management enumerations", num(wsman.get("enumerations"))],
            ["Events envelopes (retries included)", num(wsman.get("envelopes"))],
            ["retries / wrong Acks", f"{num(wsman.get('retries'))} / {num(wsman.get('wrong_acks'))}"],
            ["heartbeats (acknowledged)", f"{num(wsman.get('heartbeats'))} ({num(wsman.get('heartbeats_acked'))})"],
            ["subscription: Heartbeats, MaxTime, MaxEnvelopeSize",
             f"{_secs(wsman.get('heartbeat_s'))}, {_secs(wsman.get('max_time_s'))},"
             f" {num(wsman.get('max_envelope'))} bytes"],
            ["subscription: ContentFormat", str(wsman.get("content_format") or "–")],
            ["refreshes (failed; bookmark behind)", f"{num(wsman.get('refreshes'))}"
             f" ({num(wsman.get('refresh_failures'))}; {num(wsman.get('bookmarks_behind'))})"],
        ]
        for b in wsman.get("batching") or []:
            if isinstance(b, dict):
                rows.append([f"batching of {num(b.get('hosts'))} hosts",
                             f"at most {num(b.get('max_items'))} events ({b.get('items_from')}),"
                             f" after {_secs(b.get('max_latency_s'))} ({b.get('latency_from')})"])
    out.append(table(["", "value"], rows, numeric=(1,)))
    return out


def _secs(value: Any) -> str:
    return f"{value:,g} s" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _errors_section(data: Data) -> list[str]:
    errors = data.get("errors")
    if not isinstance(errors, dict):
        return []
    out = ["<h2>Errors by class</h2>"]
    if not errors:
        out.append('<p class="ok">No failed batch.</p>')
        return out
    rows = [[name, num(e.get("batches")), num(e.get("events")), "; ".join(e.get("samples") or [])]
            for name, e in sorted(errors.items(), key=lambda kv: -(kv[1].get("batches") or 0))]
    out.append(table(["class", "batches", "events", "first samples"], rows, numeric=(1, 2)))
    ranges = data.get("failed_batch_ranges") or []
    if ranges:
        shown = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in ranges[:MAX_RANGES_SHOWN])
        more = f" … and {len(ranges) - MAX_RANGES_SHOWN:,} more ranges" if len(ranges) > MAX_RANGES_SHOWN else ""
        out.append(f"<p>Failed batch numbers: {esc(shown + more)}</p>")
    return out


def _server_section(data: Data) -> list[str]:
    server = data.get("server_stats")
    if not isinstance(server, dict):
        return []
    out = ["<h2>The server's counts</h2>"]
    received = (data.get("results") or {}).get("events_received")
    acked = (data.get("results") or {}).get("events_acknowledged")
    line = (f"Baseline {num(server.get('baseline_total'))}, final {num(server.get('final_total'))}: "
            f"{num(received)} counted during the run")
    if isinstance(received, int) and isinstance(acked, int):
        line += f", {num(acked)} acknowledged (difference {acked - received:+,})"
    out.append(f"<p>{esc(line)}.</p>")
    out.extend(_restarts_part(server))
    source = server.get("source")
    if server.get("per_type_known") is False and isinstance(source, dict):
        out.append(f"<p>Counted by the Prometheus counter {esc(str(source.get('metric')))} at"
                   f" {esc(str(source.get('url')))}: a total over every event type, so counts by event type"
                   " are not available.</p>")
        for note in server.get("notes") or []:
            out.append(f'<p class="note">Note: {esc(note)}</p>')
        return out
    rows = []
    for r in server.get("per_event_id") or []:
        counted, expected = r.get("counted"), r.get("expected")
        diff = counted - expected if isinstance(counted, int) and isinstance(expected, int) else None
        rows.append([r.get("event_id") if r.get("event_id") is not None else "no EventID", num(counted),
                     num(expected) if expected is not None else "not sent by this run",
                     f"{diff:+,}" if diff is not None else "–", _labels(r)])
    if rows:
        out.append(table(["EventID", "counted by the server", "sent and acknowledged", "difference",
                          "the server's labels (where they say more than the EventID)"], rows, numeric=(1, 2, 3)))
    for note in server.get("notes") or []:
        out.append(f'<p class="note">Note: {esc(note)}</p>')
    return out


def _labels(row: Mapping[str, Any]) -> str:
    """The server's labels for one EventID, without the one that only repeats it (`EventID 4624`)."""
    labels = [str(label) for label in row.get("labels") or []]
    if not labels:
        return "(none counted)"
    return ", ".join(label for label in labels if label != f"EventID {row.get('event_id')}")


def _restarts_part(server: Data) -> list[str]:
    from ..observe.restarts import describe

    restarts = [r for r in server.get("restarts") or [] if isinstance(r, dict)]
    if not restarts:
        return []
    n = len(restarts)
    items = "".join(f"<li>{esc(describe(r))}</li>" for r in restarts)
    return [f"<p><strong>The collector restarted {n} time{'s' if n != 1 else ''} during the run</strong>: its"
            " counters started again from 0, and the counts here (the final total too) are summed across"
            " each restart. Marked on the charts above.</p>", f"<ul>{items}</ul>"]


def _ranges_table(ranges: Sequence[Sequence[int]], total: int | None, batch_size: int) -> str:
    rows = []
    for lo, hi in list(ranges)[:MAX_RANGES_SHOWN]:
        b_lo, b_hi = lo // batch_size, hi // batch_size
        rows.append([f"{lo}" if lo == hi else f"{lo}–{hi}", f"{b_lo}" if b_lo == b_hi else f"{b_lo}–{b_hi}",
                     num(hi - lo + 1)])
    text = table(["sequence numbers", "batches", "events"], rows, numeric=(2,))
    count = total if isinstance(total, int) else len(ranges)
    if count > len(rows):
        text += f'<p class="note">… and {count - len(rows):,} more ranges (the results JSON keeps up to 1,000).</p>'
    return text


def _s3_section(data: Data) -> list[str]:
    s3 = data.get("s3_verification")
    if not isinstance(s3, dict):
        return []
    out = ["<h2>S3 verification</h2>"]
    if s3.get("success"):
        out.append('<p class="ok">✓ S3 files verified successfully</p>')
    else:
        out.append(f'<p class="bad">✗ S3 verification failed: {esc(s3.get("reason") or s3.get("error") or "unknown")}</p>')
    rows: list[list[Any]] = [["bucket", s3.get("bucket")], ["files", num(s3.get("files_found"))],
            ["total size", f"{num(s3.get('total_size_mb'), 2)} MiB ({num(s3.get('total_size_bytes'))} bytes)"],
            ["rows", num(s3.get("rows"))], ["partitions (dates)", ", ".join(s3.get("dates") or []) or "all"],
            ["polls", f"{num(s3.get('polls'))} in {num(s3.get('elapsed_secs'), 1)} s"]]
    acct = s3.get("accounting")
    if isinstance(acct, dict):
        rows += [["events of run", acct.get("run_id")], ["expected (acknowledged)", num(acct.get("expected"))],
                 ["found", num(acct.get("found"))], ["missing", num(acct.get("missing"))],
                 ["duplicated (extra copies)", num(acct.get("duplicated"))],
                 ["misplaced (under another event type's partition)", num(acct.get("misplaced") or 0)],
                 ["never sent (unexpected sequence numbers)", num(acct.get("unexpected"))],
                 ["stored although not acknowledged", num(acct.get("not_acknowledged_found"))],
                 ["rows of other runs / without a marker",
                  f"{num(acct.get('other_rows'))} / {num(acct.get('unmarked_rows'))}"]]
    out.append(table(["", ""], rows))
    if s3.get("sample_files"):
        out.append("<p>Sample files: " + ", ".join(f"<code>{esc(k)}</code>" for k in s3["sample_files"]) + "</p>")
    if isinstance(acct, dict):
        size = int(acct.get("batch_size") or 1)
        if acct.get("missing_ranges"):
            out.append("<h3>Missing events</h3>")
            out.append(_ranges_table(acct["missing_ranges"], acct.get("missing_range_count"), size))
        if acct.get("duplicate_ranges"):
            out.append("<h3>Duplicated events</h3>")
            out.append(_ranges_table(acct["duplicate_ranges"], acct.get("duplicate_range_count"), size))
        if acct.get("misplaced_ranges"):
            out.append("<h3>Misplaced events (under another event type's partition)</h3>")
            out.append(_ranges_table(acct["misplaced_ranges"], acct.get("misplaced_range_count"), size))
    problems = s3.get("problems") or []
    if problems:
        more = len(problems) - MAX_PROBLEMS_SHOWN
        out.append(f"<h3>Problems ({num(s3.get('problem_count') or len(problems))})</h3><ul>"
                   + "".join(f"<li>{esc(p)}</li>" for p in problems[:MAX_PROBLEMS_SHOWN])
                   + (f"<li>… and {more:,} more</li>" if more > 0 else "") + "</ul>")
    return out


def _settings_section(data: Data) -> list[str]:
    config = data.get("configuration")
    if not isinstance(config, dict):
        return []
    from ..config.settings import ENV_NAMES

    rows = [["profile", "PERF_TEST_PROFILE", data.get("profile") or "(none)"]]
    for key, value in config.items():
        shown = json.dumps(value) if isinstance(value, (list, dict)) else ("" if value is None else str(value))
        rows.append([key, ENV_NAMES.get(key, ""), shown])
    payload = data.get("payload") or {}
    if payload.get("seed") is not None:
        rows.append(["payload seed", "", str(payload["seed"])])
    return ["<h2>Settings</h2>", table(["setting", "variable", "value"], rows)]
