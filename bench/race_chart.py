#!/usr/bin/env python3
"""bench/race_chart.py: the last race table in bench/RESULTS.md as an SVG chart.

One panel per scenario, one bar per server, on a log scale (the servers are orders of
magnitude apart), each bar labelled with its figure and, beside it, the latency
percentiles. bench/race redraws it after every recorded race; by hand:

    bench/race_chart.py                          bench/RESULTS.md -> bench/race.svg
    bench/race_chart.py RESULTS.md -o chart.svg
"""
import argparse
import math
import os
import re
import sys
from html import escape

HERE = os.path.dirname(os.path.abspath(__file__))
COLORS = ["#2a6fdb", "#e07b39", "#3a9e5c", "#8c6bb1", "#c44e52", "#777777"]


def last_race(text):
    """(heading, servers, rows) of the last '## ...: race' section's table; rows are
    (scenario, figure, [cell per server])."""
    sections = re.split(r"^## ", text, flags=re.M)
    races = [s for s in sections if re.match(r"[^\n]*: race,", s)]
    if not races:
        raise SystemExit("race_chart: no race section in the results")
    sec = races[-1]
    heading = sec.splitlines()[0]
    lines = [l for l in sec.splitlines() if l.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    servers = [h for h in head[2:] if not h.startswith("Live / ")]
    rows = []
    for l in lines[2:]:
        cells = [c.strip() for c in l.strip().strip("|").split("|")]
        rows.append((cells[0], cells[1], cells[2:2 + len(servers)]))
    return heading, servers, rows


def value(cell, figure):
    """The figure a cell's bar shows (None when the server did not run it)."""
    if cell in ("-", "FAILED", ""):
        return None
    if figure.startswith("p99"):
        m = re.search(r"p99 ([\d.]+)", cell)
        return float(m.group(1)) if m else None
    if figure.startswith("KiB"):
        m = re.match(r"([\d.]+) KiB", cell)
        return float(m.group(1)) if m else None
    m = re.match(r"([\d.]+)([Mk]?)/s", cell)
    if not m:
        return None
    return float(m.group(1)) * {"M": 1e6, "k": 1e3, "": 1}[m.group(2)]


def human(v):
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e4:
        return "%.0fk" % (v / 1e3)
    if v >= 1e3:
        return "%.1fk" % (v / 1e3)
    return "%.3g" % v


def label(cell, figure, v):
    if figure.startswith("p99"):
        text = "p99 %s ms" % human(v)
        lost = re.search(r"lost ([\d.]+)%", cell)
        if lost:
            text += ", lost %s%%" % lost.group(1)
        return text
    if figure.startswith("KiB"):
        return "%.2f KiB/conn" % v
    text = "%s/s" % human(v)
    m = re.search(r"p99 ([\d.]+) / p99\.9 ([\d.]+) ms", cell)
    if m:
        text += "   p99 %s / p99.9 %s ms" % (m.group(1), m.group(2))
    lost = re.search(r"lost ([\d.]+)%", cell)
    if lost and float(lost.group(1)) > 0:
        text += ", lost %s%%" % lost.group(1)
    return text


def svg(heading, servers, rows):
    width, left, bar_h, gap = 960, 230, 16, 4
    plot_w = 360  # the bars; their labels go to the right
    y = 54
    out = []
    for scenario, figure, cells in rows:
        vals = [value(c, figure) for c in cells]
        present = [v for v in vals if v and v > 0]
        out.append('<text x="10" y="%d" class="scen">%s</text>' % (y + 12, escape(scenario)))
        out.append('<text x="10" y="%d" class="fig">%s</text>' % (y + 27, escape(figure)))
        if present:
            lo = 10 ** math.floor(math.log10(min(present)))
            hi = 10 ** math.ceil(math.log10(max(present)))
            if hi <= lo:
                hi = lo * 10
            span = math.log10(hi) - math.log10(lo)
            for k in range(int(round(span)) + 1):  # a tick per decade
                x = left + plot_w * k / span
                out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="tick"/>' % (
                    x, y, x, y + len(servers) * (bar_h + gap)))
            for i, (server, v) in enumerate(zip(servers, vals)):
                by = y + i * (bar_h + gap)
                if v is None or v <= 0:
                    out.append('<text x="%d" y="%d" class="lbl">%s: -</text>' % (left + 4, by + 12, escape(server)))
                    continue
                w = max(2.0, plot_w * (math.log10(v) - math.log10(lo)) / span)
                out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>' % (
                    left, by, w, bar_h, COLORS[i % len(COLORS)], escape(server), escape(cells[i])))
                out.append('<text x="%.1f" y="%d" class="lbl">%s</text>' % (
                    left + w + 6, by + 12, escape(label(cells[i], figure, v))))
            out.append('<text x="%d" y="%d" class="axis">log scale, %s to %s</text>' % (
                left, y + len(servers) * (bar_h + gap) + 10, human(lo), human(hi)))
        y += len(servers) * (bar_h + gap) + 28
    legend = []
    lx = 10
    for i, s in enumerate(servers):
        legend.append('<rect x="%d" y="30" width="12" height="12" fill="%s"/>' % (lx, COLORS[i % len(COLORS)]))
        legend.append('<text x="%d" y="40" class="lbl">%s</text>' % (lx + 16, escape(s)))
        lx += 24 + 7 * len(s)
    height = y + 10
    style = ("text{font:12px system-ui,sans-serif;fill:#222}.scen{font-weight:600}.fig{fill:#666;font-size:11px}"
             ".lbl{font-size:11px}.axis{fill:#888;font-size:10px}.tick{stroke:#ddd}.title{font-size:14px;font-weight:600}")
    return "\n".join([
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">' % (width, height, width, height),
        "<style>%s</style>" % style,
        '<rect width="100%" height="100%" fill="#fff"/>',
        '<text x="10" y="20" class="title">%s</text>' % escape(heading),
        *legend, *out, "</svg>", ""])


def write(results_path, svg_path):
    with open(results_path) as f:
        heading, servers, rows = last_race(f.read())
    with open(svg_path, "w") as f:
        f.write(svg(heading, servers, rows))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("-o", "--output", default=os.path.join(HERE, "race.svg"))
    args = ap.parse_args(argv)
    write(args.results, args.output)
    print("race_chart: wrote %s" % os.path.relpath(args.output))


if __name__ == "__main__":
    sys.exit(main())
