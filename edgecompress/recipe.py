"""The recipe schema (YAML). An invalid recipe is refused before any work starts, with a
message naming the file, the field path and the reason (exit 2)."""

from __future__ import annotations

import copy
import difflib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edgecompress.awslambda.options import LambdaSection
from edgecompress.data import DataSource, describe, parse_spec, resolve
from edgecompress.errors import RecipeError
from edgecompress.gcp.target import CloudRunSection, GcfSection
from edgecompress.model import DEFAULT_METRIC, TaskKind, TaskSpec
from edgecompress.recipe_messages import format_errors
from edgecompress.registry import COMPRESSORS, EXPORTERS, StepConfig
from edgecompress.search.schema import (
    AddressError,
    Objective,
    Param,
    SamplerName,
    SearchSection,
    apply_values,
    parse_space,
    set_at,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSection(Section):
    """Where the model comes from: exactly one of factory (+weights), pt2, hf, onnx."""

    factory: str | None = Field(None, description="'pkg.module:function' building the module")
    weights: str | None = Field(None, description="state_dict file for the factory's module")
    factory_args: dict[str, Any] = Field(default_factory=dict, description="kwargs of factory")
    pt2: str | None = Field(None, description="a torch.export .pt2 file")
    hf: str | None = Field(None, description="a local Hugging Face transformers folder")
    onnx: str | None = Field(None, description="an ONNX file (export-only and ONNX-level steps)")
    inputs: list[dict[str, Any]] | None = Field(None, description="[{name, dtype, shape}]")

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("factory", "pt2", "hf", "onnx") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of factory, pt2, hf, onnx (got {given or 'none'})")
        if self.weights and not self.factory:
            raise ValueError("weights go with factory")
        return self


class TaskSection(Section):
    kind: TaskKind = TaskKind.classification
    data: str | DataSource = Field(
        "digits",
        description="a built-in (digits, sentences, topics), 'pkg.module:function', a path "
        "(.npz, .npy folder, image folder, .csv/.jsonl/.parquet) or {path, text_column, ...}",
    )
    metric: str | None = None
    max_length: int = Field(128, ge=8, le=4096, description="text models: tokens per input")
    eval_samples: int | None = Field(None, ge=1, description="cap on eval samples (None: all)")

    @field_validator("data", mode="wrap")
    @classmethod
    def _data_spec(cls, value, handler):
        return parse_spec(value)

    def spec(self) -> TaskSpec:
        metric = self.metric or DEFAULT_METRIC[self.kind]
        return TaskSpec(self.kind, describe(self.data), metric, self.max_length)


class PackageSection(Section):
    lambda_: LambdaSection | None = Field(None, alias="lambda")
    gcf: GcfSection | None = Field(None, description="Google Cloud Functions (2nd gen) bundle")
    cloudrun: CloudRunSection | None = Field(None, description="Cloud Run service bundle")


class BenchSection(Section):
    runs: int = Field(200, ge=1)
    warmup: int = Field(10, ge=0)
    threads: list[int] = Field(default_factory=lambda: [1, 2])
    batch: int = Field(1, ge=1)
    seq_len: int | None = Field(None, ge=1, description="text models: fixed length to pad to")
    cold_start_runs: int = Field(5, ge=1)
    time_budget_s: float | None = Field(None, gt=0)


class GatesSection(Section):
    max_accuracy_drop: float | None = Field(None, ge=0)
    max_zip_mib: float | None = Field(None, gt=0)
    max_unzipped_mib: float | None = Field(None, gt=0)
    max_p95_ms: float | None = Field(None, gt=0)
    max_cold_start_ms: float | None = Field(None, gt=0)
    max_usd_per_million: float | None = Field(None, gt=0)
    max_p95_regression: float | None = Field(None, ge=0)
    baseline_report: str | None = Field(None, description="previous report.json to compare to")


class CostSection(Section):
    init_fraction: float = Field(0.01, ge=0, le=1, description="share of invocations cold")
    pricing: str | None = Field(None, description="a pricing.json overriding the built-in one")
    pricing_gcp: str | None = Field(
        None, description="a pricing_gcp.json overriding the built-in Google Cloud prices"
    )
    p95_target_ms: float | None = Field(None, gt=0)
    requests_per_month: float | None = Field(
        None, gt=0, description="SnapStart: spreads the snapshot cache charge over the calls"
    )


class Recipe(Section):
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="letters, digits, '.', '_', '-' (at most 100): names the default OUT folder",
    )
    seed: int = 0
    model: ModelSection
    task: TaskSection = Field(default_factory=TaskSection)
    steps: list[dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    export: list[str | dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    package: PackageSection = Field(default_factory=PackageSection)
    bench: BenchSection | None = None
    gates: GatesSection = Field(default_factory=GatesSection)
    cost: CostSection = Field(default_factory=CostSection)
    search: SearchSection | None = Field(
        None, description="what `compress search` varies and minimises (`compress run` ignores it)"
    )
    relative_to: str | None = Field(
        None,
        description="the folder relative paths in this recipe are resolved against (default: "
        "the recipe's own folder); `compress search` writes it into trial recipes and best.yaml",
    )

    # Filled by load_recipe: validated configs and the recipe's folder.
    step_configs: list[tuple[str, StepConfig]] = Field(default_factory=list, exclude=True)
    search_params: list[Any] = Field(default_factory=list, exclude=True)  # search.schema.Param
    export_configs: list[tuple[str, StepConfig]] = Field(default_factory=list, exclude=True)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    path: Path | None = Field(None, exclude=True)


def _validate_entries(entries, registry, field: str, source: str) -> list[tuple[str, StepConfig]]:
    configs = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {entry: None}
        if len(entry) != 1:
            raise RecipeError(
                f"{source}: {field}[{i}]: one {registry.kind} per item, got {list(entry)}"
            )
        ((name, raw),) = entry.items()
        try:
            reg = registry.get(name)
        except KeyError:
            close = difflib.get_close_matches(name, registry.names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise RecipeError(
                f"{source}: {field}[{i}]: unknown {registry.kind} {name!r} "
                f"(known: {', '.join(registry.names()) or 'none'}{hint})"
            ) from None
        try:
            configs.append((name, reg.config_cls.model_validate(raw or {})))
        except ValidationError as exc:
            raise RecipeError(
                format_errors(source, exc, reg.config_cls, (field, i, name))
            ) from None
    return configs


def parse_recipe(data: Any, source: str = "<recipe>", base_dir: Path | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(
            f"{source}: a recipe is a mapping with at least 'model', got {type(data).__name__}"
        )
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_errors(source, exc, Recipe)) from None
    recipe.step_configs = _validate_entries(recipe.steps, COMPRESSORS, "steps", source)
    recipe.export_configs = _validate_entries(recipe.export, EXPORTERS, "export", source)
    recipe.base_dir = base_dir or Path.cwd()
    if recipe.relative_to:
        relative = Path(recipe.relative_to).expanduser()
        recipe.base_dir = relative if relative.is_absolute() else recipe.base_dir / relative
    recipe.task.data = resolve(recipe.task.data, recipe.base_dir)  # a path: from base_dir
    if recipe.search is not None:
        recipe.search_params = _search_params(data, recipe, source, base_dir)
    return recipe


def _is_list_type(annotation) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_list_type(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_is_list_type(a) for a in typing.get_args(annotation) if a is not type(None))
    return annotation is list or origin is list


def _model_in(annotation):
    """The pydantic model an annotation holds (``Tolerances``, ``X | None``), else None."""
    for cand in typing.get_args(annotation) or (annotation,):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _holds_list(path: tuple) -> bool:
    """Whether the recipe field at ``path`` (an address already checked against the recipe)
    holds a list, so a scalar choice for it becomes a one-item list."""
    if len(path) == 1:
        return _is_list_type(Recipe.model_fields[path[0]].annotation)
    if path[0] == "package":
        field = LambdaSection.model_fields.get(path[2])
        return field is not None and _is_list_type(field.annotation)
    if len(path) < 4:  # steps[i] or steps[i].name: one item, one config
        return False
    registry = COMPRESSORS if path[0] == "steps" else EXPORTERS
    cls, annotation = registry.get(path[2]).config_cls, None
    for key in path[3:]:
        field = cls.model_fields.get(key) if cls is not None and isinstance(key, str) else None
        if field is None:
            return False
        annotation = field.annotation
        cls = _model_in(annotation)
    return _is_list_type(annotation)


def _check_value(base: dict, param: Param, value, source: str, base_dir) -> None:
    """The recipe with ``value`` at the param's address must validate."""
    data = apply_values(base, {param.address: value}, {param.address: param.wrap})
    try:
        parse_recipe(data, "", base_dir)
    except RecipeError as exc:
        why = "; ".join(line.removeprefix(": ") for line in str(exc).splitlines())
        raise RecipeError(
            f"{source}: search.space.{param.address}: the value {value!r} makes an invalid "
            f"recipe: {why}"
        ) from None


MAX_GRID = 10_000


def _check_grid(params: list[Param], source: str) -> None:
    size = 1
    for param in params:
        points = param.grid()
        if points is None:
            raise RecipeError(
                f"{source}: search.space.{param.address}: sampler grid needs choices or a "
                "range with a step"
            )
        size *= len(points)
    if size > MAX_GRID:
        raise RecipeError(
            f"{source}: search.sampler: grid has {size:,} points; at most {MAX_GRID:,}"
        )


def _search_params(data: dict, recipe: Recipe, source: str, base_dir) -> list[Param]:
    """Every ``search.space`` address resolved against the recipe, and every choice (both ends
    of a range) validated as the recipe field it replaces; ``search.start`` checked too."""
    section = recipe.search
    try:
        params = parse_space(section.space)
    except AddressError as exc:
        raise RecipeError(f"{source}: search.space.{exc}") from None
    base = {k: v for k, v in data.items() if k != "search"}
    for param in params:
        try:
            set_at(copy.deepcopy(base), param.path, None)
        except AddressError as exc:
            raise RecipeError(f"{source}: search.space.{param.address}: {exc}") from None
        param.wrap = _holds_list(param.path)
        for value in param.probe_values():
            _check_value(base, param, value, source, base_dir)
    if Objective.zip_mib in section.objectives and recipe.package.lambda_ is None:
        raise RecipeError(
            f"{source}: search.objectives: zip_mib needs a Lambda zip: add package.lambda"
        )
    if section.sampler == SamplerName.grid:
        _check_grid(params, source)
    by_address = {p.address: p for p in params}
    for i, point in enumerate(section.start):
        for address, value in point.items():
            param = by_address.get(address)
            if param is None:
                raise RecipeError(
                    f"{source}: search.start[{i}].{address}: not an address in search.space"
                )
            if not param.contains(value):
                raise RecipeError(
                    f"{source}: search.start[{i}].{address}: {value!r} is not in its choices "
                    "or range"
                )
    return params


MAX_RECIPE_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases: an alias chain ("billion laughs")
    expands exponentially, and no recipe needs one."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in recipes", event.start_mark
            )
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> object:
    """The YAML document at ``path``: at most MAX_RECIPE_BYTES, no aliases (exit 2 otherwise)."""
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: {size:,} bytes; a recipe may be {MAX_RECIPE_BYTES:,} at most")
    try:
        return yaml.load(path.read_text(), Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None


def load_recipe(path: Path) -> Recipe:
    """Read and validate a YAML recipe; RecipeError (exit 2) names file, field and reason."""
    path = Path(path)
    data = read_yaml(path)
    recipe = parse_recipe(data, str(path), path.resolve().parent)
    if recipe.relative_to and not recipe.base_dir.is_dir():
        raise RecipeError(f"{path}: relative_to: no such folder: {recipe.base_dir}")
    recipe.path = path
    return recipe
