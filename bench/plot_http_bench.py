#!/usr/bin/env python3
"""plot_http_bench.py -- draw the results of run_http_bench.py --json.

    bench/plot_http_bench.py RESULTS.json --svg OUT.svg

A bar chart of requests per second (log scale), one panel per workload, one
bar per server: sockserv-httpd in each mode, Python's http.server and nginx,
with the ratios to Python and to nginx at the end of each sockserv-httpd
row. Standard library only, like plot_echo_bench.py, so that it runs where
neither matplotlib nor gnuplot is installed.
"""

import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

LIB_COLOUR = "#2b6cb0"
PY_COLOUR = "#dd8a2e"
NGINX_COLOUR = "#3a9a5b"
WIDTH = 960
LABEL_W = 290
RATIO_W = 170
BAR_H = 14
ROW_H = BAR_H + 6
TITLE_H = 28
AXIS_MIN, AXIS_MAX = 1e2, 1e6   # requests per second, log scale


def x_of(rate, x0, width):
    rate = min(max(rate, AXIS_MIN), AXIS_MAX)
    span = math.log10(AXIS_MAX) - math.log10(AXIS_MIN)
    return x0 + width * (math.log10(rate) - math.log10(AXIS_MIN)) / span


def colour_of(server):
    if server == "python":
        return PY_COLOUR
    if server == "nginx":
        return NGINX_COLOUR
    return LIB_COLOUR


def svg(data):
    tables = data["tables"]
    titles = data["titles"]
    m = data.get("machine", {})
    s = data.get("settings", {})
    plot_x0 = LABEL_W
    plot_w = WIDTH - LABEL_W - RATIO_W - 10
    height = 84 + sum(TITLE_H + ROW_H * len(rows) + 30
                      for rows in tables.values())
    sub = (f"wrk -t{s.get('wrk_threads', '?')} -c{s.get('connections', '?')}"
           f", median of {s.get('rounds', '?')} rounds of "
           f"{s.get('duration', '?')} s, loopback, {m.get('cpus', '?')} CPUs "
           f"shared by wrk and the server")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
           f'height="{height}" font-family="DejaVu Sans, Arial, sans-serif" '
           f'font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           '<text x="10" y="22" font-size="16" font-weight="bold">HTTP '
           'requests per second: sockserv-httpd vs Python http.server and '
           'nginx</text>',
           f'<text x="10" y="40" fill="#555">{escape(sub)}</text>',
           f'<rect x="10" y="50" width="12" height="12" fill="{LIB_COLOUR}"/>'
           '<text x="28" y="60">sockserv-httpd</text>',
           f'<rect x="150" y="50" width="12" height="12" fill="{PY_COLOUR}"/>'
           '<text x="168" y="60">python3 -m http.server</text>',
           f'<rect x="340" y="50" width="12" height="12" '
           f'fill="{NGINX_COLOUR}"/><text x="358" y="60">nginx</text>',
           f'<text x="{WIDTH - 10}" y="60" text-anchor="end" fill="#555">'
           'log scale; × Python / × nginx</text>']
    y = 84
    for wl, rows in tables.items():
        out.append(f'<text x="10" y="{y + 18}" font-size="14" '
                   f'font-weight="bold">{escape(titles[wl])}</text>')
        y += TITLE_H
        top, bottom = y, y + ROW_H * len(rows)
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
            out.append(f'<text x="10" y="{y + BAR_H - 2}">'
                       f'{escape(r["label"])}</text>')
            bx = x_of(r["rps"], plot_x0, plot_w)
            out.append(f'<rect x="{plot_x0}" y="{y}" '
                       f'width="{bx - plot_x0:.1f}" height="{BAR_H}" '
                       f'fill="{colour_of(r["server"])}"/>')
            out.append(f'<text x="{bx + 4:.1f}" y="{y + BAR_H - 3}" '
                       f'font-size="10">{r["rps"]:,.0f}</text>')
            if r["server"] not in ("python", "nginx"):
                ngx = r.get("vs_nginx")
                colour = "#1a7f37" if ngx and ngx >= 1.0 else "#b42318"
                ngx_text = f"{ngx:.2f}×" if ngx else "–"
                out.append(f'<text x="{WIDTH - 10}" y="{y + BAR_H - 2}" '
                           f'text-anchor="end" font-size="12">'
                           f'{r["vs_python"]:.1f}× / <tspan font-weight='
                           f'"bold" fill="{colour}">{ngx_text}</tspan>'
                           f'</text>')
            y += ROW_H
        y += 30
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="JSON written by run_http_bench.py --json")
    p.add_argument("--svg", required=True, help="write the SVG chart here")
    args = p.parse_args()
    with open(args.results) as f:
        data = json.load(f)
    with open(args.svg, "w") as f:
        f.write(svg(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
