"""Building blocks shared by every section of the experiment schema (no torch, no Lightning)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from typing_extensions import Self

__all__ = ["ClassPathSpec", "ComponentSpec", "Section", "component_union", "spec_tag"]

_DOTTED = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*([.:][A-Za-z_][A-Za-z0-9_]*)$"


class Section(BaseModel):
    """A validated, immutable part of an experiment. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ComponentSpec(Section):
    """Options of a registered component (a model, a dataset, a task family).

    Subclasses set ``name`` to a ``Literal`` (the name users write) and ``target`` to the
    ``"module:attribute"`` that builds it; the module is imported only when the component is
    built, so validating an experiment never imports torch.
    """

    target: ClassVar[str]

    def options(self) -> dict[str, Any]:
        """The keyword arguments for ``target`` (every field but ``name``)."""
        return self.model_dump(exclude={"name"})

    def anchored(self, cwd: Path) -> Self:
        """A copy with relative file paths made absolute under ``cwd`` (none by default)."""
        return self


class ClassPathSpec(Section):
    """Any importable class, written ``package.module.Class`` (or ``package.module:Class``)."""

    class_path: str = Field(pattern=_DOTTED)
    init_args: dict[str, Any] = Field(default_factory=dict)


def spec_tag(spec: type[BaseModel], key: str = "name") -> str:
    """The name a user writes for ``spec`` (the single value of its ``Literal`` field ``key``)."""
    (tag,) = spec.model_fields[key].annotation.__args__  # type: ignore[union-attr]
    return str(tag)


def component_union(*specs: type[ComponentSpec], key: str = "name", class_path: bool = True) -> Any:
    """A pydantic type accepting any of ``specs`` (chosen by field ``key``), or a class path.

    Validation errors of the chosen member carry its tag in their location; the error
    formatter in :mod:`labkit.config._load` removes it again.
    """

    def tag_of(value: Any) -> str | None:
        if isinstance(value, dict):
            if class_path and "class_path" in value:
                return "class_path"
            tag = value.get(key)
            return tag if isinstance(tag, str) else None
        if isinstance(value, ClassPathSpec):
            return "class_path"
        return getattr(value, key, None)

    if len(specs) == 1 and not class_path:
        return specs[0]  # nothing to choose between: a wrong ``key`` is a plain Literal error
    members: list[Any] = [Annotated[spec, Tag(spec_tag(spec, key))] for spec in specs]
    if class_path:
        members.append(Annotated[ClassPathSpec, Tag("class_path")])
    return Annotated[_union(members), Discriminator(tag_of)]


def _union(members: list[Any]) -> Any:
    return Union[tuple(members)]  # noqa: UP007 - built at run time from a list
