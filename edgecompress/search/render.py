"""A search's outputs in OUT: trials.json, report.md, report.html (the Pareto plot when
matplotlib is installed) and best.yaml. Each file is written atomically (temp + rename)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from pathlib import Path

import yaml

from edgecompress import __version__
from edgecompress.report.html import CSS, esc
from edgecompress.report.markdown import table
from edgecompress.report.report import ESTIMATE_NOTE, atomic_write
from edgecompress.search import records as rec
from edgecompress.search.space import runnable

OBJECTIVE_LABELS = {
    "usd_per_million": "$/1M (est.)",
    "accuracy_drop": "accuracy drop",
    "p95_ms": "p95 ms",
    "zip_mib": "zip MiB",
}


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def _value(v) -> str:
    return json.dumps(v) if isinstance(v, list | dict) else _num(v)


def _measured_cells(r: dict) -> list[str]:
    m = r["measurements"] or {}
    return [
        f"{m['usd_per_million']:.4f}" if m.get("usd_per_million") is not None else "—",
        _num(m.get("accuracy_drop")),
        _num(m.get("p95_ms")),
        _num(m.get("zip_mib")),
        f"{m.get('memory_mb')} MB {m.get('arch')}" if m.get("memory_mb") else "—",
        m.get("variant") or "—",
    ]


MEASURED_HEADER = ["$/1M (est.)", "acc. drop", "p95 ms", "zip MiB", "memory", "variant"]


def trial_rows(records: list[dict], addresses: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["trial", "status", *MEASURED_HEADER, "s", *addresses, "reason"]
    rows = []
    for r in records:
        reason = r["reason"] or ""
        if r.get("duplicate_of") is not None:
            reason = f"same values as trial {r['duplicate_of']}" + (f"; {reason}" if reason else "")
        rows.append(
            [
                str(r["number"]),
                r["status"],
                *_measured_cells(r),
                _num(r["seconds"], 3),
                *[_value(r["values"].get(a)) for a in addresses],
                reason[:200],
            ]
        )
    return header, rows


def pareto_rows(records: list[dict], front: list[int], addresses: list[str]):
    header = ["trial", *MEASURED_HEADER, *addresses]
    chosen = sorted((r for r in records if r["number"] in front), key=rec.cost_key)
    rows = [
        [str(r["number"]), *_measured_cells(r), *[_value(r["values"].get(a)) for a in addresses]]
        for r in chosen
    ]
    return header, rows


def summary(doc: dict) -> str:
    best, closest = doc["best"], doc["closest"]
    counts = ", ".join(f"{n} {status}" for status, n in doc["counts"].items()) or "none"
    head = f"{len(doc['trials'])} trials ({counts})"
    if best is not None:
        m = doc["by_number"][best]["measurements"]
        return (
            f"{head}; best: trial {best}, ${m['usd_per_million']:.4f} per million (est.), "
            f"accuracy drop {_num(m['accuracy_drop'])}, p95 {_num(m['p95_ms'])} ms"
        )
    if closest is not None:
        return f"{head}; no trial passed every gate; closest: trial {closest}"
    return f"{head}; no trial was measured"


def _gates_line(doc: dict) -> str:
    limits = [f"{k} <= {v:g}" for k, v in doc["gates"].items() if isinstance(v, int | float)]
    return ", ".join(limits) or "none (every measured trial passes)"


def render_markdown(doc: dict) -> str:
    addresses = list(doc["space"])
    lines = [
        f"## edgecompress search — {doc['name']}: {summary(doc)}",
        "",
        f"Study `{doc['study']}` in `{doc['storage']}`; objectives (minimised): "
        f"{', '.join(doc['objectives'])}; constraints (the recipe's gates): {_gates_line(doc)}.",
        "",
    ]
    if doc["best"] is not None:
        lines += [
            f"**best.yaml** is trial {doc['best']}: the cheapest trial that passed every gate; "
            "`compress run best.yaml -o OUT` rebuilds it.",
            "",
        ]
    elif doc["closest"] is not None:
        r = doc["by_number"][doc["closest"]]
        lines += [f"**No trial passed every gate.** Closest: trial {r['number']}: {r['reason']}"]
        lines.append("")
    front_label = "passed every gate" if doc["pareto_feasible"] else "no trial passed: all measured"
    header, rows = pareto_rows(doc["trials"], doc["pareto"], addresses)
    lines += [f"### Pareto front ({front_label})", "", *table(header, rows), ""]
    header, rows = trial_rows(doc["trials"], addresses)
    lines += ["### All trials", "", *table(header, rows), ""]
    lines += [f"_{ESTIMATE_NOTE}_", "", f"Written {doc['date']} by edgecompress {__version__}.", ""]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]], classes: list[str]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        f'<tr class="{c}">' + "".join(f"<td>{esc(x)}</td>" for x in row) + "</tr>"
        for row, c in zip(rows, classes, strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pareto_plot(doc: dict) -> bytes | None:
    """The first two objectives of every measured trial (one objective: against the trial
    number); the front joined, the best starred. None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    objectives = doc["objectives"]
    measured = [r for r in doc["trials"] if r["objectives"] is not None]
    if not measured:
        return None

    def xy(r):
        if len(objectives) == 1:
            return r["number"], r["objectives"][0]
        return r["objectives"][0], r["objectives"][1]

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    styles = (
        (True, {"marker": "o", "color": "tab:blue", "label": "passed every gate"}),
        (False, {"marker": "x", "color": "tab:gray", "label": "failed a gate"}),
    )
    for passed, style in styles:
        pts = [xy(r) for r in measured if r["passed"] == passed]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=40, zorder=3, **style)
    front = sorted((xy(doc["by_number"][n]) for n in doc["pareto"]), key=lambda p: p[0])
    if front:
        ax.scatter(
            [p[0] for p in front],
            [p[1] for p in front],
            s=160,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=1.5,
            zorder=4,
            label="Pareto front",
        )
    if len(front) > 1 and len(objectives) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="tab:red")
    for r in measured:
        ax.annotate(str(r["number"]), xy(r), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if doc["best"] is not None:
        bx, by = xy(doc["by_number"][doc["best"]])
        ax.scatter(
            [bx],
            [by],
            marker="*",
            s=260,
            color="gold",
            edgecolors="black",
            zorder=4,
            label="best.yaml",
        )
    names = [OBJECTIVE_LABELS.get(o, o) for o in objectives]
    ax.set_xlabel("trial" if len(names) == 1 else names[0])
    ax.set_ylabel(names[0] if len(names) == 1 else names[1])
    ax.set_title(f"search {doc['name']}: {len(measured)} measured trials")
    ax.legend(loc="best", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def render_html(doc: dict) -> str:
    addresses = list(doc["space"])
    parts = [
        f"<h1>edgecompress search — {esc(doc['name'])}</h1>",
        f"<p>{esc(summary(doc))}</p>",
        f"<p class=note>study {esc(doc['study'])} · {esc(doc['storage'])} · objectives "
        f"{esc(', '.join(doc['objectives']))} · gates {esc(_gates_line(doc))}</p>",
    ]
    png = pareto_plot(doc)
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<h2>Pareto front</h2><img alt="pareto plot" src="data:image/png;base64,{data}">'
        )
    else:
        parts.append("<p class=note>(no plot: matplotlib not installed, or nothing measured)</p>")
    header, rows = pareto_rows(doc["trials"], doc["pareto"], addresses)
    parts += ["<h2>Pareto front table</h2>", _html_table(header, rows, ["pass"] * len(rows))]
    header, rows = trial_rows(doc["trials"], addresses)
    classes = ["pass" if r["passed"] else "fail" for r in doc["trials"]]
    parts += ["<h2>All trials</h2>", _html_table(header, rows, classes)]
    parts.append(f"<p class=note>{esc(ESTIMATE_NOTE)}</p>")
    head = f"<meta charset=utf-8><title>edgecompress search</title><style>{CSS}</style>"
    return f"<!DOCTYPE html><html lang=en><head>{head}</head><body>{''.join(parts)}</body></html>\n"


def best_yaml(doc: dict, base_dir: Path) -> str | None:
    if doc["best"] is None:
        return None
    r = doc["by_number"][doc["best"]]
    m = r["measurements"]
    header = (
        f"# compress search: trial {r['number']} of study {doc['study']}, the cheapest that\n"
        f"# passed every gate: ${m['usd_per_million']:.4f} per million invocations (estimate),\n"
        f"# accuracy drop {_num(m['accuracy_drop'])}, p95 {_num(m['p95_ms'])} ms "
        f"({m['variant']}, {m['memory_mb']} MB {m['arch']}).\n"
        "# Run it as is: compress run best.yaml -o OUT\n"
    )
    return header + yaml.safe_dump(runnable(r["recipe"], base_dir), sort_keys=False)


def build_doc(frozen_trials, meta: dict) -> dict:
    """trials.json's document from the study's trials and ``meta`` (name, study, storage,
    recipe, objectives, space, gates)."""
    records = [rec.record(t) for t in frozen_trials if t.state.name != "WAITING"]
    queued = sum(1 for t in frozen_trials if t.state.name == "WAITING")
    front = rec.pareto(records)
    best, closest = rec.best(records), rec.closest(records)
    return {
        "schema_version": 1,
        "tool": {"name": "edgecompress", "version": __version__},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **meta,
        "counts": rec.counts(records),
        "queued": queued,  # values waiting for a trial (search.start, grid, retries)
        "best": best["number"] if best else None,
        "closest": closest["number"] if closest and not best else None,
        "pareto": front,
        "pareto_feasible": any(r["passed"] for r in records),
        "trials": records,
    }


def write_outputs(out: Path, doc: dict, base_dir: Path) -> dict[str, Path]:
    """trials.json, report.md, report.html and (when a trial passed) best.yaml into ``out``."""
    doc = {**doc, "by_number": {r["number"]: r for r in doc["trials"]}}
    written = {}
    public = {k: v for k, v in doc.items() if k != "by_number"}
    files = {
        "trials.json": json.dumps(public, indent=2, default=str) + "\n",
        "report.md": render_markdown(doc),
        "report.html": render_html(doc),
        "best.yaml": best_yaml(doc, base_dir),
    }
    for name, text in files.items():
        if text is not None:
            atomic_write(out / name, text)
            written[name] = out / name
    return written
