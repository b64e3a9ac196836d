"""Human summaries of a run for the terminal (stdout)."""

from __future__ import annotations

from pathlib import Path


def _fmt_metric(metric: dict | None) -> str:
    if not metric:
        return "n/a"
    return f"{metric['metric']} {metric['value']:.4f}"


def _step_line(step: dict) -> str:
    stats = step["stats"]
    before, after = stats.get("params_before"), stats.get("params_after")
    line = f"step      {step['name']}: params {before:,} -> {after:,}"
    if isinstance(stats.get("metric_after"), float):
        line += f", {stats.get('metric', 'metric')} {stats['metric_after']:.4f}"
    if stats.get("size_bytes_after"):
        line += f", {stats['size_bytes_before']:,} -> {stats['size_bytes_after']:,} bytes"
    return line + f" ({step['seconds']:.1f} s)"


def _variant_line(v: dict) -> str:
    val = v.get("validation", {})
    metric = val.get("metric") or {}
    mval = f", {metric.get('metric')} {metric.get('value'):.4f}" if metric else ""
    return (
        f"export    {v['name']}: {v['path']} {v['size_bytes']:,} bytes{mval}, "
        f"max |diff| {val.get('max_abs_diff', float('nan')):.2e} (validated)"
    )


def _zip_line(z: dict) -> str:
    check = z.get("self_check") or {}
    if check.get("passed") and "emulated" in check:
        status = f"self-check passed ({len(check.get('events', []))} events, arm64 under qemu)"
    elif check.get("passed"):
        status = f"self-check passed ({len(check.get('events', []))} events under awslambdaric)"
    else:
        status = f"self-check skipped: {check.get('skipped', 'n/a')}"
    return (
        f"lambda    {z['path']}: {z['zipped_bytes'] / 2**20:.1f} MiB zipped, "
        f"{z['unzipped_bytes'] / 2**20:.1f} MiB unzipped, {z['arch']} py{z['python']}; {status}"
    )


def _gcp_line(b: dict) -> str:
    check = b.get("self_check") or {}
    if "skipped" in check:
        status = f"self-check skipped: {check['skipped']}"
    else:
        mode = "passed" if check.get("mode") == "full" else f"PARTIAL ({check.get('why')})"
        status = f"self-check {mode} under functions-framework"
    return f"{b['kind']:<9} {b['path']}: {b['runtime']}, {b['memory_mib']} MiB; {status}"


def render_run(manifest: dict, out: Path) -> str:
    lines = [f"baseline  {_fmt_metric(manifest.get('baseline'))} (the model as given, test split)"]
    lines += [_step_line(step) for step in manifest.get("steps", [])]
    final = manifest.get("final", {}).get("metric")
    lines.append(f"final     {_fmt_metric(final)} (compressed torch model, test split)")
    lines += [_variant_line(v) for v in manifest.get("variants", [])]
    lines += [_zip_line(z) for z in manifest.get("lambda", [])]
    lines += [_gcp_line(b) for kind in ("gcf", "cloudrun") for b in manifest.get(kind) or []]
    report_md = manifest.get("report_md")
    if report_md:
        lines += ["", report_md]
    else:  # the report's table already lists every gate
        for gate in manifest.get("gates", []):
            status = "pass" if gate["passed"] else "FAIL"
            lines.append(
                f"gate      {gate['name']}: {gate['value']} (limit {gate['limit']}) {status}"
            )
    lines.append(f"outputs   {out}/ (manifest.json)")
    if (out / "report.html").exists():
        lines.append(f"report    {out / 'report.html'}")
    return "\n".join(lines)
