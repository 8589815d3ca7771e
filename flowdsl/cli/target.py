"""What the commands take from the command line: a TARGET naming a flow, and its inputs.

TARGET is ``path/to/file.py[:variable]`` or ``package.module[:variable]``; the variable
may be left out when the module holds exactly one `Flow`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

from ..errors import FlowError, did_you_mean
from ..flow import Flow

__all__ = ["UsageProblem", "load_flow", "read_inputs", "split_target"]


class UsageProblem(Exception):
    """A problem with what the user typed (exit code 2): a one-line message."""


def split_target(target: str) -> tuple[str, str | None]:
    """``"a/b.py:flow"`` -> ``("a/b.py", "flow")``; ``"pkg.mod"`` -> ``("pkg.mod", None)``."""
    where, sep, variable = target.rpartition(":")
    if sep and where and variable.isidentifier():
        return where, variable
    return target, None


def load_flow(target: str) -> tuple[Flow, str]:
    """The `Flow` that TARGET names, and the TARGET as it can be typed again (with its
    variable)."""
    where, variable = split_target(target)
    if not where:
        raise UsageProblem("empty TARGET: give path/to/file.py[:variable] or package.module[:variable]")
    module = _import(where)
    if variable is not None:
        if not hasattr(module, variable):
            names = [name for name in vars(module) if not name.startswith("_")]
            raise UsageProblem(f"{where} has no variable {variable!r}"
                               + did_you_mean(variable, names))
        found = getattr(module, variable)
        if not isinstance(found, Flow):
            raise UsageProblem(f"{where}:{variable} is a {type(found).__name__}, not a flowdsl Flow")
        return found, f"{where}:{variable}"
    flows = _flows_in(module)
    if not flows:
        raise UsageProblem(f"{where} holds no flowdsl Flow")
    if len(flows) > 1:
        listed = ", ".join(f"{name} ({flow.name!r})" for name, flow in flows)
        raise UsageProblem(f"{where} holds several flows: {listed}; "
                           f"pick one with {where}:{flows[0][0]}")
    name, flow = flows[0]
    return flow, f"{where}:{name}"


def _flows_in(module: ModuleType) -> list[tuple[str, Flow]]:
    """Module-level Flow variables, one name per Flow object (the first it is bound to)."""
    seen: set[int] = set()
    flows = []
    for name, value in vars(module).items():
        if isinstance(value, Flow) and id(value) not in seen and not name.startswith("_"):
            seen.add(id(value))
            flows.append((name, value))
    return flows


def _is_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where or os.path.isfile(where)


def _import(where: str) -> ModuleType:
    """Import a module by file path (its folder goes first on sys.path, as for
    ``python file.py``) or by dotted name (the current directory goes first, as for
    ``python -m``)."""
    try:
        if _is_path(where):
            return _import_file(Path(where))
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        try:
            return importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name and (where == exc.name or where.startswith(exc.name + ".")):
                raise UsageProblem(f"cannot find module {where!r} (TARGET is "
                                   "path/to/file.py[:variable] or package.module[:variable])") from exc
            raise
    except (UsageProblem, FlowError):
        raise
    except SyntaxError as exc:
        raise UsageProblem(f"cannot import {where}: SyntaxError: {exc.msg} "
                           f"({exc.filename}, line {exc.lineno})") from exc
    except ImportError as exc:
        hint = _relative_import_hint(where, exc)
        raise UsageProblem(f"cannot import {where}: {type(exc).__name__}: {exc}{hint}") from exc
    except Exception as exc:
        raise UsageProblem(f"cannot import {where}: {type(exc).__name__}: {exc}") from exc


def _relative_import_hint(where: str, exc: ImportError) -> str:
    """A file that uses relative imports must be imported as part of its package."""
    if not _is_path(where) or "relative import" not in str(exc):
        return ""
    path = Path(where).resolve()
    try:
        dotted = ".".join(path.with_suffix("").relative_to(Path.cwd()).parts)
    except ValueError:
        dotted = ""
    example = dotted if dotted.replace(".", "").replace("_", "a").isalnum() else "package.module"
    return (f"; a file that uses relative imports is part of a package: name it as a module, "
            f"e.g. `flowdsl run {example}` from the folder that holds the package "
            "(as for python -m)")


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise UsageProblem(f"no such file: {path}")
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # Named after the file (as `import stem` from its folder would name it), so that values
    # pickled from its classes load again in a later process; a unique name on a clash.
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else (
        f"flowdsl_target_{abs(hash(str(path))):x}")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageProblem(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def read_inputs(input_file: str | None, settings: Iterable[str]) -> dict[str, Any]:
    """The run's initial mapping: the JSON object in ``input_file``, then each
    ``KEY=VALUE`` (VALUE parsed as JSON when it is valid JSON, else taken as a string)."""
    initial: dict[str, Any] = {}
    if input_file is not None:
        try:
            with open(input_file, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except OSError as exc:
            raise UsageProblem(f"cannot read --input {input_file}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise UsageProblem(f"--input {input_file} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, Mapping):
            raise UsageProblem(f"--input {input_file} must hold a JSON object, "
                               f"not a {type(loaded).__name__}")
        initial.update(loaded)
    for setting in settings:
        key, sep, text = setting.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageProblem(f"bad --set {setting!r}: expected KEY=VALUE")
        initial[key] = parse_value(text)
    return initial


def parse_value(text: str) -> Any:
    """JSON when ``text`` is valid JSON (``3``, ``true``, ``[1, 2]``, ``"x"``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text
