"""Read an experiment file, merge command-line overrides (OmegaConf), validate (pydantic).

This is the edge: it is the one place that reads the environment (``MLFLOW_TRACKING_URI``) and
the working directory to fill in defaults, so the :class:`Experiment` it returns is complete
and everything below it can rely on its values alone.
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Tag, ValidationError

from labkit.config._base import ComponentSpec, spec_tag
from labkit.config._schema import Experiment
from labkit.config._uri import DEFAULT_STORE, default_tracking_uri, redact_uri, tracking_uri_problem
from labkit.errors import ConfigError, ExperimentFileError, did_you_mean

__all__ = [
    "DEFAULT_STORE",
    "default_tracking_uri",
    "dump_experiment",
    "flatten",
    "format_validation_error",
    "load_experiment",
    "parse_value",
    "validate_experiment",
]

#: The embedded tracking store used when neither the file nor ``MLFLOW_TRACKING_URI`` names one:
#: an SQLite database in the working directory, artifacts in ``./mlruns`` beside it.

_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=")
_COMPONENT_WORD = {"model": "model", "data": "dataset", "task": "task kind"}


def load_experiment(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Experiment:
    """Load ``path``, apply dotted ``overrides`` (``trainer.max_epochs=3``) and validate.

    Defaults that depend on where labkit runs are filled in here: the tracking URI (from
    ``MLFLOW_TRACKING_URI`` in ``environ``, else :data:`DEFAULT_STORE` in ``cwd``) and the
    absolute runs root. Raises :class:`~labkit.errors.LabkitError` subclasses only.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    raw = OmegaConf.to_container(_read_file(Path(path)), resolve=False)
    assert isinstance(raw, dict)
    for item in _check_overrides(overrides):  # all set on one plain copy, then one config is made
        key, text = item.split("=", 1)
        _set_override(raw, key, parse_value(text, what=f"override {_shorten(item)!r}"))
    try:
        data = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    except OmegaConfBaseException as exc:
        extra = f" with overrides {_shorten(str(list(overrides)), 200)}" if overrides else ""
        raise ConfigError(f"{path}{extra}: {_first_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: {_TOO_DEEP}, or its ${{...}} interpolations loop") from None
    assert isinstance(data, dict)
    deep = _too_deep(data)
    if deep:
        raise ExperimentFileError(f"{path}: {deep}")
    return validate_experiment(
        {str(k): v for k, v in data.items()}, source=str(path), environ=environ, cwd=cwd
    )


#: how deeply ``[...]`` and ``{...}`` may nest in an experiment or a value (an experiment needs 4)
MAX_NESTING = 32


def parse_value(text: str, *, what: str) -> Any:
    """``text`` as a YAML value (``3``, ``1e-3``, ``true``, ``[64, 64]``, ``{a: 1}``, text) the way
    overrides read it; a value with a line break (and no brackets) stays the text as typed.

    Anything that is not a plain value (broken brackets, an undefined ``*alias``, a ``!!tag``,
    nesting deeper than :data:`MAX_NESTING`) raises :class:`~labkit.errors.ConfigError` starting
    with ``what`` (e.g. ``"override 'seed=*a'"``), saying what is wrong and what to write instead.
    """
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if "\n" in text and not text.lstrip().startswith(("[", "{")):
        return text  # YAML would fold the line break of a plain value into a space
    try:
        parsed: Any = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]), resolve=False)
        value = parsed["value"]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: {_yaml_problem(exc, text)}") from None
    except RecursionError:
        raise ConfigError(f"{what}: {_TOO_DEEP}") from None
    except (OmegaConfBaseException, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"{what}: not a plain value ({_first_line(exc)}); quote it to keep it as text"
        ) from None
    deep = _too_deep(value)
    if deep:
        raise ConfigError(f"{what}: {deep}")
    return value


_TOO_DEEP = f"nested too deeply; at most {MAX_NESTING} levels of [...] and {{...}} are allowed"


def _too_deep(value: Any) -> str | None:
    """Why ``value`` nests too deeply (None if it does not); iterative, any depth."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return _TOO_DEEP
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)
    return None


def _yaml_problem(exc: Exception, text: str) -> str:
    """What is wrong with ``text`` as YAML, and what to write instead."""
    import yaml

    quote = "quote the value to keep it as text"
    if isinstance(exc, yaml.reader.ReaderError):
        return f"contains a character YAML does not allow ({_first_line(exc)}); remove it"
    problem = str(getattr(exc, "problem", None) or _first_line(exc))
    if "undefined alias" in problem:
        alias = re.search(r"\*[^\s,\[\]{}]*", text)
        shown = f" {alias.group()!r}" if alias else ""
        return f"not valid YAML: the alias{shown} names no anchor (&name) in this value; {quote}"
    if "could not determine a constructor" in problem:
        tag = re.search(r"'([^']*)'", problem)
        shown = f" {tag.group(1).replace('tag:yaml.org,2002:', '!!')!r}" if tag else ""
        return (
            f"the YAML tag{shown} is not allowed: write a plain value (a number, text, true/false, "
            f"null, [a, list] or {{a: mapping}}); {quote}"
        )
    context = getattr(exc, "context", None)
    problem = f"{context}: {problem}" if context else problem
    return f"not valid YAML ({problem}); {quote} or fix the brackets"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_experiment(
    data: Mapping[str, Any],
    *,
    source: str = "experiment",
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Experiment:
    """Validate plain data as an :class:`Experiment` and fill in the environment's defaults."""
    try:
        exp = Experiment.model_validate(dict(data))
    except ValidationError as exc:
        problems = _problem_lines(exc, Experiment)
        head = f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}"
        problems = _at_most(problems)
        raise ConfigError(head + "\n  " + "\n  ".join(problems)) from None
    return _fill_defaults(exp, os.environ if environ is None else environ, Path(cwd or Path.cwd()))


def _fill_defaults(exp: Experiment, environ: Mapping[str, str], cwd: Path) -> Experiment:
    tracking = exp.tracking
    uri = default_tracking_uri(tracking.uri, environ, cwd)
    problem = tracking_uri_problem(uri, must_exist=False)
    if problem:  # the URI from $MLFLOW_TRACKING_URI, or a relative SQLite path in ``cwd``
        source = "tracking.uri" if tracking.uri else "$MLFLOW_TRACKING_URI"
        raise ConfigError(f"{source}: {redact_uri(uri)!r}: {problem}")
    runs_root = Path(exp.runs_root).expanduser()
    update: dict[str, Any] = {
        "tracking": tracking.model_copy(
            update={
                "uri": uri,
                "experiment": tracking.experiment or exp.name,
                "run_name": tracking.run_name or exp.name,
            }
        ),
        "runs_root": str(runs_root if runs_root.is_absolute() else (cwd / runs_root).resolve()),
    }
    if isinstance(exp.data, ComponentSpec):  # file paths in the data section: absolute, jobs move
        update["data"] = exp.data.anchored(cwd)
        _not_a_directory(update["data"])
    return exp.model_copy(update=update)


def _not_a_directory(data: ComponentSpec) -> None:
    """A data file named by a directory is refused here, so that ``labkit check`` says so (a file
    that does not exist yet may still appear before the run: that is the data module's check)."""
    path = getattr(data, "path", None)
    try:
        is_dir = isinstance(path, str) and Path(path).is_dir()
    except (OSError, ValueError):
        return
    if is_dir:
        raise ConfigError(f"data.path: {path} is a directory, not a file; name the data file in it")


def _read_file(path: Path) -> Any:
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            hint = did_you_mean(path.name, (p.name for p in path.parent.glob("*.y*ml")))
        what = "is a directory, not a file" if path.is_dir() else "not found"
        raise ExperimentFileError(f"experiment file {what}: {path}{hint}")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise ExperimentFileError(f"{path}: not valid YAML: {_first_line(exc, join=True)}") from None
    except RecursionError:
        raise ExperimentFileError(f"{path}: {_TOO_DEEP}") from None
    except (OSError, UnicodeDecodeError, ValueError, OmegaConfBaseException) as exc:
        raise ExperimentFileError(f"{path}: cannot read: {_first_line(exc)}") from None
    if not isinstance(cfg, DictConfig):
        raise ExperimentFileError(f"{path}: an experiment file must be a mapping of keys to values")
    try:
        _expand_shorthands(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: {_first_line(exc)}") from None
    return cfg


#: ``key: word`` written for ``key: {field: word}``, expanded before overrides are merged so that
#: ``task.num_classes=2`` adds to ``task: classification`` instead of replacing it
_SHORTHANDS = {"task": "kind", "optimizer.scheduler": "name"}


def _expand_shorthands(cfg: Any) -> None:
    from omegaconf import OmegaConf

    for key, field in _SHORTHANDS.items():
        value = OmegaConf.select(cfg, key)
        if isinstance(value, str):
            OmegaConf.update(cfg, key, {field: value}, merge=False)


def _check_overrides(overrides: Iterable[str]) -> list[str]:
    checked = []
    for item in overrides:
        if not _OVERRIDE.match(item):
            raise ConfigError(
                f"override {item!r} is not of the form KEY=VALUE with a dotted KEY, "
                "e.g. trainer.max_epochs=3 or model.hidden=[64,64]"
            )
        checked.append(item)
    return checked


def _set_override(data: dict[Any, Any], key: str, value: Any) -> None:
    """Set one override in ``data`` (plain, in place). A mapping value replaces the key's mapping
    instead of merging into it, so ``model={class_path: my.Net}`` does not inherit the file's
    ``model.hidden``; a key below a value that is not a mapping replaces that value."""
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if key in _SHORTHANDS and isinstance(value, str):  # ``task=regression``, then ``task.loss=mae``
        value = {_SHORTHANDS[key]: value}
    node[leaf] = value


def _first_line(exc: BaseException, join: bool = False) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if join else (text.splitlines() or [type(exc).__name__])[0]


# --------------------------------------------------------------------------- error messages
#: most problems listed in one error message (the rest are counted); longest key shown
MAX_PROBLEMS = 20
_MAX_KEY = 80
_MAX_LINE = 500


def format_validation_error(exc: ValidationError, root: type[BaseModel] = Experiment) -> list[str]:
    """One readable line per problem: ``dotted.key: what is wrong (and the valid choices)``.

    A value that fits none of a field's alternatives (``devices: 2 | auto | [0, 1]``) gives
    pydantic one error per alternative; they are joined into one line. At most
    :data:`MAX_PROBLEMS` lines, then ``... and N more``; long keys and lines are cut short (a
    file that is no experiment or profile at all would otherwise be echoed line by line).
    """
    return _at_most(_problem_lines(exc, root))


def _at_most(lines: list[str], limit: int = MAX_PROBLEMS) -> list[str]:
    lines = [_shorten(line, _MAX_LINE) for line in lines]
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"... and {len(lines) - limit} more"]


def _problem_lines(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    groups: dict[str, list[tuple[Any, type[BaseModel] | None]]] = {}
    errors = exc.errors(include_url=False)
    for raw in errors:
        if _follows_from_items(raw, errors):
            continue
        secret = bool(raw["loc"]) and raw["loc"][-1] in _SECRET_KEYS
        err = {**raw, "input": _NOT_SHOWN} if secret else raw  # never echo what may be a secret
        loc, section = _walk(err["loc"], root)
        where = ".".join(_shorten(part, _MAX_KEY) for part in loc) or "top level"
        groups.setdefault(_shorten(where, _MAX_KEY * 2), []).append((err, section))
    lines = []
    for where, errs in groups.items():
        if len(errs) == 1:
            lines.append(_format_one(where, *errs[0]))
            continue
        wants = "; or ".join(dict.fromkeys(_lower(err["msg"]) for err, _ in errs))
        lines.append(f"{where}: {wants} (got {_show(errs[0][0].get('input'))})")
    return lines


def _follows_from_items(err: Any, errors: Sequence[Any]) -> bool:
    """A list too short "after validation" only because some of its items were refused: the
    items' own errors say what is wrong (``channels: [0]`` is not "at least 1 item, not 0")."""
    if err["type"] != "too_short" or "after validation" not in str(err["msg"]):
        return False
    loc = tuple(err["loc"])
    return any(len(o["loc"]) > len(loc) and tuple(o["loc"][: len(loc)]) == loc for o in errors)


def _lower(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def _format_one(where: str, err: Any, section: type[BaseModel] | None) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if where.endswith("uri") and isinstance(value, str):
        value = redact_uri(value)  # a password in a URI is not repeated
    if kind == "extra_forbidden":
        valid = sorted(section.model_fields) if section else []
        hint = did_you_mean(where.rsplit(".", 1)[-1][:_MAX_KEY], valid)
        return f"{where}: unknown key{hint}; valid keys here: {', '.join(valid)}"
    if kind == "union_tag_invalid":
        key = _union_key(ctx, where)
        word = _COMPONENT_WORD.get(where, key)
        tags = [t.strip(" '") for t in ctx.get("expected_tags", "").split(",")]
        names = sorted(t for t in tags if t != "class_path")
        hint = did_you_mean(str(ctx.get("tag")), names)
        return f"{where}.{key}: unknown {word} {ctx.get('tag')!r}{hint}; valid: {', '.join(names)}" + (
            " (or class_path: package.module.Class)" if "class_path" in tags else ""
        )
    if kind == "union_tag_not_found":
        if not isinstance(value, dict):
            return f"{where}: expected a mapping of keys to values (got {_show(value)})"
        if _union_key(ctx, where) == "type":  # a search parameter
            return f"{where}: give a 'type': float, int or categorical"
        word = _COMPONENT_WORD.get(where, where)
        if where == "task":
            return f"{where}: give a 'kind' saying which {word} to use"
        return f"{where}: give a 'name' (or a 'class_path') saying which {word} to use"
    if kind == "literal_error":
        choices = [c.strip(" '") for c in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return f"{where}: {_show(value)} is not valid{hint}; choose one of: {', '.join(choices)}"
    if kind == "missing":
        return f"{where}: required, but missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{where}: expected a mapping of keys to values (got {_show(value)})"
    if where == "top level":  # a check across sections: its message names the fields
        return str(err["msg"]).removeprefix("Value error, ")
    if isinstance(value, dict):  # a check across a whole section: the message says it all
        return f"{where}: {_lower(err['msg'])}"
    return f"{where}: {_lower(err['msg'])} (got {_show(value)})"


def _union_key(ctx: dict[str, Any], where: str) -> str:
    """The key that chose the member of a union: ``'type'`` or ``by_type()`` (component_union)."""
    found = re.fullmatch(r"'(\w+)'|by_(\w+)\(\)", str(ctx.get("discriminator", "")))
    if found:
        return found.group(1) or found.group(2)
    return "kind" if where == "task" else "name"


#: fields whose refused value is not echoed: a webhook URL written where its variable's name goes
_SECRET_KEYS = frozenset({"webhook_env"})
_NOT_SHOWN = "<not shown: it may be a secret>"


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _walk(loc: Sequence[int | str], root: type[BaseModel]) -> tuple[list[str], type[BaseModel] | None]:
    """Drop union tags from ``loc``; return it with the section class holding its last key."""
    parts: list[str] = []
    section: type[BaseModel] | None = root
    parent: type[BaseModel] | None = None
    rest = [str(p) for p in loc]
    while rest:
        key = rest.pop(0)
        parts.append(key)
        parent = section
        field = section.model_fields.get(key) if section else None
        annotation = field.annotation if field else None
        if typing.get_origin(annotation) is dict and rest:  # a mapping field: its key is part of loc
            parts.append(rest.pop(0))
            annotation = typing.get_args(annotation)[1]
        members = _members(annotation) if annotation is not None else {}
        if len(members) > 1 and rest and rest[0] in members:
            section = members[rest.pop(0)]
        else:
            unique = set(members.values())
            section = unique.pop() if len(unique) == 1 else None
        if section is None:  # a leaf value: keep list indexes, drop pydantic's union labels
            parts += [p for p in rest if p.isdigit()]
            break
    return parts, parent


def _members(annotation: Any) -> dict[str, type[BaseModel]]:
    """The pydantic models an annotation can hold, keyed by their union tag (or class name)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        found = _members(base)
        field_tag = next(
            (m.discriminator for m in meta if isinstance(getattr(m, "discriminator", None), str)), None
        )
        if field_tag is not None:  # Field(discriminator="type"): members keyed by their Literal
            return {spec_tag(cls, field_tag): cls for cls in found.values() if field_tag in cls.model_fields}
        tag = next((m.tag for m in meta if isinstance(m, Tag)), None)
        if tag is not None and len(found) == 1:
            return {tag: next(iter(found.values()))}
        return found
    if origin in (typing.Union, types.UnionType):
        out: dict[str, type[BaseModel]] = {}
        for arg in typing.get_args(annotation):
            out.update(_members(arg))
        return out
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation.__name__: annotation}
    return {}


# --------------------------------------------------------------------------- output
def dump_experiment(exp: Experiment) -> str:
    """The resolved experiment as YAML, loadable again by :func:`load_experiment`."""
    import yaml

    return yaml.safe_dump(exp.to_dict(), sort_keys=False, default_flow_style=None)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as ``{"dotted.key": "value"}``; lists and numbers written as YAML/JSON."""
    out: dict[str, str] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value if isinstance(value, str) else json.dumps(value)
    return out
