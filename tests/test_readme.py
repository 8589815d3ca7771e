"""The README tells the truth: its programs run, its links resolve, its CLI and examples exist.

Convention for README.md's ```python blocks (each runs in a fresh interpreter in a temp dir):
- a block runs as written;
- an HTML comment right before the fence (no blank line between) changes that:
  ``<!-- not run: REASON -->`` skips it (keep these rare, and say why);
  ``<!-- setup:`` ... ``-->`` holds Python run before the block (the definitions a fragment
  assumes, hidden from readers); a line ``#: "LITERAL" = FIXTURE`` in it replaces LITERAL in the
  block with that fixture's value (``pg_dsn``: a real PostgreSQL; ``dask_address``: the
  scheduler of the session's LocalCluster), so the block runs against a real server;
- an HTML comment right after the closing fence, ``<!-- then:`` ... ``-->``, holds Python run
  after the block: assertions that what the prose around it says is what happened.
A ``>>>`` session is a ```pycon block (setup as above): its statements run and print its output
lines, any number standing for any number.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
SUBSTITUTION = re.compile(r'^#: "(.+)" = (\w+)\s*$')


@attrs.frozen
class Block:
    """A ```python block of the README and what its directive says."""

    line: int  # of its first code line, 1-based
    code: str
    setup: str = ""
    then: str = ""
    substitutions: tuple[tuple[str, str], ...] = ()
    not_run: str | None = None

    @property
    def fixtures(self) -> set[str]:
        return {fixture for _, fixture in self.substitutions}


def _directive(lines: list[str], fence: int) -> tuple[str, str | None]:
    """The setup code and the not-run reason of the comment right before line `fence`."""
    end = fence - 1
    if end < 0 or not lines[end].strip().endswith("-->"):
        return "", None
    start = end
    while "<!--" not in lines[start]:
        start -= 1
    comment = "\n".join(lines[start:end + 1]).strip()
    body = comment.removeprefix("<!--").removesuffix("-->")
    if body.strip().startswith("not run:"):
        return "", body.strip().removeprefix("not run:").strip()
    if body.lstrip().startswith("setup:"):
        return body.lstrip().removeprefix("setup:").strip("\n"), None
    return "", None


def _then(lines: list[str], after: int) -> str:
    """The code of a ``<!-- then:`` comment starting at line `after` (0-based), or ""."""
    if after >= len(lines) or not lines[after].strip().startswith("<!-- then:"):
        return ""
    end = after
    while not lines[end].strip().endswith("-->"):
        end += 1
    body = "\n".join(lines[after:end + 1]).strip().removeprefix("<!-- then:")
    return textwrap.dedent(body.removesuffix("-->").strip("\n"))


def fenced(text: str) -> list[tuple[int, str, str]]:
    """Every fenced block: (line of its first code line, language, dedented code)."""
    lines = text.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match:
            indent, language = match.group(1), match.group(2)
            end = index + 1
            while not FENCE.match(lines[end]):
                end += 1
            code = "\n".join(line[len(indent):] for line in lines[index + 1:end])
            blocks.append((index + 2, language, code))
            index = end
        index += 1
    return blocks


def python_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks = []
    for line, language, code in fenced("\n".join(lines)):
        if language != "python":
            continue
        setup, not_run = _directive(lines, line - 2)
        setup = textwrap.dedent(setup)
        then = _then(lines, line + code.count("\n") + 1)
        substitutions = tuple(
            (match.group(1), match.group(2))
            for match in map(SUBSTITUTION.match, setup.splitlines()) if match)
        blocks.append(Block(line, code, setup, then, substitutions, not_run))
    return blocks


def _case(block: Block) -> Any:
    marks = [pytest.mark.slow]
    if "dask_address" in block.fixtures or "DaskExecutor" in block.code:
        marks.append(pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                        reason="needs the dask extra"))
    return pytest.param(block, marks=marks, id=f"README.md:{block.line}")


@pytest.fixture
def dask_address(dask_client: Any) -> str:
    return str(dask_client.scheduler.address)


@pytest.mark.parametrize("block", [_case(block) for block in python_blocks()])
def test_readme_python_block_runs(block: Block, tmp_path: Path,
                                  request: pytest.FixtureRequest) -> None:
    if block.not_run is not None:
        pytest.skip(f"README.md:{block.line} is marked not run: {block.not_run}")
    code = block.code
    for literal, fixture in block.substitutions:
        assert literal in code, f"README.md:{block.line}: {literal!r} is not in the block"
        code = code.replace(literal, str(request.getfixturevalue(fixture)))
    program = tmp_path / "readme_block.py"
    # the setup first, the block after it, each line at its README line for tracebacks
    setup = block.setup.splitlines()
    padding = [""] * max(0, block.line - 1 - len(setup))
    program.write_text("\n".join([*setup, *padding, code, block.then]) + "\n",
                       encoding="utf-8")
    completed = subprocess.run([sys.executable, str(program)], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)

    assert completed.returncode == 0, (
        f"the python block at README.md:{block.line} failed (its lines are numbered as in the "
        f"README, the setup above them):\n{completed.stderr[-3000:]}")


def test_the_readme_has_runnable_blocks_and_few_exceptions() -> None:
    blocks = python_blocks()
    skipped = [block for block in blocks if block.not_run is not None]

    assert len(blocks) >= 10
    assert len(skipped) <= 2, [f"README.md:{block.line}: {block.not_run}" for block in skipped]
    assert all(block.not_run for block in skipped), "a not-run block must say why"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _prose(text: str) -> str:
    """The README without its fenced blocks."""
    out, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            out.append(line)
    return "\n".join(out)


def test_every_contents_link_resolves_to_a_heading() -> None:
    prose = _prose(README.read_text(encoding="utf-8"))
    anchors = {_anchor(match) for match in re.findall(r"^#+ (.+)$", prose, re.MULTILINE)}
    links = re.findall(r"\]\(#([^)]+)\)", prose)

    assert links
    assert [link for link in links if link not in anchors] == [], sorted(anchors)


def test_every_heading_is_in_the_contents() -> None:
    prose = _prose(README.read_text(encoding="utf-8"))
    sections = {_anchor(match) for match in re.findall(r"^## (.+)$", prose, re.MULTILINE)}
    contents = prose.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"\]\(#([^)]+)\)", contents))

    assert sorted(sections - listed - {"contents"}) == []


COMMAND = re.compile(r"flowdsl (run|plan|graph|runs|show|bench|report)\b")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b")
#: Flags the README gives to other programs than ``flowdsl``: the program that takes them.
OTHER_PROGRAMS = {"--strict": "mypy", "--trials": "fuzz", "--seed": "fuzz", "--signals": "fuzz",
                  "--keep": "fuzz", "-e": "pip", "-m": "python", "-q": "pytest", "-s": "pytest",
                  "-c": "python", "--sizes": "compare_peers"}


def _code_spans(text: str) -> list[str]:
    """Inline code spans of the prose, and each line of non-Python fenced blocks (a line
    that starts with spaces continues the previous one, as in a usage synopsis)."""
    spans = re.findall(r"`([^`\n]+)`", _prose(text))
    for _, language, code in fenced(text):
        if language in ("", "bash", "console"):
            for line in code.splitlines():
                if line.startswith(" ") and spans:
                    spans[-1] += " " + line.strip()
                else:
                    spans.append(line)
    return spans


def _help(*args: str) -> str:
    completed = subprocess.run([sys.executable, *args, "--help"], capture_output=True,
                               text=True, timeout=60, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.mark.slow
def test_every_cli_command_and_flag_the_readme_names_exists() -> None:
    spans = _code_spans(README.read_text(encoding="utf-8"))
    claimed: dict[str, set[str]] = {}
    loose: set[str] = set()
    for span in spans:
        pieces = COMMAND.split(span)  # [before, command, its words, command, its words, ...]
        loose |= set(FLAG.findall(pieces[0]))
        for command, words in zip(pieces[1::2], pieces[2::2], strict=True):
            claimed.setdefault(command, set()).update(FLAG.findall(words))
    helps = {command: _help("-m", "flowdsl", command) for command in COMMAND.pattern.split(
        "(")[1].split(")")[0].split("|")}
    listed = _help("-m", "flowdsl")

    assert set(claimed) == set(helps), "a subcommand the README never names, or one it misses"
    for command in helps:
        assert re.search(rf"^\s+{command}\s", listed, re.MULTILINE), command
    wrong = {command: sorted(flag for flag in flags
                             if not re.search(rf"(?<![\w-]){flag}\b", helps[command]))
             for command, flags in claimed.items()}
    assert {command: flags for command, flags in wrong.items() if flags} == {}
    every_flag = "\n".join(helps.values())
    unknown = sorted(flag for flag in loose if flag not in OTHER_PROGRAMS
                     and not re.search(rf"(?<![\w-]){flag}\b", every_flag))
    assert unknown == []
    fuzz = _help("-m", "tests.fuzz_crash")
    assert [flag for flag, program in OTHER_PROGRAMS.items()
            if program == "fuzz" and flag not in fuzz] == []
    peers = _help(str(ROOT / "benchmarks" / "compare_peers.py"))
    assert [flag for flag, program in OTHER_PROGRAMS.items()
            if program == "compare_peers" and flag not in peers] == []


EXAMPLE = re.compile(r"^\| `(?:python|flowdsl run) (examples/[\w.]+\.py)` \|", re.MULTILINE)


def test_every_example_is_listed_exists_and_is_tested() -> None:
    section = README.read_text(encoding="utf-8").split("\n## Examples\n", 1)[1].split("\n## ")[0]
    listed = set(EXAMPLE.findall(section))
    on_disk = {f"examples/{path.name}" for path in (ROOT / "examples").glob("*.py")}
    tests = (ROOT / "tests" / "test_examples.py").read_text(encoding="utf-8")

    assert listed == on_disk, "the Examples table and examples/ differ"
    # test_examples.py runs every script of examples/; each must also have its key lines
    # checked there (or by a test of its own, named in test_examples.py)
    assert [name for name in sorted(listed) if Path(name).name not in tests] == []


@pytest.mark.slow
def test_every_public_name_the_readme_uses_exists() -> None:
    """Classes, methods and keywords the README names are there, spelt as it spells them."""
    import asyncio
    import builtins
    import concurrent.futures
    import inspect

    import flowdsl
    import flowdsl.observers
    import flowdsl.store
    from flowdsl.store import SqliteStore

    text = README.read_text(encoding="utf-8")
    classes = set(re.findall(r"`(?:[\w.]+\.)?([A-Z]\w*(?:Error|Strategy|Executor|Store|Observer|"
                             r"Context|Result|Spec|Plan|Priority|Status))\b", text))
    homes = (flowdsl, flowdsl.observers, flowdsl.store, builtins, asyncio, concurrent.futures)
    assert sorted(name for name in classes
                  if not any(hasattr(home, name) for home in homes)) == []

    members = {"flow": flowdsl.Flow, "result": flowdsl.RunResult, "store": SqliteStore}
    missing = sorted(f"{owner}.{name}" for owner, name in re.findall(
        r"\b(flow|result|store)\.([a-z_]+)\b", _prose(text) + "\n".join(
            code for _, language, code in fenced(text) if language == "python"))
        if not hasattr(members[owner], name) and (owner, name) != ("flow", "name"))
    assert missing == []

    table = text.split("\n## Declaring tasks\n", 1)[1].split("\n\n", 2)[1]
    keywords = set(re.findall(r"`(\w+)`", "\n".join(
        row.split("|")[1] for row in table.splitlines()[2:])))
    declared = set(inspect.signature(flowdsl.Flow.task).parameters)
    assert len(keywords) > 10
    assert sorted(keywords - declared) == []
    run_keywords = set(re.findall(r"flow\.run\([^)]*?\b(\w+)=", text))
    assert run_keywords
    assert sorted(run_keywords - set(inspect.signature(flowdsl.Flow.run).parameters)) == []


@pytest.mark.slow
def test_the_cli_synopsis_lists_every_option_of_every_subcommand() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## The flowdsl command\n", 1)[1]
    synopsis = next(code for _, language, code in fenced(section) if language == "")
    claimed: dict[str, set[str]] = {}
    for span in _code_spans("```\n" + synopsis + "\n```\n"):
        pieces = COMMAND.split(span)
        for command, words in zip(pieces[1::2], pieces[2::2], strict=True):
            claimed.setdefault(command, set()).update(re.findall(r"--[a-z][a-z-]*", words))
    offered = {command: set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", _help(
        "-m", "flowdsl", command))) - {"--help"} for command in claimed}

    assert set(claimed) >= {"run", "plan", "graph", "runs", "show", "report", "bench"}
    assert {command: sorted(flags - claimed[command]) for command, flags in offered.items()
            if flags - claimed[command]} == {}


def test_the_layout_table_names_every_module_of_every_folder() -> None:
    section = README.read_text(encoding="utf-8").split("\n## Layout\n", 1)[1].split("\n## ")[0]
    rows = {row.split("|")[1].strip().strip("`").rstrip("/"): row.split("|")[3]
            for row in section.splitlines() if row.startswith("| `")}
    package = ROOT / "flowdsl"
    folders = {path.parent.name for path in package.glob("*/__init__.py")}

    assert set(rows) == folders
    unnamed = sorted(f"{folder}/{path.stem}" for folder in folders
                     for path in (package / folder).glob("*.py")
                     if path.stem != "__init__" and f"`{path.stem}`" not in rows[folder])
    assert unnamed == []


@pytest.mark.slow
def test_the_opening_command_runs_after_its_install(tmp_path: Path) -> None:
    """The README's first command, less its `pip install` (done: flowdsl is importable), runs
    in a shell with this interpreter's bin directory first on PATH, keeping its store aside."""
    import os

    first = next(code for _, language, code in fenced(README.read_text(encoding="utf-8"))
                 if language == "bash")
    install = "python -m pip install -e . && "
    assert first.startswith(install), first
    command = first.removeprefix(install).strip()
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "FLOWDSL_STORE": str(tmp_path / "runs.db")}

    completed = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=300)

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "context accuracy" in completed.stdout  # practice_25_tasks.py
    assert "of flow 'data_processing' succeeded" in completed.stdout  # flowdsl run
    assert completed.stdout.rstrip().splitlines()[-1].split()[1] == "data_processing"  # runs


def _number_pattern(line: str) -> str:
    """A regex matching `line` with any number in place of each of its numbers."""
    parts = re.split(r"\d[\d,]*(?:\.\d+)?", line)
    return r"\d[\d,]*(?:\.\d+)?".join(re.escape(part) for part in parts)


@pytest.mark.slow
def test_each_python_session_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """A ```pycon block's statements, run after its setup, print its output lines (numbers
    may differ: they are measurements)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    sessions = [(line, code) for line, language, code in fenced("\n".join(lines))
                if language == "pycon"]
    assert sessions
    for line, code in sessions:
        setup, _ = _directive(lines, line - 2)
        statements = [text[4:] for text in code.splitlines() if text.startswith(">>> ")]
        expected = [text for text in code.splitlines() if not text.startswith((">>> ", "... "))]
        program = tmp_path / "session.py"
        program.write_text(textwrap.dedent(setup) + "\n" + "\n".join(statements) + "\n",
                           encoding="utf-8")
        completed = subprocess.run([sys.executable, str(program)], cwd=tmp_path,
                                   capture_output=True, text=True, timeout=120)

        assert completed.returncode == 0, f"README.md:{line}: {completed.stderr[-3000:]}"
        printed = completed.stdout.splitlines()
        assert len(printed) == len(expected), (line, printed)
        for shown, got in zip(expected, printed, strict=True):
            assert re.fullmatch(_number_pattern(shown), got), f"README.md:{line}: {got!r}"
