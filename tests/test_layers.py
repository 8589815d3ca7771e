"""Guards of the package's shape (STYLE.md, "Layout and dependency direction", items 1, 7
and 12): what ``import flowdsl`` pulls in, plans that do not change with the hash seed, and
imports that point downward only."""

from __future__ import annotations

import ast
import graphlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flowdsl

PACKAGE = Path(flowdsl.__file__).resolve().parent


def python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, **env},
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


# == what `import flowdsl` imports ===========================================================
#: Optional, heavy or CLI-only parts: imported lazily, never by `import flowdsl`.
NOT_AT_IMPORT = ("sqlite3", "dask", "distributed", "rich", "click", "tqdm", "hamilton",
                 "pytest", "hypothesis", "flowdsl.store", "flowdsl.cli", "flowdsl.executors.dask",
                 "numpy", "pandas", "pyarrow", "pydantic")


def test_import_flowdsl_stays_cheap() -> None:
    out = python("""
        import sys
        import flowdsl
        print("\\n".join(sorted(sys.modules)))
    """)
    loaded = set(out.split())
    assert "flowdsl" in loaded
    offending = sorted(
        name for name in loaded
        if any(name == heavy or name.startswith(heavy + ".") for heavy in NOT_AT_IMPORT)
    )
    assert offending == [], f"`import flowdsl` imports {offending}: import them lazily"


#: The run side loads on the first run: declaring and compiling a flow never need it.
RUN_SIDE = ("flowdsl.running.runtime", "flowdsl.running.events", "flowdsl.executors",
            "flowdsl.observers", "flowdsl.starting")


def test_import_flowdsl_leaves_the_run_side_to_the_first_run() -> None:
    out = python("""
        import json, sys
        import flowdsl
        before = sorted(sys.modules)
        flow = flowdsl.Flow("first")
        flow.task(id="one")(lambda: 1)
        flow.compile()
        compiled = sorted(sys.modules)
        result = flow.run().results["one"]
        print(json.dumps([result, before, compiled, sorted(sys.modules)]))
    """)
    result, before, compiled, after = json.loads(out)
    assert result == 1
    for loaded in (before, compiled):
        assert [m for m in loaded if m.startswith((*RUN_SIDE, "flowdsl.measure"))] == []
    assert set(RUN_SIDE) <= set(after)


def test_every_public_name_resolves_to_its_defining_module() -> None:
    out = python("""
        import flowdsl
        from flowdsl.running.context import TaskContext
        from flowdsl.running.events import TaskFinished
        from flowdsl.executors import SequentialExecutor
        assert flowdsl.TaskContext is TaskContext and flowdsl.TaskFinished is TaskFinished
        assert flowdsl.SequentialExecutor is SequentialExecutor
        missing = [name for name in flowdsl.__all__ if getattr(flowdsl, name, None) is None]
        print(missing, set(flowdsl.__all__) <= set(dir(flowdsl)))
        try:
            flowdsl.NoSuchName
        except AttributeError as exc:
            print(exc)
    """)
    assert out.splitlines() == ["[] True", "module 'flowdsl' has no attribute 'NoSuchName'"]


# == plans do not depend on the hash seed ====================================================
PLAN_SCRIPT = """
    import random
    from flowdsl import Flow, Priority

    rng = random.Random(2024)
    flow = Flow("seeded")
    ids = [f"task_{rng.randrange(10**6):06d}_{i}" for i in range(300)]
    for i, task_id in enumerate(ids):
        deps = frozenset(rng.sample(ids[:i], k=min(i, rng.randrange(4))))  # a set: hash order
        keys = list(dict.fromkeys(f"key_{rng.randrange(50)}" for _ in range(rng.randrange(3))))

        def handler():
            return None

        flow.task(id=task_id, depends_on=deps, requires=keys,
                  priority=rng.choice([Priority.HIGH, Priority.NORMAL]))(handler)
    plan = flow.compile()
    print(",".join(plan.order))
    print(",".join(plan.inputs))
"""


@pytest.mark.slow
def test_plan_order_does_not_depend_on_the_hash_seed() -> None:
    outputs = {seed: python(PLAN_SCRIPT, PYTHONHASHSEED=seed) for seed in ("0", "12345", "987")}
    assert len(outputs["0"].splitlines()[0].split(",")) == 300
    assert outputs["0"] == outputs["12345"] == outputs["987"]


# == imports point downward only =============================================================
# The picture, bottom to top (README, "Layout"):
#   errors, status, version  <-  declaring.caching  <-  declaring.spec  <-  declaring.retry,
#   running.context,
#   running.strategies, running.metrics  <-  declaring.dsl, running.result  <-  compiling.plan,
#   compiling.binding  <-  compiling.compiler, running.events, running.journal,
#   running.attempts, running.gate, running.fields, store.fingerprint  <-  running.caching,
#   running.retrying,
#   running.mapping
#   <-  running.runtime  <-  executors/*, observers/*,
#   store/*  <-  flow, measure  <-  __init__, cli  <-  __main__
# A module may import only modules of a strictly lower level (siblings inside one sub-package
# share a level). The run side reads one way: `running.runtime` (what happens to a task)
# imports no executor; the executors (when and where) and their drivers sit above it.
# `running.journal` is the protocol the store implements.
LEVELS: dict[str, float] = {
    "errors": 0, "status": 0, "version": 0, "declaring": 1, "compiling": 3, "running": 2,
    "declaring.caching": 0.5, "declaring.spec": 1, "declaring.hooks": 1,
    "declaring.retry": 2, "declaring.types": 2, "running.records": 2, "running.context": 2,
    "running.strategies": 2,
    "running.metrics": 2,
    "declaring.dsl": 2.5, "running.result": 2.5,
    "compiling.plan": 3, "compiling.binding": 3, "compiling.producers": 3, "compiling.include": 3,
    "compiling.compiler": 4, "compiling.targets": 4, "running.events": 4, "running.attempts": 4,
    "running.journal": 4, "running.gate": 4, "store.fingerprint": 4, "running.fields": 4,
    "running.caching": 4.5, "running.retrying": 4.5, "running.mapping": 4.5, "running.settling": 4.7,
    "running.runtime": 5,
    "calling": 6.5, "starting": 6.7, "flow": 7, "measure": 7,
    "__init__": 8, "__main__": 9,
}
#: Whole sub-packages, by prefix (new executors, observers and the run store land here).
#: `report` renders plain data (its run and store types are imported for typing only), so the
#: result and the store, above it, may call it lazily.
PACKAGE_LEVELS: dict[str, float] = {"executors": 6, "observers": 6, "store": 6, "cli": 8.5,
                                    "report": 2}


def module_names() -> list[str]:
    """Every module of the package, dotted and relative to it (``executors.base``)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()  # a sub-package is named by its directory
        names.append(".".join(parts))
    return names


def level(module: str) -> float:
    if module in LEVELS:
        return LEVELS[module]
    top = module.split(".")[0]
    if top in PACKAGE_LEVELS:
        return PACKAGE_LEVELS[top]
    raise KeyError(module)


def _is_package(module: str) -> bool:
    return module == "__init__" or (PACKAGE / module.replace(".", "/") / "__init__.py").exists()


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True inside ``if TYPE_CHECKING:`` (type-only imports create no runtime dependency)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
            if name == "TYPE_CHECKING":
                return True
    return False


def packages_of(module: str) -> list[str]:
    """The sub-packages whose ``__init__`` runs before ``module`` (``executors.base`` ->
    ``["executors"]``), outermost first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if _is_package(".".join(parts[:i]))]


def runs_on_import(module: str) -> set[str]:
    """What importing ``module``'s imports executes: each imported module, plus the
    ``__init__`` of every package it sits in that ``module`` is not already inside (importing
    ``flowdsl.executors.base`` from outside runs ``flowdsl/executors/__init__.py`` first)."""
    own = set(packages_of(module)) | ({module} if _is_package(module) else set())
    found = set()
    for target in direct_imports(module):
        found.add(target)
        found.update(p for p in packages_of(target) if p not in own)
    found.discard(module)
    return found


def flowdsl_imports(module: str) -> set[str]:
    """The modules of flowdsl that importing ``module`` runs: its own imports, anywhere in
    its body (lazy ones too), and the package ``__init__`` modules they pass through."""
    return runs_on_import(module)


def direct_imports(module: str) -> set[str]:
    """The modules of flowdsl that ``module`` imports, anywhere in its body (lazy ones too)."""
    if module == "__init__":
        path, package = PACKAGE / "__init__.py", []
    elif _is_package(module):
        path, package = PACKAGE / module.replace(".", "/") / "__init__.py", module.split(".")
    else:
        path, package = PACKAGE / (module.replace(".", "/") + ".py"), module.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    known = set(module_names())
    found: set[str] = set()

    def add(dotted: str) -> None:
        # `flowdsl.executors.base.Executor` -> the longest prefix that is a module
        parts = dotted.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        found.add(".".join(parts) if parts else "__init__")

    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "flowdsl" or alias.name.startswith("flowdsl."):
                    add(alias.name[len("flowdsl."):] if "." in alias.name else "")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.level - 1 > len(package):
                    raise AssertionError(f"{module}: relative import beyond the package")
            elif node.module == "flowdsl" or (node.module or "").startswith("flowdsl."):
                base = []
                node_module = node.module[len("flowdsl"):].lstrip(".")
                target = node_module.split(".") if node_module else []
                for alias in node.names:
                    add(".".join([*target, alias.name]))
                continue
            else:
                continue
            target = [*base, *(node.module.split(".") if node.module else [])]
            for alias in node.names:  # `from . import x` may name a module
                add(".".join([*target, alias.name]))
    found.discard(module)
    return found


MODULES = module_names()


def test_every_module_has_a_place_in_the_picture() -> None:
    unplaced = []
    for module in MODULES:
        try:
            level(module)
        except KeyError:
            unplaced.append(module)
    assert unplaced == [], f"place {unplaced} in LEVELS (tests/test_layers.py) per STYLE.md"


def test_the_import_parser_sees_known_edges() -> None:
    # guards the guard: a parser that found nothing would pass every layering test
    assert "compiling.compiler" in flowdsl_imports("flow")
    assert {"errors", "declaring.spec"} <= flowdsl_imports("compiling.compiler")
    assert "flow" in flowdsl_imports("__init__")
    assert "running.runtime" in flowdsl_imports("executors.sequential")
    assert "running.runtime" in flowdsl_imports("executors.base")


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_downward(module: str) -> None:
    here = level(module)
    upward = []
    for target in sorted(flowdsl_imports(module)):
        if module != "__init__" and _is_package(module) and target.startswith(module + "."):
            continue  # a sub-package's __init__ re-exports its own modules
        if ("." in module and target.split(".")[0] == module.split(".")[0]
                and level(target) == here):
            continue  # siblings inside one sub-package
        if level(target) >= here:
            upward.append(f"flowdsl.{target} (level {level(target)})")
    assert upward == [], (
        f"flowdsl.{module} (level {here}) imports {upward}: against STYLE.md's direction"
    )


def test_package_inits_are_followed() -> None:
    # importing flowdsl.executors.base from outside runs flowdsl/executors/__init__.py
    assert "executors" in flowdsl_imports("flow")
    assert packages_of("executors.base") == ["executors"]


def test_there_is_no_import_cycle() -> None:
    """Lazy imports included: importing any module first must work."""
    graph = {module: flowdsl_imports(module) - {"__init__"} for module in MODULES}
    for module in MODULES:  # a sub-package's __init__ importing its own modules is no cycle
        for package in packages_of(module):
            graph[module].discard(package)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_the_runtime_imports_no_executor() -> None:
    assert not {t for t in flowdsl_imports("running.runtime") if t.startswith("executors")}


@pytest.mark.parametrize("first", ["flowdsl.running.runtime", "flowdsl.executors.base",
                                   "flowdsl.store.journal", "flowdsl.store.opening",
                                   "flowdsl.store.sqlite",
                                   "flowdsl.running.attempts", "flowdsl.executors.dask"])
def test_any_module_can_be_imported_first(first: str) -> None:
    if first.endswith("dask"):
        pytest.importorskip("distributed")
    python(f"import {first}")


def test_star_import_is_cheap() -> None:
    out = python("""
        import sys
        from flowdsl import *
        print("\\n".join(sorted(sys.modules)))
        print(Flow, TaskContext)
    """)
    loaded = set(out.split())
    assert not {m for m in loaded if m.split(".")[0] in ("sqlite3", "dask", "distributed")}
    assert "flowdsl.store" not in loaded


@pytest.mark.parametrize(
    ("module", "never"),
    [
        ("running.runtime", {"flow", "compiling.compiler", "cli", "__init__"}),
        ("compiling.plan", {"compiling.compiler", "flow", "running.runtime", "__init__"}),
        ("compiling.compiler", {"running.runtime", "flow", "cli", "__init__"}),
        ("declaring.dsl", {"compiling.compiler", "running.runtime", "flow", "__init__"}),
    ],
)
def test_named_layer_rules(module: str, never: set[str]) -> None:
    imported = {t.split(".")[0] for t in flowdsl_imports(module)} | flowdsl_imports(module)
    assert imported.isdisjoint(never), f"flowdsl.{module} imports {sorted(imported & never)}"


def test_errors_imports_nothing_of_flowdsl() -> None:
    assert flowdsl_imports("errors") == set()


def test_spec_imports_only_errors_and_status() -> None:
    # and the `Cache` policy class, a leaf of plain data like them
    assert flowdsl_imports("declaring.spec") <= {"errors", "status", "declaring.caching"}


def test_no_module_below_the_facade_imports_it() -> None:
    importers = sorted(
        m for m in MODULES
        if m not in ("flow", "__init__", "cli") and not m.startswith("cli.")
        and ({"flow", "__init__"} & flowdsl_imports(m))
    )
    assert importers == []
