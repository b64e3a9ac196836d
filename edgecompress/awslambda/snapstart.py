"""Lambda SnapStart for a deploy zip (python3.12 and later): the runtime hooks module
(templates/snapstart.py) beside handler.py, ``"snapstart": true`` in io_spec.json (the handler
registers the hooks; ``compress deploy lambda`` turns SnapStart on for published versions),
and the SAM lines: SnapStart applies to published versions only, so the template publishes
one behind an alias (``AutoPublishAlias``) and that alias is what callers invoke.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MODULE = "edgecompress.awslambda.templates.snapstart"  # copied beside handler.py, not imported
TEMPLATE = Path(__file__).parent / "templates" / (MODULE.rsplit(".", 1)[1] + ".py")
ALIAS = "live"


def add_hooks(stage: Path, spec: dict, enabled: bool) -> None:
    """Copy snapstart.py beside handler.py and mark io_spec (written by the caller)."""
    if not enabled:
        return
    shutil.copyfile(TEMPLATE, stage / TEMPLATE.name)
    spec["snapstart"] = True


def template_lines(enabled: bool, indent: str = "      ") -> str:
    """The SAM function properties SnapStart needs ('' when off), each on its own line."""
    if not enabled:
        return ""
    lines = [f"AutoPublishAlias: {ALIAS}", "SnapStart:", "  ApplyOn: PublishedVersions"]
    return "".join(f"\n{indent}{line}" for line in lines)
