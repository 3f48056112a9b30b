"""Reading an exercise folder: its exercise.toml, the solution regions in its code, its wrong fixtures.

A solution region is the code between two marker lines, in Python

    # BEGIN SOLUTION <task id>
    ...
    # END SOLUTION

and in C, C++ and CUDA

    // BEGIN SOLUTION <task id>
    // STUB: <code that keeps the file compiling, e.g. return 0;>   (optional)
    ...
    // END SOLUTION

The BEGIN line's indentation is the region's. release.py replaces regions by stubs; the
tests of the exercise machinery put the `wrong/<task>/<variant>` fixtures in their place.
"""

import dataclasses
import difflib
import platform
import re
import textwrap
import tomllib
from pathlib import Path

PYTHON_SUFFIXES = (".py",)
C_SUFFIXES = (".c", ".h", ".cu", ".cuh", ".cc", ".cpp", ".hpp")
SKIPPED_DIRS = {"wrong", "__pycache__", ".pytest_cache", "build"}

_MARKERS = {
    "python": (re.compile(r"^(\s*)# BEGIN SOLUTION (\S+)\s*$"), re.compile(r"^\s*# END SOLUTION\s*$")),
    "c": (re.compile(r"^(\s*)// BEGIN SOLUTION (\S+)\s*$"), re.compile(r"^\s*// END SOLUTION\s*$")),
}
_STUB = re.compile(r"^\s*// STUB: ?(.*)$")
_TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ExerciseError(ValueError):
    """An exercise folder that does not follow the format (the message names the file and line)."""


@dataclasses.dataclass(frozen=True)
class Task:
    id: str
    points: int
    timeout: float = 60
    description: str = "not implemented"


@dataclasses.dataclass(frozen=True)
class Region:
    """One solution region: lines [begin, end] of `path` (0-based, the marker lines included)."""

    path: Path  # relative to the exercise folder
    task: str
    begin: int  # index of the BEGIN line
    end: int  # index of the END line
    indent: str
    language: str  # "python" or "c"
    stub: str | None = None  # C only: the STUB line's code
    body_start: int = 0  # first line of the body (after BEGIN, and after STUB if any)

    def __str__(self):
        return f"{self.path}:{self.begin + 1} ({self.task})"


@dataclasses.dataclass
class Exercise:
    path: Path
    name: str
    title: str
    tasks: list
    machines: tuple = ()  # platform.machine() values it can be done on (AVX2 intrinsics: x86_64); () = any

    def runs_here(self):
        """Whether this machine can build and grade the exercise (see `machines` in exercise.toml)."""
        return not self.machines or platform.machine() in self.machines

    def task(self, task_id):
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise ExerciseError(f"{self.name}: no task {task_id!r} (tasks: {', '.join(t.id for t in self.tasks)})")

    @property
    def max_points(self):
        return sum(t.points for t in self.tasks)

    def code_files(self):
        """The files that may hold solution regions, relative to the exercise folder, sorted."""
        return sorted(
            p.relative_to(self.path)
            for p in self.path.rglob("*")
            if p.is_file()
            and language_of(p) is not None
            and not SKIPPED_DIRS.intersection(p.relative_to(self.path).parts[:-1])
        )

    def regions(self):
        """Every solution region of the exercise, checked against the task list."""
        found = []
        for relative in self.code_files():
            found += find_regions((self.path / relative).read_text(), relative)
        known = {t.id for t in self.tasks}
        for region in found:
            if region.task not in known:
                raise ExerciseError(f"{self.name}: {region} names task {region.task!r}, not in exercise.toml")
        return found

    def fixtures(self):
        """The wrong answers kept as fixtures: a list of (task id, path), sorted."""
        wrong = self.path / "wrong"
        if not wrong.is_dir():
            return []
        return sorted((p.parent.name, p) for p in wrong.glob("*/*") if p.is_file() and language_of(p) is not None)


def language_of(path):
    suffix = Path(path).suffix
    if suffix in PYTHON_SUFFIXES:
        return "python"
    if suffix in C_SUFFIXES:
        return "c"
    return None


def load_exercise(path):
    """Read `path/exercise.toml` into an Exercise; ExerciseError if it is missing or malformed."""
    path = Path(path).resolve()
    toml_path = path / "exercise.toml"
    if not toml_path.is_file():
        raise ExerciseError(f"{path}: no exercise.toml (is this an exercise folder?)")
    try:
        data = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ExerciseError(f"{toml_path}: {e}") from None
    for key in ("name", "title"):
        if not isinstance(data.get(key), str):
            raise ExerciseError(f'{toml_path}: expected a string {key} = "..."')
    tasks = []
    for entry in data.get("tasks", []):
        task_id = entry.get("id")
        if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
            raise ExerciseError(f"{toml_path}: a [[tasks]] id must be a name like add_backward, got {task_id!r}")
        points = entry.get("points")
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            raise ExerciseError(f"{toml_path}: task {task_id}: points must be a whole number >= 0, got {points!r}")
        timeout = entry.get("timeout", 60)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ExerciseError(f"{toml_path}: task {task_id}: timeout must be a positive number of seconds")
        description = entry.get("description") or "not implemented"
        tasks.append(Task(task_id, points, timeout, " ".join(str(description).split())))
    if not tasks:
        raise ExerciseError(f"{toml_path}: no [[tasks]]")
    if len({t.id for t in tasks}) != len(tasks):
        raise ExerciseError(f"{toml_path}: two tasks share an id")
    machines = data.get("machines", [])
    if not isinstance(machines, list) or not all(isinstance(m, str) for m in machines):
        raise ExerciseError(f'{toml_path}: machines must be a list of names like ["x86_64"], got {machines!r}')
    return Exercise(path, data["name"], data["title"], tasks, tuple(machines))


def find_exercises(root):
    """The exercise folders directly under root (those with an exercise.toml), sorted by name."""
    return sorted(p.parent for p in Path(root).glob("*/exercise.toml"))


def default_exercises_root():
    """The repository's exercises/ folder (beside the minidl package), or ./exercises."""
    beside = Path(__file__).resolve().parents[2] / "exercises"
    return beside if beside.is_dir() else Path("exercises")


def find_regions(text, path):
    """The solution regions in one file's text; ExerciseError for unbalanced or nested markers."""
    language = language_of(path)
    if language is None:
        return []
    begin_re, end_re = _MARKERS[language]
    lines = text.splitlines()
    regions, open_at = [], None
    for i, line in enumerate(lines):
        begin = begin_re.match(line)
        if begin:
            if open_at is not None:
                raise ExerciseError(f"{path}:{i + 1}: BEGIN SOLUTION inside the region opened on line {open_at + 1}")
            open_at, indent, task = i, begin.group(1), begin.group(2)
        elif end_re.match(line):
            if open_at is None:
                raise ExerciseError(f"{path}:{i + 1}: END SOLUTION without a BEGIN SOLUTION")
            stub, body_start = None, open_at + 1
            if language == "c" and body_start < i:
                match = _STUB.match(lines[body_start])
                if match:
                    stub, body_start = match.group(1).strip(), body_start + 1
            regions.append(Region(Path(path), task, open_at, i, indent, language, stub, body_start))
            open_at = None
    if open_at is not None:
        raise ExerciseError(f"{path}:{open_at + 1}: BEGIN SOLUTION without an END SOLUTION")
    return regions


def _join(lines, original):
    return "\n".join(lines) + ("\n" if original.endswith("\n") else "")


def region_body(text, region):
    """The code between a region's markers (without the STUB line)."""
    return "\n".join(text.splitlines()[region.body_start : region.end])


def replace_body(text, region, body):
    """`text` with the region's body replaced by `body` (the markers kept).

    The body is re-indented to the region's indentation, so a fixture may be written
    either at the indentation it has in the file or flush left.
    """
    lines = text.splitlines()
    new = textwrap.indent(textwrap.dedent(body.rstrip("\n")), region.indent, lambda line: line.strip() != "")
    return _join(lines[: region.body_start] + new.split("\n") + lines[region.end :], text)


def stub_lines(region, exercise_name, description):
    """What release puts in place of a region (the marker lines included)."""
    if region.language == "python":
        message = f"{exercise_name}.{region.task}: {description}".replace("\\", "\\\\").replace('"', '\\"')
        return [f'{region.indent}raise NotImplementedError("{message}")']
    lines = [f"{region.indent}// TODO {exercise_name}.{region.task}: {description}"]
    if region.stub:
        lines.append(f"{region.indent}{region.stub}")
    return lines


def strip_regions(text, regions, exercise_name, descriptions):
    """`text` with each region (markers included) replaced by its stub; regions from one file."""
    lines = text.splitlines()
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        lines[region.begin : region.end + 1] = stub_lines(region, exercise_name, descriptions[region.task])
    return _join(lines, text)


_FIXTURE_TARGET = re.compile(r"^\s*(?:#|//)\s*region:\s*(\S+)\s*$")
_PY_SCOPE = re.compile(r"^(\s*)(?:async\s+)?(?:def|class)\s+(\w+)")
_C_FUNCTION = re.compile(r"^[A-Za-z_][\w\s\*]*?\b(\w+)\s*\([^;]*$")


def region_scope(text, region):
    """Where a region sits: "Class.method" or "function" (Python), the enclosing function (C)."""
    lines = text.splitlines()[: region.begin]
    if region.language == "c":
        for line in reversed(lines):
            match = _C_FUNCTION.match(line)
            if match:
                return match.group(1)
        return ""
    names, indent = [], len(region.indent)
    for line in reversed(lines):
        match = _PY_SCOPE.match(line)
        if match and len(match.group(1)) < indent:
            names.append(match.group(2))
            indent = len(match.group(1))
    return ".".join(reversed(names))


def region_for_fixture(exercise, task_id, fixture_path, regions=None):
    """The region a wrong fixture replaces: the task's region in a file of the fixture's language.

    When the task has several, a first line `# region: Max.backward` (`// region: name` in C)
    names the enclosing function; without it, the region whose body the fixture resembles
    most is taken (a wrong answer is a small change of the right one).
    """
    regions = exercise.regions() if regions is None else regions
    language = language_of(fixture_path)
    candidates = [r for r in regions if r.task == task_id and r.language == language]
    if not candidates:
        raise ExerciseError(f"{fixture_path}: task {task_id!r} has no {language} solution region to replace")
    wrong = Path(fixture_path).read_text()
    first = next((line for line in wrong.splitlines() if line.strip()), "")
    target = _FIXTURE_TARGET.match(first)
    if target:
        name = target.group(1)
        named = [
            r
            for r in candidates
            if (scope := region_scope((exercise.path / r.path).read_text(), r)) == name or scope.endswith("." + name)
        ]
        if len(named) != 1:
            raise ExerciseError(f"{fixture_path}: 'region: {name}' matches {len(named)} regions of task {task_id}")
        return named[0]
    if len(candidates) == 1:
        return candidates[0]
    wrong = textwrap.dedent(wrong)

    def likeness(region):
        body = textwrap.dedent(region_body((exercise.path / region.path).read_text(), region))
        return difflib.SequenceMatcher(None, body, wrong).ratio()

    return max(candidates, key=likeness)
