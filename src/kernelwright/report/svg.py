"""Small SVG charts as strings: a line chart, a bar chart and a grouped bar chart, no dependencies.

Run and bench reports inline them in their HTML. Every piece of text that
comes from data is XML-escaped here, so a caller may mark
the result as safe markup. The `<svg>` carries no `xmlns`: HTML5 does not need
it inline, and the reports that embed these charts must hold no URL at all.
"""

from __future__ import annotations

import math
from html import escape

# Colors that stay distinct for the few series a chart holds, and on white.
PALETTE = ("#1f6fb2", "#d9711c", "#2e9d4a", "#c23b3b", "#7a4fb0", "#6b6b6b")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
CHAR_WIDTH = 6.5  # rough width of one character at font-size 11: enough to lay out labels

# Margins around the plot area: room for tick labels (left, bottom), the legend (top).
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 32, 46
MAX_BAR_LABEL = 24  # characters of a bar's label under the axis; its tooltip has it all
HEADROOM = 1.12  # the value axis of grouped bars reaches this far past the largest value


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least `raw`."""
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * magnitude * (1 + 1e-9):
            return multiple * magnitude
    return 10 * magnitude


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values whose first and last enclose [low, high].

    A range of one value (a single point, a flat line) is widened around it,
    so callers can divide by the span of the ticks.
    """
    if high < low:
        low, high = high, low
    if high - low < 1e-12:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = _nice_step((high - low) / max(count - 1, 1))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    steps = round((last - first) / step)
    # round() drops float noise such as 0.30000000000000004 from the labels.
    return [round(first + i * step, 12) for i in range(steps + 1)]


def _tick_label(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    label = f"{value:.{decimals}f}"
    return "0" if float(label) == 0 else label  # no "-0"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value_label(value: float) -> str:
    return f"{value:.3g}"


class _Frame:
    """The plot area of a chart and the mapping from data to pixels."""

    def __init__(
        self, width: int, height: int, x_ticks: list[float], y_ticks: list[float], bottom_margin: float = BOTTOM
    ) -> None:
        self.left, self.top = LEFT, TOP
        self.right, self.bottom = width - RIGHT, height - bottom_margin
        self.x_ticks, self.y_ticks = x_ticks, y_ticks

    def x(self, value: float) -> float:
        low, high = self.x_ticks[0], self.x_ticks[-1]
        return self.left + (value - low) / (high - low) * (self.right - self.left)

    def y(self, value: float) -> float:
        low, high = self.y_ticks[0], self.y_ticks[-1]
        return self.bottom - (value - low) / (high - low) * (self.bottom - self.top)

    def y_axis(self, y_label: str) -> list[str]:
        parts = []
        for tick in self.y_ticks:
            py = self.y(tick)
            parts.append(
                f'<line x1="{self.left}" y1="{py:.1f}" x2="{self.right}" y2="{py:.1f}" stroke="#e3e3e3"/>'
                f'<text x="{self.left - 6}" y="{py + 4:.1f}" text-anchor="end">{_text(_tick_label(tick, self.y_ticks))}</text>'
            )
        middle = (self.top + self.bottom) / 2
        parts.append(
            f'<text x="14" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">{_text(y_label)}</text>'
        )
        return parts

    def box(self) -> str:
        return (
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="none" stroke="#888"/>'
        )

    def reference(self, reference_line: tuple[str, float] | None) -> list[str]:
        if reference_line is None:
            return []
        label, value = reference_line
        py = self.y(value)
        return [
            f'<line x1="{self.left}" y1="{py:.1f}" x2="{self.right}" y2="{py:.1f}" '
            f'stroke="#444" stroke-width="1" stroke-dasharray="5 4"/>'
            f'<text x="{self.right - 4}" y="{py - 4:.1f}" text-anchor="end" fill="#444">{_text(label)}</text>'
        ]


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(title)}" {FONT}><title>{_text(title)}</title>'
        f'<rect width="{width}" height="{height}" fill="#fff"/>'
    )


def _no_data(frame: _Frame) -> str:
    cx, cy = (frame.left + frame.right) / 2, (frame.top + frame.bottom) / 2
    return f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="middle" fill="#888">no data</text>'


def line_chart(
    series: list[tuple[str, list[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 320,
    step: bool = False,
    reference_line: tuple[str, float] | None = None,
) -> str:
    """Lines (or steps, holding each value until the next x) of (x, y) points, with axes and a legend.

    `reference_line` is a labelled horizontal dashed line, e.g. ("eager = 1.0x", 1.0).
    """
    points = [p for _, pts in series for p in pts]
    xs = [x for x, _ in points]
    ys = [y for _, y in points] + ([reference_line[1]] if reference_line else [])
    # With no data the axes still need a span; (0, 1) reads as an empty chart.
    x_ticks = nice_ticks(min(xs), max(xs)) if xs else [0.0, 1.0]
    y_ticks = nice_ticks(min(ys), max(ys)) if ys else [0.0, 1.0]
    frame = _Frame(width, height, x_ticks, y_ticks)

    parts = [_open(width, height, f"{y_label} by {x_label}")]
    parts += frame.y_axis(y_label)
    for tick in x_ticks:
        px = frame.x(tick)
        parts.append(
            f'<line x1="{px:.1f}" y1="{frame.bottom}" x2="{px:.1f}" y2="{frame.bottom + 4}" stroke="#888"/>'
            f'<text x="{px:.1f}" y="{frame.bottom + 16}" text-anchor="middle">{_text(_tick_label(tick, x_ticks))}</text>'
        )
    parts.append(
        f'<text x="{(frame.left + frame.right) / 2:.1f}" y="{height - 8}" text-anchor="middle">{_text(x_label)}</text>'
    )
    parts.append(frame.box())
    parts += frame.reference(reference_line)
    if not points:
        parts.append(_no_data(frame))

    legend_x = float(frame.left)
    for index, (name, pts) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        ordered = sorted(pts)
        if ordered:
            commands = [f"M{frame.x(ordered[0][0]):.1f},{frame.y(ordered[0][1]):.1f}"]
            for x, y in ordered[1:]:
                if step:
                    commands.append(f"H{frame.x(x):.1f}V{frame.y(y):.1f}")
                else:
                    commands.append(f"L{frame.x(x):.1f},{frame.y(y):.1f}")
            parts.append(f'<path d="{" ".join(commands)}" fill="none" stroke="{color}" stroke-width="2"/>')
            # Markers make a single point visible and carry the exact value on hover.
            for x, y in ordered:
                parts.append(
                    f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2.5" fill="{color}">'
                    f"<title>{_text(f'{name}: {_value_label(x)}, {_value_label(y)}')}</title></circle>"
                )
        parts.append(
            f'<rect x="{legend_x:.1f}" y="{TOP - 20}" width="12" height="12" fill="{color}"/>'
            f'<text x="{legend_x + 16:.1f}" y="{TOP - 10}">{_text(name)}</text>'
        )
        legend_x += 28 + CHAR_WIDTH * len(name)
    parts.append("</svg>")
    return "".join(parts)


class _Categories:
    """Labels under a bar chart's axis, one per band; turned 30 degrees when they would overlap."""

    def __init__(self, labels: list[str], band: float) -> None:
        self.shown = [_shorten(label, MAX_BAR_LABEL) for label in labels]
        # Turn them all (to read alike) and make room below the plot for the longest.
        self.turn = any(CHAR_WIDTH * len(label) > band for label in self.shown)
        self.bottom_margin = BOTTOM if not self.turn else 24 + 0.5 * CHAR_WIDTH * max(len(x) for x in self.shown)

    def label(self, index: int, centre: float, frame: _Frame) -> str:
        label_y = frame.bottom + 14
        text = _text(self.shown[index])
        if self.turn:
            return (f'<text x="{centre:.1f}" y="{label_y:.1f}" text-anchor="end" '
                    f'transform="rotate(-30 {centre:.1f} {label_y:.1f})">{text}</text>')
        return f'<text x="{centre:.1f}" y="{label_y:.1f}" text-anchor="middle">{text}</text>'


def _bar(x: float, width: float, value: float, frame: _Frame, color: str, tooltip: str, label: bool) -> str:
    """One bar from zero to `value`, with a tooltip and, when `label`, its value beyond its far end."""
    zero = frame.y(0.0)
    top, bottom = sorted((frame.y(value), zero))
    bar = (f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{bottom - top:.1f}" fill="{color}">'
           f"<title>{_text(tooltip)}</title></rect>")
    if not label:
        return bar
    value_y = top - 4 if value >= 0 else bottom + 13
    return (bar + f'<text x="{x + width / 2:.1f}" y="{value_y:.1f}" text-anchor="middle">'
            f"{_text(_value_label(value))}</text>")


def bar_chart(
    bars: list[tuple[str, float]],
    *,
    y_label: str,
    width: int = 640,
    height: int = 320,
    reference_line: tuple[str, float] | None = None,
) -> str:
    """One labelled bar per (label, value), from zero, each with its value on top."""
    values = [v for _, v in bars] + ([reference_line[1]] if reference_line else [])
    # Bars grow from zero, so zero is always on the axis.
    y_ticks = nice_ticks(min(values + [0.0]), max(values + [0.0])) if values else [0.0, 1.0]
    band = (width - LEFT - RIGHT) / max(len(bars), 1)
    categories = _Categories([label for label, _ in bars], band)
    frame = _Frame(width, height, [0.0, 1.0], y_ticks, categories.bottom_margin)

    parts = [_open(width, height, y_label)]
    parts += frame.y_axis(y_label)
    parts.append(frame.box())
    if not bars:
        parts.append(_no_data(frame))
    for index, (label, value) in enumerate(bars):
        bar_x = frame.left + index * band + band * 0.15
        parts.append(_bar(bar_x, band * 0.7, value, frame, PALETTE[index % len(PALETTE)],
                          f"{label}: {_value_label(value)}", label=True))
        parts.append(categories.label(index, frame.left + (index + 0.5) * band, frame))
    parts += frame.reference(reference_line)
    parts.append("</svg>")
    return "".join(parts)


def grouped_bar_chart(
    groups: list[str],
    series: list[tuple[str, list[float | None]]],
    *,
    y_label: str,
    width: int = 640,
    height: int = 320,
    reference_line: tuple[str, float] | None = None,
) -> str:
    """Per group (a task), one bar per series (a baseline, a bench), colored by series, with a legend.

    A missing value (None) leaves its slot empty. The chart widens so that each
    bar stays readable however many groups there are.
    """
    values = [v for _, vs in series for v in vs if v is not None and math.isfinite(v)]
    values += [reference_line[1]] if reference_line else []
    # Headroom above the tallest bar for its value label, which would otherwise meet the legend.
    y_ticks = nice_ticks(min(values + [0.0]), max(values + [0.0]) * HEADROOM) if values else [0.0, 1.0]
    slots = max(len(series), 1)
    width = max(width, round(LEFT + RIGHT + len(groups) * (slots * 12 + 10)))
    band = (width - LEFT - RIGHT) / max(len(groups), 1)
    categories = _Categories(groups, band)
    frame = _Frame(width, height, [0.0, 1.0], y_ticks, categories.bottom_margin)
    bar_width = band * 0.8 / slots
    # Value labels only where they fit above their bar.
    label_values = bar_width >= CHAR_WIDTH * 4

    parts = [_open(width, height, y_label)]
    parts += frame.y_axis(y_label)
    parts.append(frame.box())
    if not values or not groups:
        parts.append(_no_data(frame))
    for index, group in enumerate(groups):
        for slot, (name, vs) in enumerate(series):
            value = vs[index] if index < len(vs) else None
            if value is None or not math.isfinite(value):
                continue
            bar_x = frame.left + index * band + band * 0.1 + slot * bar_width
            parts.append(_bar(bar_x, bar_width, value, frame, PALETTE[slot % len(PALETTE)],
                              f"{group}, {name}: {_value_label(value)}", label=label_values))
        parts.append(categories.label(index, frame.left + (index + 0.5) * band, frame))
    parts += frame.reference(reference_line)
    legend_x = float(frame.left)
    for slot, (name, _) in enumerate(series):
        parts.append(
            f'<rect x="{legend_x:.1f}" y="{TOP - 20}" width="12" height="12" fill="{PALETTE[slot % len(PALETTE)]}"/>'
            f'<text x="{legend_x + 16:.1f}" y="{TOP - 10}">{_text(name)}</text>'
        )
        legend_x += 28 + CHAR_WIDTH * len(name)
    parts.append("</svg>")
    return "".join(parts)
