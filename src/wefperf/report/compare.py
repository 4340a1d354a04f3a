"""Results files side by side: the headline figures, the change from the first, and overlaid curves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .html import Data, chart, esc, page, server_rates, table

# The first file is the reference; each figure says which way is better.
HIGHER, LOWER = "higher", "lower"
PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#bf3989", "#57606a")


@dataclass(frozen=True)
class Run:
    label: str
    data: Data


def _get(data: Data, *keys: str) -> Any:
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def achieved(d: Data) -> float | None:
    return _number(_get(d, "results", "events_per_second_overall"))


def capacity(d: Data) -> float | None:
    return _number(_get(d, "capacity", "events_per_second"))


def capacity_at_least(d: Data) -> bool:
    """The search stopped before a rate broke (at --max-eps, interrupted, the server gone): the capacity is a lower bound."""
    cap = _get(d, "capacity")
    if not isinstance(cap, dict):
        return False
    return bool(cap.get("reached_max_eps") or cap.get("interrupted") or d.get("error"))


def _latency(key: str) -> Callable[[Data], float | None]:
    def read(d: Data) -> float | None:
        lat = _get(d, "latency_ms", "from_intended_send")
        if not isinstance(lat, dict) or not lat.get("count"):
            return None
        return _number(lat.get(key))

    return read


def error_ratio(d: Data) -> float | None:
    """Failed of the events tried (sent, or failed before a byte went out), as the verdict judges it."""
    sent, failed = _number(_get(d, "results", "events_sent")), _number(_get(d, "results", "events_failed"))
    if sent is None or failed is None:
        return None
    tried = sent + (_number(_get(d, "results", "events_failed_unsent")) or 0.0)
    return failed / tried if tried else 0.0


def server_lag(d: Data) -> float | None:
    """Acknowledged events the server had not counted when the run ended."""
    acked, counted = _number(_get(d, "results", "events_acknowledged")), _number(_get(d, "results", "events_received"))
    return None if acked is None or counted is None else acked - counted


def _s3(key: str) -> Callable[[Data], float | None]:
    def read(d: Data) -> float | None:
        acct = _get(d, "s3_verification", "accounting")
        if not isinstance(acct, dict) or (key == "missing" and acct.get("expected") is None):
            return None
        return _number(acct.get(key))

    return read


@dataclass(frozen=True)
class Figure:
    name: str
    read: Callable[[Data], float | None]
    better: str
    digits: int = 0
    percent: bool = False  # a ratio shown in %, its change in percentage points
    counts: bool = False  # a count: the change is a difference, not a share
    at_least: Callable[[Data], bool] | None = None  # True where a file's value is only a lower bound

    def bounded(self, data: Data) -> bool:
        return self.at_least is not None and self.at_least(data)

    def show(self, value: float | None, at_least: bool = False) -> str:
        if value is None:
            return "–"
        if self.percent:
            return f"{value * 100:.3f}%"
        return f"{'≥ ' if at_least else ''}{value:,.{self.digits}f}"

    def change(self, base: float | None, value: float | None) -> str:
        if base is None or value is None:
            return ""
        if self.percent:
            return f"{(value - base) * 100:+.3f} pts"
        if self.counts or base == 0:
            return f"{value - base:+,.{self.digits}f}"
        return f"{(value - base) / base * 100:+.1f}%"


FIGURES = (
    Figure("achieved rate (ev/s)", achieved, HIGHER, 1),
    Figure("capacity (ev/s)", capacity, HIGHER, 0, at_least=capacity_at_least),
    Figure("latency p50 (ms)", _latency("p50"), LOWER, 2),
    Figure("latency p99 (ms)", _latency("p99"), LOWER, 2),
    Figure("latency p99.9 (ms)", _latency("p99_9"), LOWER, 2),
    Figure("error ratio", error_ratio, LOWER, percent=True),
    Figure("server lag (acked - counted)", server_lag, LOWER, counts=True),
    Figure("S3 missing events", _s3("missing"), LOWER, counts=True),
    Figure("S3 duplicated events", _s3("duplicated"), LOWER, counts=True),
)
# What --fail-if-worse judges: (figure, its name in the message).
GATED = ((FIGURES[3], "p99 latency"), (FIGURES[0], "achieved rate"), (FIGURES[1], "capacity"))


def target_rate(d: Data) -> str:
    """The rate a run aimed at, beside what it achieved: its target, its stages' peak, or unlimited."""
    config = d.get("configuration")
    config = config if isinstance(config, dict) else {}
    stages = [s for s in config.get("stages") or [] if isinstance(s, dict)]
    if stages:
        return f"stages to {max(_number(s.get('target_eps')) or 0.0 for s in stages):,.0f}"
    eps = _number(config.get("target_eps"))
    if eps is None:
        return "–"
    return f"{eps:,.0f}" if eps > 0 else "unlimited"


def labels_for(paths: Sequence[str]) -> list[str]:
    """File names, or whole paths where two files share a name."""
    from pathlib import Path

    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else p for n, p in zip(names, paths)]


def figure_rows(runs: Sequence[Run]) -> list[list[str]]:
    """One row per figure any file has: the first file's value, then each other's with its change."""
    rows = []
    for fig in FIGURES:
        values = [fig.read(r.data) for r in runs]
        if all(v is None for v in values):
            continue
        cells = [fig.show(values[0], fig.bounded(runs[0].data))]
        for run, v in zip(runs[1:], values[1:]):
            delta = fig.change(values[0], v)
            shown = fig.show(v, fig.bounded(run.data))
            cells.append(f"{shown} ({delta})" if delta else shown)
        rows.append([fig.name, *cells])
    return rows


def text_table(runs: Sequence[Run]) -> list[str]:
    """The headline figures side by side; after the first file, each value with its change from it."""
    head = ["", *(r.label for r in runs)]
    rows = [["test", *(str(r.data.get("test_name") or "–") for r in runs)],
            ["when", *(str(r.data.get("timestamp") or "–")[:19].replace("T", " ") for r in runs)],
            ["target rate (ev/s)", *(target_rate(r.data) for r in runs)]]
    rows += figure_rows(runs)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def worse_than(runs: Sequence[Run], pct: float) -> list[str]:
    """Each gated figure of a later file that got worse than the first's by more than `pct` percent.

    A later capacity that is only a lower bound (its search stopped at --max-eps) is never worse:
    the collector may take more. A lower bound in the first file is a floor the later one must reach.
    """
    found = []
    base = runs[0]
    for run in runs[1:]:
        for fig, name in GATED:
            a, b = fig.read(base.data), fig.read(run.data)
            if a is None or b is None or a == 0 or fig.bounded(run.data):
                continue
            change = (b - a) / a * 100
            worse = change if fig.better == LOWER else -change
            if worse > pct:
                direction = "higher" if change > 0 else "lower"
                found.append(f"{run.label}: {name} {fig.show(b)} is {abs(change):.1f}% {direction} than"
                             f" {base.label}'s {fig.show(a, fig.bounded(base.data))} (more than {pct:g}% worse)")
    return found


def not_judged(runs: Sequence[Run]) -> list[str]:
    """The later files whose gated figure --fail-if-worse leaves alone because it is only a lower bound."""
    out = []
    for run in runs[1:]:
        for fig, name in GATED:
            value = fig.read(run.data)
            if value is not None and fig.read(runs[0].data) is not None and fig.bounded(run.data):
                out.append(f"{run.label}: {name} {fig.show(value, True)} is a lower bound (the search stopped"
                           " before a rate broke), so it is not judged worse")
    return out


def gate_lines(runs: Sequence[Run], pct: float) -> list[str]:
    """--fail-if-worse's verdict as the console and the HTML page both say it: a line per lower
    bound left unjudged, a ✗ line per figure that got worse, else one ✓ line."""
    lines = [f"- {line}" for line in not_judged(runs)]
    worse = worse_than(runs, pct)
    if worse:
        return lines + [f"✗ {line}" for line in worse]
    return lines + [f"✓ p99 latency, achieved rate and capacity: none more than {pct:g}% worse than {runs[0].label}"]


def render_compare_html(runs: Sequence[Run], fail_if_worse: float | None = None) -> str:
    """The table, the gate's verdict when `fail_if_worse` is given, and the runs' curves overlaid."""
    import plotly.graph_objects as go

    from .html import capacity_figure

    parts = ["<h1>wefperf: runs compared</h1>",
             '<div class="meta">changes are from the first file, ' + esc(runs[0].label) + "</div>"]
    head = ["", *(r.label for r in runs)]
    rows: list[list[Any]] = [["test", *(r.data.get("test_name") or "–" for r in runs)],
                             ["when", *(r.data.get("timestamp") or "–" for r in runs)],
                             ["run id", *(r.data.get("run_id") or "–" for r in runs)],
                             ["target rate (ev/s)", *(target_rate(r.data) for r in runs)]]
    rows += figure_rows(runs)
    parts.append(table(head, rows, numeric=range(1, len(head))))
    if fail_if_worse is not None:
        parts.append(f"<h2>--fail-if-worse {fail_if_worse:g}%</h2>")
        parts.extend(f'<p class="{"bad" if line.startswith("✗") else "ok"}">{esc(line)}</p>'
                     for line in gate_lines(runs, fail_if_worse))

    timed = [r for r in runs if r.data.get("timeline")]
    if timed:
        parts.append("<h2>Second by second</h2>")
        rates, lat = go.Figure(), go.Figure()
        for i, run in enumerate(timed):
            color = PALETTE[i % len(PALETTE)]
            rows_ = run.data["timeline"]
            t = [row.get("t") for row in rows_]
            rates.add_scatter(x=t, y=[row.get("acked_events") for row in rows_], name=f"{run.label} acknowledged",
                              line={"color": color})
            sx, sy = server_rates(rows_, float(_get(run.data, "configuration", "stats_interval_secs") or 1))
            if sx:
                rates.add_scatter(x=sx, y=sy, name=f"{run.label} counted by the server",
                                  line={"color": color, "dash": "dot"})
            lat.add_scatter(x=t, y=[row.get("p99_ms") for row in rows_], name=f"{run.label} p99",
                            line={"color": color})
            lat.add_scatter(x=t, y=[row.get("p50_ms") for row in rows_], name=f"{run.label} p50",
                            line={"color": color, "dash": "dot"})
        axis = {"title": {"text": "seconds since the load started"}, "rangemode": "tozero"}
        rates.update_layout(title={"text": "Rate (events per second)"}, xaxis=axis, yaxis={"rangemode": "tozero"})
        lat.update_layout(title={"text": "Latency from the intended send time, per second (ms)"}, xaxis=axis,
                          yaxis={"rangemode": "tozero"})
        parts.append(chart(rates, "chart-compare-rates"))
        parts.append(chart(lat, "chart-compare-latency"))

    searched = [r for r in runs if isinstance(r.data.get("capacity"), dict)]
    if searched:
        parts.append("<h2>Capacity searches</h2>")
        overlay = None
        for i, run in enumerate(searched):
            one = capacity_figure(run.data["capacity"], name=run.label, color=PALETTE[i % len(PALETTE)])
            if overlay is None:
                overlay = one
            else:
                overlay.add_traces(one.data)
                for shape, note in zip(one.layout.shapes, one.layout.annotations):
                    overlay.add_shape(shape)
                    overlay.add_annotation(note)
        parts.append(chart(overlay, "chart-compare-capacity"))
    return page("wefperf: runs compared", parts, charts=bool(timed or searched))
