"""tssx-plot: charts of a tssx-bench run, drawn by gnuplot.

python3 tssx-plot.py RESULTS.json CHART.svg

RESULTS.json is what `tssx-bench --json` printed: either the message-size
table, drawn as round-trip latency and streaming throughput against message
size, one line per column (raw shared memory, plain sockets, TSSX), medians
with bars from the fastest batch to the 99th percentile; or the load table
(`--load --json`), drawn as requests per second and CPU time per request
for each scenario, plain and TSSX side by side, medians with bars over the
rounds' range.  `tssx bench --plot` runs it.  The data goes to gnuplot
inline; gnuplot writes the SVG.  Exits 1 with one line on stderr when the
results hold nothing to draw or gnuplot fails.
"""
import json
import subprocess
import sys

COLUMNS = (("raw", "raw shared memory"), ("plain", "plain Unix socket"), ("tssx", "TSSX"))
COLORS = {"raw": "#7f7f7f", "plain": "#d62728", "tssx": "#1f77b4"}
# Each column's points a little apart on the log size axis, so that their
# bars do not hide each other.
SHIFT = {"raw": 0.9, "plain": 1.0, "tssx": 1.11}


def fail(message):
    sys.stderr.write("tssx-plot: %s\n" % message)
    sys.exit(1)


def quote(text):
    """A gnuplot string literal."""
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def size_label(size):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return "%d %s" % (size // scale, unit)
    return "%d B" % size


def measured(row, column):
    cell = row.get(column)
    return cell if isinstance(cell, dict) and cell.get("median") else None


def series(rows, column, value):
    """Data lines "size y low high" of one column; value maps a cell to
    (median, low, high)."""
    lines = []
    for row in rows:
        cell = measured(row, column)
        if cell:
            lines.append("%g %g %g %g" % ((row["size"] * SHIFT[column],) + value(row, cell)))
    return lines


def round_trip_us(row, cell):
    return (cell["median"] / 1e3, cell["min"] / 1e3, cell["p99"] / 1e3)


def stream_gb_per_s(row, cell):
    # Slower batches move fewer bytes per second: p99 time is the low end.
    return tuple(row["size"] / cell[k] for k in ("median", "p99", "min"))


def panel(name, rows, value, title, ylabel, key):
    """The datablocks and the plot command of one panel, or None."""
    blocks, plots = [], []
    for column, label in COLUMNS:
        lines = series(rows, column, value)
        if not lines:
            continue
        block = "$%s_%s" % (name, column)
        blocks.append("%s << EOD\n%s\nEOD" % (block, "\n".join(lines)))
        style = "lc rgb %s lw 2 pt 7 ps 0.6" % quote(COLORS[column])
        plots.append("%s using 1:2:3:4 with yerrorbars %s notitle, "
                     "%s using 1:2 with linespoints %s title %s"
                     % (block, style, block, style, quote(label)))
    if not plots:
        return None
    sizes = sorted({row["size"] for row in rows})
    tics = ", ".join("%s %d" % (quote(size_label(s)), s) for s in sizes)
    commands = [
        "set title %s" % quote(title),
        "set ylabel %s" % quote(ylabel),
        "set key %s" % key,
        "set xtics (%s)" % tics,
        "set xrange [%g:%g]" % (sizes[0] / 2, sizes[-1] * 2),
        "plot " + ", ".join(plots),
    ]
    return "\n".join(blocks), "\n".join(commands)


def subtitle(results):
    machine = results.get("machine", {})
    config = results.get("config", {})
    parts = ["tssx-bench %s" % results.get("version", "?")]
    if machine:
        parts.append(", ".join(
            ["%s CPUs" % machine.get("nproc", "?") + (" %s" % machine["cpu"] if "cpu" in machine else "")]
            + (["Linux %s" % machine["kernel"]] if "kernel" in machine else [])
            + ["load average %s" % machine.get("load", "?")]))
    if config:
        parts.append("%s s per cell, %s rounds" % (config.get("duration_s", "?"), config.get("rounds", "?")))
    if results.get("tssx", {}).get("available") is False:
        parts.append("no TSSX column: %s" % results["tssx"].get("reason"))
    return "; ".join(parts)


def load_panel(name, scenarios, key, title, ylabel, scale):
    """A panel of the load table: one cluster per scenario, plain and TSSX
    bars (median, range over the rounds)."""
    lines = []
    for row in scenarios:
        values = []
        for column in ("plain", "tssx"):
            cell = (row.get(column) or {}).get(key)
            values += [cell[k] / scale for k in ("median", "min", "max")] if cell else ["NaN"] * 3
        lines.append("%s %s" % (quote(row.get("label", "?")), " ".join(str(v) for v in values)))
    if not lines:
        return None
    block = "$%s" % name
    commands = [
        "set title %s" % quote(title),
        "set ylabel %s" % quote(ylabel),
        "set key above",
        "set style data histograms",
        "set style histogram errorbars gap 1 lw 1",
        "set style fill solid 0.8 border -1",
        "set xtics rotate by -35 left nomirror",
        "set yrange [0:*]",
        "plot %s using 2:3:4:xtic(1) lc rgb %s title 'plain Unix socket', "
        "'' using 5:6:7 lc rgb %s title 'TSSX'"
        % (block, quote(COLORS["plain"]), quote(COLORS["tssx"])),
    ]
    return "%s << EOD\n%s\nEOD" % (block, "\n".join(lines)), "\n".join(commands)


def load_script(results, chart):
    scenarios = results.get("load") or []
    panels = [p for p in (
        load_panel("rate", scenarios, "req_per_s", "64 B round trips, all clients (higher is better)",
                   "thousand requests/s, median (bars: range)", 1e3),
        load_panel("cpu", scenarios, "cpu_ns_per_req", "CPU time per request (lower is better)",
                   "microseconds, median (bars: range)", 1e3),
    ) if p]
    if not panels:
        fail("no load results to draw")
    return "\n".join(
        [blocks for blocks, _ in panels] + [
            "set terminal svg size 1100,520 dynamic enhanced font 'sans,11' background rgb 'white'",
            "set output %s" % quote(chart),
            "set multiplot layout 1,%d title %s font ',10'" % (len(panels), quote(subtitle(results))),
            "set grid ytics",
            "set bmargin 7",
            "set rmargin 8",
        ] + [commands for _, commands in panels] + ["unset multiplot", "set output"]) + "\n"


def script(results, chart):
    if "load" in results:
        return load_script(results, chart)
    rows = results.get("results") or []
    panels = [p for p in (
        panel("rt", [r for r in rows if r.get("test") == "pingpong"], round_trip_us,
              "round trip (lower is better)", "microseconds, median (bars: min to p99)", "top left"),
        panel("st", [r for r in rows if r.get("test") == "stream"], stream_gb_per_s,
              "streaming (higher is better)", "GB/s, median (bars: p99 to max)", "top left"),
    ) if p]
    if not panels:
        fail("no round-trip or streaming results to draw")
    return "\n".join(
        [blocks for blocks, _ in panels] + [
            "set terminal svg size %d,480 dynamic enhanced font 'sans,11' background rgb 'white'"
            % (520 * len(panels)),
            "set output %s" % quote(chart),
            "set multiplot layout 1,%d title %s font ',10'" % (len(panels), quote(subtitle(results))),
            "set logscale xy",
            "set xlabel 'message size'",
            "set grid",
            "set format y '%g'",
        ] + [commands for _, commands in panels] + ["unset multiplot", "set output"]) + "\n"


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: tssx-plot.py RESULTS.json CHART.svg\n")
        return 2
    try:
        with open(argv[1]) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        fail("cannot read %s: %s" % (argv[1], e))
    try:
        done = subprocess.run(["gnuplot"], input=script(results, argv[2]), text=True,
                              capture_output=True)
    except OSError as e:
        fail("cannot run gnuplot (apt install gnuplot-nox): %s" % e)
    if done.returncode != 0 or done.stderr.strip():
        fail("gnuplot failed: %s" % done.stderr.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
