"""GcpTarget / CloudRunTarget: Google's limits enforced, tier CPUs, recipe sections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgecompress.errors import RecipeError
from edgecompress.gcp.target import CloudRunTarget, GcpRuntime, GcpTarget, default_cpu, platforms
from edgecompress.recipe import parse_recipe


def test_memory_tier_cpus_and_runtime_python():
    assert [default_cpu(m) for m in (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)] == [
        0.083, 0.167, 0.333, 0.583, 1.0, 2.0, 2.0, 4.0, 8.0
    ]  # fmt: skip
    assert GcpTarget().vcpu == 0.583 and GcpTarget(memory_mib=2048).vcpu == 1.0
    assert GcpRuntime.python313.python == "3.13" and GcpTarget().python == "3.12"
    assert platforms()[0] == "manylinux_2_17_x86_64" and "manylinux_2_35_x86_64" in platforms()


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"concurrency": 4}, "needs at least 1 vCPU"),  # 1024 MiB -> 0.583 vCPU
        ({"cpu": 3}, "at least 1 vCPU comes in"),
        ({"memory_mib": 8192, "cpu": 1}, "4 GiB per vCPU"),
        ({"memory_mib": 64}, "greater than or equal to 128"),
        ({"region": "US Central"}, "pattern"),
    ],
)
def test_limits_refused(fields, words):
    with pytest.raises(ValidationError, match=words):
        GcpTarget(**fields)


def test_json_round_trip_and_cloud_run_defaults():
    target = CloudRunTarget(memory_mib=2048, concurrency=16)
    assert CloudRunTarget.model_validate_json(target.model_dump_json()) == target
    assert target.vcpu == 1.0 and target.concurrency == 16


def test_recipe_sections_and_field_errors(write_recipe):
    base = {"model": {"factory": "edgecompress.zoo:digits_cnn"}}
    recipe = parse_recipe({**base, "package": {"gcf": {"memory_mib": 2048, "concurrency": 2},
                                                "cloudrun": {"variant": "onnx-fp32"}}})  # fmt: skip
    assert recipe.package.gcf.target() == GcpTarget(memory_mib=2048, concurrency=2)
    assert recipe.package.cloudrun.target().concurrency == CloudRunTarget().concurrency
    with pytest.raises(RecipeError, match=r"r\.yaml: package\.gcf\.memory_mb: unknown field"):
        parse_recipe({**base, "package": {"gcf": {"memory_mb": 512}}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"package\.cloudrun: .*needs at least 1 vCPU"):
        parse_recipe({**base, "package": {"cloudrun": {"cpu": 0.5}}}, "r.yaml")
