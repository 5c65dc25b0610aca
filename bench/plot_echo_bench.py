#!/usr/bin/env python3
"""plot_echo_bench.py -- draw the results of run_echo_bench.py --json.

    bench/plot_echo_bench.py RESULTS.json [--svg OUT.svg] [--ascii]

--svg writes a bar chart (libsockserv and Python round trips per second on a
log scale, one panel per workload, the ratio at the end of each row) as a
self-contained SVG. --ascii prints the ratios as a text bar chart on a log2
scale, for Markdown or a terminal.

Standard library only, on purpose: the benchmark must run on a machine
without matplotlib or gnuplot (docs/performance.md was made on one).
"""

import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

LIB_COLOUR = "#2b6cb0"
PY_COLOUR = "#dd8a2e"
REF_COLOUR = "#a0a0a0"  # yardsticks without any library
WIDTH = 960
LABEL_W = 300      # left column: mode and Python peer
RATIO_W = 90       # right column: the ratio
BAR_H = 11
ROW_H = 2 * BAR_H + 12
REF_H = BAR_H + 8
TITLE_H = 30
AXIS_MIN, AXIS_MAX = 1e2, 1e6   # round trips per second, log scale


def x_of(rate, x0, width):
    rate = min(max(rate, AXIS_MIN), AXIS_MAX)
    span = math.log10(AXIS_MAX) - math.log10(AXIS_MIN)
    return x0 + width * (math.log10(rate) - math.log10(AXIS_MIN)) / span


def svg(data):
    tables = data["tables"]
    titles = data["titles"]
    refs = data.get("references", {})
    plot_x0 = LABEL_W
    plot_w = WIDTH - LABEL_W - RATIO_W - 10
    height = 70 + sum(TITLE_H + ROW_H * len(rows) + 30 +
                      REF_H * len(refs.get(suite, []))
                      for suite, rows in tables.items())
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
           f'height="{height}" font-family="DejaVu Sans, Arial, sans-serif" '
           f'font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           '<text x="10" y="22" font-size="16" font-weight="bold">Echo '
           'round trips per second: libsockserv vs Python socketserver'
           '</text>',
           f'<rect x="10" y="34" width="12" height="12" fill="{LIB_COLOUR}"/>'
           '<text x="28" y="44">libsockserv</text>',
           f'<rect x="120" y="34" width="12" height="12" fill="{PY_COLOUR}"/>'
           '<text x="138" y="44">Python 3 socketserver</text>',
           f'<rect x="300" y="34" width="12" height="12" fill="{REF_COLOUR}"/>'
           '<text x="318" y="44">yardstick without a library</text>',
           f'<text x="{WIDTH - 10}" y="44" text-anchor="end" fill="#555">'
           'log scale; ratio = libsockserv / Python</text>']
    y = 70
    for suite, rows in tables.items():
        out.append(f'<text x="10" y="{y + 18}" font-size="14" '
                   f'font-weight="bold">{escape(titles[suite])}</text>')
        y += TITLE_H
        top = y
        bottom = y + ROW_H * len(rows) + REF_H * len(refs.get(suite, []))
        # Grid lines at each power of ten.
        decade = AXIS_MIN
        while decade <= AXIS_MAX:
            gx = x_of(decade, plot_x0, plot_w)
            out.append(f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" '
                       f'y2="{bottom}" stroke="#ddd"/>')
            out.append(f'<text x="{gx:.1f}" y="{bottom + 14}" '
                       f'text-anchor="middle" fill="#555" font-size="10">'
                       f'{decade:,.0f}</text>')
            decade *= 10
        for r in rows:
            out.append(f'<text x="10" y="{y + BAR_H}">'
                       f'{escape(r["mode"])}</text>')
            out.append(f'<text x="10" y="{y + 2 * BAR_H + 2}" fill="#555" '
                       f'font-size="11">vs {escape(r["python_class"])}</text>')
            for i, (rate, colour) in enumerate(
                    ((r["lib_rt_per_sec"], LIB_COLOUR),
                     (r["python_rt_per_sec"], PY_COLOUR))):
                by = y + i * (BAR_H + 1)
                bx = x_of(rate, plot_x0, plot_w)
                out.append(f'<rect x="{plot_x0}" y="{by}" '
                           f'width="{bx - plot_x0:.1f}" height="{BAR_H}" '
                           f'fill="{colour}"/>')
                out.append(f'<text x="{bx + 4:.1f}" y="{by + BAR_H - 1}" '
                           f'font-size="10">{rate:,.0f}</text>')
            ratio = r["ratio"]
            colour = "#1a7f37" if ratio >= 2 else "#b42318"
            out.append(f'<text x="{WIDTH - 10}" y="{y + BAR_H + 5}" '
                       f'text-anchor="end" font-size="14" font-weight="bold" '
                       f'fill="{colour}">{ratio:.2f}×</text>')
            y += ROW_H
        for ref in refs.get(suite, []):
            bx = x_of(ref["rt_per_sec"], plot_x0, plot_w)
            out.append(f'<text x="10" y="{y + BAR_H - 1}" fill="#555" '
                       f'font-size="11" font-style="italic">'
                       f'{escape(ref["label"])}</text>')
            out.append(f'<rect x="{plot_x0}" y="{y}" '
                       f'width="{bx - plot_x0:.1f}" height="{BAR_H}" '
                       f'fill="{REF_COLOUR}"/>')
            out.append(f'<text x="{bx + 4:.1f}" y="{y + BAR_H - 1}" '
                       f'font-size="10">{ref["rt_per_sec"]:,.0f}</text>')
            y += REF_H
        y += 30
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ascii_chart(data):
    """Ratios as bars on a log2 scale: 4 characters per doubling."""
    lo, hi, per = 0.5, 256.0, 4
    width = int(round(math.log2(hi / lo) * per))
    ticks = [" "] * (width + 1)
    labels = {}
    t = lo
    while t <= hi:
        pos = int(round(math.log2(t / lo) * per))
        ticks[pos] = "|"
        labels[pos] = f"{t:g}x"
        t *= 2
    label_w = 4 + max(len(f"{r['mode']} vs {r['python_class']}")
                      for rows in data["tables"].values() for r in rows)
    lines = []
    scale = [" "] * (width + 8)
    for pos, text in labels.items():
        if pos % (2 * per) == per or text in ("1x", "2x"):
            for i, ch in enumerate(text):
                if pos + i < len(scale):
                    scale[pos + i] = ch
    lines.append(" " * label_w + "".join(scale).rstrip())
    lines.append(" " * label_w + "".join(ticks))
    for suite, rows in data["tables"].items():
        lines.append(data["titles"][suite])
        for r in rows:
            ratio = max(r["ratio"], lo)
            n = int(round(math.log2(min(ratio, hi) / lo) * per))
            bar = "#" * n
            name = f"  {r['mode']} vs {r['python_class']}"
            lines.append(f"{name:<{label_w}}{bar} {r['ratio']:.2f}x")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="JSON written by run_echo_bench.py --json")
    p.add_argument("--svg", help="write an SVG bar chart here")
    p.add_argument("--ascii", action="store_true",
                   help="print the ratios as a text bar chart")
    args = p.parse_args()
    with open(args.results) as f:
        data = json.load(f)
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg(data))
    if args.ascii or not args.svg:
        sys.stdout.write(ascii_chart(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
