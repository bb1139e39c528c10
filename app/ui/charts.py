"""Server-side SVG for the `chart` block: no script, no plugin string outside markupsafe escaping.

Every fragment is a `Markup` template filled through `Markup.format`, which escapes its arguments, so a
label such as `"><script>` can only ever appear as text. Coordinates are numbers this module formats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

PALETTE = (
    "#2f5bd3",
    "#e07b39",
    "#137a3d",
    "#b42318",
    "#7a5af8",
    "#0e9384",
    "#c11574",
    "#667085",
    "#9a6700",
    "#1849a9",
)
WIDTH = 640
PLOT_H = 220
TOP = 12
RIGHT = 12
CHAR_W = 6.5  # average glyph width at 11px, for truncation and layout estimates
LEGEND_ROW = 18

Series = Sequence[tuple[str, Sequence[float | None]]]


def format_number(value: float) -> str:
    """Readable number: thousands separators, at most four decimals, tiny values in short scientific form."""
    if isinstance(value, int):
        return f"{value:,}"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 0.01:
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _decimals(step: float) -> int:
    for d in range(16):
        if abs(round(step, d) - step) <= abs(step) * 1e-9:
            return d
    return 15


def _axis(lo: float, hi: float) -> tuple[float, float, list[tuple[float, str]]]:
    """A zero-including axis with about five "nice" ticks (1, 2, 2.5, 5 × 10ⁿ) and their labels."""
    raw = (hi - lo) / 5
    if not raw > 1e-300:  # all zero, or subnormal: log10 below would fail
        lo, hi, raw = min(lo, 0.0), max(hi, 1.0), 0.2
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if raw <= m * mag * (1 + 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    top = max(abs(first * step), abs(last * step))
    scale, suffix = next(((s, x) for s, x in ((1e12, "T"), (1e9, "B"), (1e6, "M")) if top >= s), (1.0, ""))
    d = _decimals(step / scale)
    ticks = [
        (i * step, f"{i * step / scale:,.{d}f}{suffix}") for i in range(first, min(last, first + 20) + 1)
    ]
    return first * step, ticks[-1][0], ticks


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"


def render_chart(
    *, uid: str, kind: str, title: str | None, labels: Sequence[str], series: Series, unit: str | None
) -> Markup:
    """A bar or line chart as inline SVG, with axes, value ticks, a legend and `<title>` tooltips."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return Markup('<p class="muted ui-chart-empty">No data to chart.</p>')
    start, end, ticks = _axis(min(0.0, *values), max(0.0, *values))
    left = int(max(len(text) for _, text in ticks) * CHAR_W) + 14
    plot_w = WIDTH - left - RIGHT
    n = len(labels)
    group = plot_w / n
    bottom = TOP + PLOT_H
    suffix = f" {unit}" if unit else ""

    def y(v: float) -> float:
        return TOP + (end - v) / (end - start) * PLOT_H

    # Legend rows, wrapped by estimated text width.
    legend: list[tuple[float, int, int, str, str]] = []  # x, row, series index, shown name, full name
    x, row = float(left), 0
    for i, (name, _) in enumerate(series):
        shown = _clip(name, 28)
        width = 16 + len(shown) * CHAR_W + 14
        if x + width > WIDTH - RIGHT and x > left:
            x, row = float(left), row + 1
        legend.append((x, row, i, shown, name))
        x += width
    height = bottom + 26 + (row + 1) * LEGEND_ROW + 4

    out: list[Markup] = [
        Markup(
            '<svg class="ui-chart-svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            'aria-labelledby="{uid}-t" xmlns="http://www.w3.org/2000/svg"><title id="{uid}-t">{t}</title>'
        ).format(w=WIDTH, h=height, uid=uid, t=title or ("Bar chart" if kind == "bar" else "Line chart"))
    ]
    for value, text in ticks:
        ty = y(value)
        out.append(
            Markup(
                '<line class="{c}" x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}"/>'
                '<text class="ui-tick" x="{tx}" y="{ty:.1f}" text-anchor="end">{t}</text>'
            ).format(
                c="ui-axis" if value == 0 else "ui-grid",
                x1=left,
                x2=WIDTH - RIGHT,
                y=ty,
                tx=left - 6,
                ty=ty + 4,
                t=text,
            )
        )
    out.append(
        Markup('<line class="ui-axis" x1="{x}" x2="{x}" y1="{a}" y2="{b}"/>').format(x=left, a=TOP, b=bottom)
    )

    every = max(1, math.ceil(n / max(1, plot_w // 56)))  # thin out x labels that would overlap
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(
                Markup(
                    '<text class="ui-tick" x="{x:.1f}" y="{y}" text-anchor="middle">{t}<title>{full}</title>'
                    "</text>"
                ).format(
                    x=left + (i + 0.5) * group,
                    y=bottom + 16,
                    t=_clip(label, max(3, int(group * every / CHAR_W))),
                    full=label,
                )
            )

    zero = y(0.0)
    for j, (name, vs) in enumerate(series):
        color = PALETTE[j % len(PALETTE)]
        tips = [
            f"{labels[i]} · {name}: {format_number(v)}{suffix}" if v is not None else ""
            for i, v in enumerate(vs)
        ]
        if kind == "bar":
            width = group * 0.8 / len(series)
            for i, v in enumerate(vs):
                if v is not None:
                    vy = y(v)
                    out.append(
                        Markup(
                            '<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{c}">'
                            "<title>{tip}</title></rect>"
                        ).format(
                            x=left + i * group + group * 0.1 + j * width,
                            y=min(vy, zero),
                            w=max(width - 1, 0.5),
                            h=max(abs(zero - vy), 0.5),
                            c=color,
                            tip=tips[i],
                        )
                    )
            continue
        segment: list[str] = []
        points: list[Markup] = []
        for i, v in enumerate([*vs, None]):  # a trailing None flushes the last segment
            if v is None:
                if len(segment) > 1:
                    out.append(
                        Markup('<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"/>').format(
                            c=color, p=" ".join(segment)
                        )
                    )
                segment = []
                continue
            px, py = left + (i + 0.5) * group, y(v)
            segment.append(f"{px:.1f},{py:.1f}")
            points.append(
                Markup(
                    '<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{c}"><title>{tip}</title></circle>'
                ).format(x=px, y=py, r=3 if n <= 60 else 2, c=color, tip=tips[i])
            )
        out.extend(points)

    for lx, lrow, i, shown, name in legend:
        ly = bottom + 26 + lrow * LEGEND_ROW
        out.append(
            Markup(
                '<g class="ui-legend"><title>{full}</title><rect x="{x:.1f}" y="{ry}" width="10" height="10" fill="{c}"/>'
                '<text x="{tx:.1f}" y="{ty}">{t}</text></g>'
            ).format(x=lx, ry=ly, c=PALETTE[i % len(PALETTE)], tx=lx + 14, ty=ly + 9, t=shown, full=name)
        )
    out.append(Markup("</svg>"))
    return Markup("").join(out)
