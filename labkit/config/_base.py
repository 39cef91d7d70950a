"""Building blocks shared by every section of the experiment schema (no torch, no Lightning)."""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)
from typing_extensions import Self

__all__ = [
    "MAX_CLASSES",
    "SEED_LIMIT",
    "ClassPathSpec",
    "ComponentSpec",
    "PathText",
    "Section",
    "Seed",
    "check_path_text",
    "component_union",
    "spec_tag",
]

#: the most classes a classification or segmentation task may have: the class count sizes the
#: model's output layer and the K x K confusion matrix, so it never comes from a label's value
MAX_CLASSES = 10_000
#: seeds are 32-bit (NumPy's legacy seeding and several libraries refuse larger ones)
SEED_LIMIT = 2**32
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT, description="0 <= seed < 2**32")]

_DOTTED = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*([.:][A-Za-z_][A-Za-z0-9_]*)$"


class Section(BaseModel):
    """A validated, immutable part of an experiment. Unknown keys are errors.

    Values are taken as written: a float must be finite (``.inf`` and ``.nan`` are refused), a
    number field refuses ``true``/``false`` (YAML reads ``yes``, ``on``... as booleans, and Python
    counts ``True`` as 1), a true/false field refuses numbers and text, and no text may hold a NUL
    character.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_value(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None or isinstance(value, BaseModel) or value is None:
            return value
        kinds = _kinds_of(cls, info.field_name)
        if isinstance(value, dict):  # a mapping of plain values (a section checks its own fields)
            if "model" not in kinds and any(
                isinstance(v, str) and "\x00" in v for v in (*value, *value.values())
            ):
                raise ValueError(_NUL)
            return value
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, str) and "\x00" in item:
                raise ValueError(_NUL)
            if "any" in kinds:
                continue
            if isinstance(item, bool) and "number" in kinds and "bool" not in kinds:
                raise ValueError(
                    "expected a number, got a boolean (YAML reads true/false, yes/no and on/off as booleans)"
                )
            if not isinstance(item, bool) and isinstance(item, (int, float, str)) and kinds == {"bool"}:
                raise ValueError("expected true or false")
        return value


_NUL = "contains a NUL character (\\x00), which no value here may hold"


def check_path_text(value: str) -> str:
    """``value`` if it can name a file: a leading ``~user`` must expand (the user must exist)."""
    if value.startswith("~") and os.path.expanduser(value).startswith("~"):
        user = value.split("/", 1)[0]
        raise ValueError(f"cannot expand {user!r}: no such user or home directory; write the full path")
    return value


#: text naming a file or directory (checked by :func:`check_path_text`)
PathText = Annotated[str, AfterValidator(check_path_text)]

_KINDS: dict[tuple[type, str], frozenset[str]] = {}


def _kinds_of(cls: type[BaseModel], name: str) -> frozenset[str]:
    """What the field ``name`` of ``cls`` holds: ``number``, ``bool``, ``str``, ``any``, ``model``."""
    key = (cls, name)
    if key not in _KINDS:
        field = cls.model_fields.get(name)
        _KINDS[key] = frozenset(_kinds(field.annotation)) if field is not None else frozenset({"any"})
    return _KINDS[key]


def _kinds(annotation: Any) -> set[str]:
    if annotation is Any or annotation is object:
        return {"any"}
    if annotation is bool:
        return {"bool"}
    if annotation in (int, float):
        return {"number"}
    if annotation is str:
        return {"str"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"model"}
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {"bool" if isinstance(v, bool) else "literal" for v in typing.get_args(annotation)}
    if origin is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    out: set[str] = set()
    for arg in typing.get_args(annotation):
        if arg is not Ellipsis and arg is not type(None):
            out |= _kinds(arg)
    return out


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


def component_union(*specs: type[Section], key: str = "name", class_path: bool = True) -> Any:
    """A pydantic type accepting any of ``specs`` (chosen by field ``key``), or a class path.

    Validation errors of the chosen member carry its tag in their location; the error
    formatter in :mod:`labkit.config._load` removes it again (and reads ``key`` back from the
    chooser's name, ``by_<key>``).
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
    tag_of.__name__ = tag_of.__qualname__ = f"by_{key}"
    members: list[Any] = [Annotated[spec, Tag(spec_tag(spec, key))] for spec in specs]
    if class_path:
        members.append(Annotated[ClassPathSpec, Tag("class_path")])
    return Annotated[_union(members), Discriminator(tag_of)]


def _union(members: list[Any]) -> Any:
    return Union[tuple(members)]  # noqa: UP007 - built at run time from a list
