"""Human summaries of a run for the terminal (stdout)."""

from __future__ import annotations

from pathlib import Path


def _fmt_metric(metric: dict | None) -> str:
    if not metric:
        return "n/a"
    return f"{metric['metric']} {metric['value']:.4f}"


def render_run(manifest: dict, out: Path) -> str:
    lines = [f"baseline  {_fmt_metric(manifest.get('baseline'))}"]
    for step in manifest.get("steps", []):
        stats = step["stats"]
        before, after = stats.get("params_before"), stats.get("params_after")
        metric = stats.get("metric_after")
        extra = f", {metric['metric']} {metric['value']:.4f}" if isinstance(metric, dict) else ""
        lines.append(
            f"step      {step['name']}: params {before:,} -> {after:,}{extra} "
            f"({step['seconds']:.1f} s)"
        )
    final = manifest.get("final", {}).get("metric")
    lines.append(f"final     {_fmt_metric(final)} (test split)")
    for v in manifest.get("variants", []):
        val = v.get("validation", {})
        metric = val.get("metric") or {}
        mval = f", {metric.get('metric')} {metric.get('value'):.4f}" if metric else ""
        lines.append(
            f"export    {v['name']}: {v['size_bytes']:,} bytes{mval}, "
            f"max |diff| {val.get('max_abs_diff', float('nan')):.2e}"
        )
    report_md = manifest.get("report_md")
    if report_md:
        lines.append("")
        lines.append(report_md)
    if not report_md:  # the report's table already lists every gate
        for gate in manifest.get("gates", []):
            status = "pass" if gate["passed"] else "FAIL"
            lines.append(
                f"gate      {gate['name']}: {gate['value']:.4g} (limit {gate['limit']}) {status}"
            )
    lines.append(f"outputs   {out}/ (manifest.json)")
    if (out / "report.html").exists():
        lines.append(f"report    {out / 'report.html'}")
    return "\n".join(lines)
