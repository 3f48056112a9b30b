"""The course exercises and their tools: every exercise in exercises/ (found by glob) is checked.

- the graded tests pass on the solution (N/N through `minidl grade`, one process per task),
- the released student version scores 0 and no single test passes on a stub,
- every wrong-answer fixture (wrong/<task>/<variant>) fails its task (in rounds: one fixture per task per run),
- a half-done copy gets the partial score (so tasks are graded independently), a copy with an
  infinite loop loses that task on its timeout and keeps the others, a syntax error costs
  points but never the grader.

The checks of one exercise that need no isolation run all its tests in one pytest process
(grade(..., isolate=False)), which keeps this file quick.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minidl.exercises import grade as grading
from minidl.exercises import release, spec

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = spec.find_exercises(ROOT / "exercises")
EXERCISE_IDS = [p.name for p in EXERCISES]


def elsewhere(path):
    """Skip marks for an exercise written for other machines (exercise.toml's `machines`, e.g. AVX2)."""
    exercise = spec.load_exercise(path)
    reason = f"{exercise.name} is written for {', '.join(exercise.machines)}; this is {platform.machine()}"
    return [pytest.mark.skip(reason=reason)] if not exercise.runs_here() else []


EXERCISE_PARAMS = [pytest.param(p, id=p.name, marks=elsewhere(p)) for p in EXERCISES]


def minidl_command(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "minidl", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )


def copy_solution(exercise, dest):
    shutil.copytree(exercise.path, dest, ignore=shutil.ignore_patterns("wrong", "__pycache__", ".pytest_cache"))
    return dest


def stub_tasks(exercise, folder, task_ids):
    """Replace the regions of `task_ids` in the copy at `folder` by release's stubs."""
    descriptions = {t.id: t.description for t in exercise.tasks}
    regions = [r for r in exercise.regions() if r.task in task_ids]
    for relative in {r.path for r in regions}:
        path = folder / relative
        in_file = [r for r in regions if r.path == relative]
        path.write_text(spec.strip_regions(path.read_text(), in_file, exercise.name, descriptions))


def scores(result):
    return {t.id: t.passed for t in result.tasks}


@pytest.mark.parametrize("path", EXERCISE_PARAMS)
def test_exercise_is_well_formed(path):
    exercise = spec.load_exercise(path)
    assert exercise.name == path.name, "exercise.toml's name must be the folder's name"
    for name in ("README.md", "conftest.py"):
        assert (path / name).is_file(), f"{exercise.name}: no {name}"
    assert list((path / "tests").glob("test_*.py")), f"{exercise.name}: no tests/test_*.py"
    regions = exercise.regions()
    fixtures = exercise.fixtures()
    for task in exercise.tasks:
        assert any(r.task == task.id for r in regions), f"{exercise.name}: task {task.id} has no solution region"
        count = sum(1 for t, _ in fixtures if t == task.id)
        assert count >= 2, f"{exercise.name}: task {task.id} has {count} wrong fixtures, at least 2 are needed"
    for task, fixture in fixtures:
        exercise.task(task)  # raises for a folder named after no task
        spec.region_for_fixture(exercise, task, fixture, regions)  # raises when there is nothing to replace


@pytest.mark.parametrize("path", EXERCISE_PARAMS)
def test_solution_scores_full_marks(path):
    exercise = spec.load_exercise(path)
    done = minidl_command("grade", str(path), "--instructor", str(path), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    failed = {t["id"]: t["detail"] for t in result["tasks"] if not t["passed"]}
    assert not failed, f"{exercise.name}: the solution fails {failed}"
    assert result["score"] == result["max_score"] == exercise.max_points
    assert all(t["tests_run"] > 0 for t in result["tasks"])
    assert not result["unmarked_tests"], "every graded test needs @pytest.mark.task (at collection time)"


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    dest = tmp_path_factory.mktemp("released")
    release.release(dest, source_root=ROOT / "exercises")
    return dest


@pytest.mark.parametrize("path", EXERCISE_PARAMS)
def test_released_version_scores_zero(path, released):
    exercise = spec.load_exercise(path)
    student = released / path.name
    assert not (student / "wrong").exists()
    assert not list(student.glob("tests/test_instructor_*.py"))
    for relative in exercise.code_files():
        if (student / relative).exists():
            assert "BEGIN SOLUTION" not in (student / relative).read_text(), f"{relative} keeps a solution region"
    result = grading.grade(student, instructor=path, isolate=False)
    assert result.score == 0, result.table()
    for task in result.tasks:  # no test at all may pass on a stub, hidden ones included
        assert task.tests_passed == 0, f"{exercise.name}.{task.id}: {task.tests_passed} tests pass on the stub"
        assert task.tests_run > 0 or "no test ran" in task.detail or "crash" in task.detail, task


def fixture_rounds(path):
    """The wrong fixtures of an exercise in rounds: round k holds the k-th fixture of every task."""
    by_task = {}
    for task, fixture in spec.load_exercise(path).fixtures():
        by_task.setdefault(task, []).append(fixture)
    count = max((len(f) for f in by_task.values()), default=0)
    return [[(task, f[k]) for task, f in by_task.items() if k < len(f)] for k in range(count)]


ROUNDS = [
    pytest.param(path, k, batch, id=f"{path.name}-round{k}", marks=elsewhere(path))
    for path in EXERCISES
    for k, batch in enumerate(fixture_rounds(path))
]


@pytest.mark.parametrize("path, k, batch", ROUNDS)
def test_wrong_fixtures_are_rejected(path, k, batch, tmp_path):
    """Each fixture of the round in place of its task's region, all in one copy: every one of
    those tasks must fail, on a test that ran (not on an import error). Putting one fixture per
    task in one copy and one pytest run keeps this quick; it is sound because the tasks are
    graded independently (test_tasks_are_graded_independently)."""
    copy = copy_solution(spec.load_exercise(path), tmp_path / path.name)
    where = {}
    for task, fixture in batch:
        region = spec.region_for_fixture(spec.load_exercise(copy), task, fixture)
        target = copy / region.path
        target.write_text(spec.replace_body(target.read_text(), region, fixture.read_text()))
        where[task] = f"{fixture.relative_to(path)} (in {region})"
    result = grading.grade(copy, instructor=path, isolate=False, tasks=list(where))
    caught = {t.id: not t.passed and t.tests_run > 0 for t in result.tasks}
    missed = [where[task] for task, ok in caught.items() if not ok]
    assert not missed, f"not caught by a test of their task: {missed}\n{result.table()}"


@pytest.mark.parametrize("path", EXERCISE_PARAMS)
@pytest.mark.parametrize("half", [0, 1])
def test_tasks_are_graded_independently(path, half, tmp_path):
    """A half-done copy (every other task as released) gets the partial score: the tasks left
    undone fail and the others pass, so no task leans on the regions of another."""
    exercise = spec.load_exercise(path)
    undone = [t.id for t in exercise.tasks[half::2]]
    if not undone or len(undone) == len(exercise.tasks):
        pytest.skip("one task: nothing is half done")
    copy = copy_solution(exercise, tmp_path / path.name)
    stub_tasks(exercise, copy, undone)
    result = grading.grade(copy, instructor=path, isolate=False)
    assert {t for t, ok in scores(result).items() if not ok} == set(undone), result.table()
    assert result.score == sum(t.points for t in exercise.tasks if t.id not in undone)


def first_python_task(exercise):
    for region in exercise.regions():
        if region.language == "python":
            return region
    return None


@pytest.mark.parametrize("path", EXERCISES[:1], ids=EXERCISE_IDS[:1])
def test_infinite_loop_fails_its_task_on_timeout_and_others_are_scored(path, tmp_path):
    exercise = spec.load_exercise(path)
    region = first_python_task(exercise)
    copy = copy_solution(exercise, tmp_path / path.name)
    target = copy / region.path
    target.write_text(spec.replace_body(target.read_text(), region, "while True:\n    pass\n"))
    result = grading.grade(copy, instructor=path, timeout={region.task: 3})
    looping = result.result(region.task)
    assert not looping.passed and looping.detail == "timeout after 3 s"
    assert all(t.passed for t in result.tasks if t.id != region.task), result.table()
    assert result.score == exercise.max_points - exercise.task(region.task).points


def test_grade_command_reports_a_crash_and_a_syntax_error_as_failed_tasks(tmp_path):
    exercise = spec.load_exercise(EXERCISES[0])
    region = first_python_task(exercise)
    crashed = copy_solution(exercise, tmp_path / "crash")
    target = crashed / region.path
    target.write_text(spec.replace_body(target.read_text(), region, "import os\nos._exit(3)\n"))
    other = next(t.id for t in exercise.tasks if t.id != region.task)
    done = minidl_command("grade", str(crashed), "--json", "--task", region.task, "--task", other)
    assert done.returncode == 0, done.stderr
    result = {t["id"]: t for t in json.loads(done.stdout)["tasks"]}
    assert not result[region.task]["passed"] and result[region.task]["detail"] == "crashed (exit status 3): no output"
    assert result[other]["passed"]

    broken = copy_solution(exercise, tmp_path / "syntax")
    target = broken / region.path
    target.write_text(spec.replace_body(target.read_text(), region, "return (\n"))
    done = minidl_command("grade", str(broken), "--task", region.task)
    assert done.returncode == 0, done.stderr
    assert "SyntaxError" in done.stdout and "backward_ops.py" in done.stdout
    assert re.search(rf"total\s+0/{exercise.task(region.task).points}\s", done.stdout), done.stdout


def test_grade_uses_the_instructors_tests_not_the_students(tmp_path):
    exercise = spec.load_exercise(EXERCISES[0])
    copy = copy_solution(exercise, tmp_path / "cheat")
    stub_tasks(exercise, copy, [t.id for t in exercise.tasks])
    for test in (copy / "tests").glob("test_*.py"):  # a student who empties the tests
        test.write_text("import pytest\n\n@pytest.mark.task('x')\ndef test_nothing():\n    pass\n")
    assert grading.grade(copy, instructor=exercise.path, isolate=False).score == 0


def test_grade_and_release_refuse_bad_input(tmp_path):
    done = minidl_command("grade", str(tmp_path))
    assert done.returncode == 2 and "no exercise.toml" in done.stderr
    done = minidl_command("grade", str(EXERCISES[0]), "--timeout", "0")
    assert done.returncode == 2 and "--timeout" in done.stderr
    done = minidl_command("exercises", "release", str(tmp_path / "out"), "no_such_exercise")
    assert done.returncode == 2 and "unknown exercise no_such_exercise" in done.stderr


def test_release_command_writes_the_named_exercise(tmp_path):
    name = EXERCISES[0].name
    done = minidl_command("exercises", "release", str(tmp_path / "out"), name)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]
    done = minidl_command("exercises", "release", str(tmp_path / "out"), name)
    assert done.returncode == 2 and "already exists" in done.stderr


def test_regions_are_parsed_and_stubbed():
    python = "def f(x):\n    # BEGIN SOLUTION t1\n    return x + 1\n    # END SOLUTION\n"
    (region,) = spec.find_regions(python, "m.py")
    assert (region.task, region.begin, region.end, region.indent) == ("t1", 1, 3, "    ")
    stubbed = spec.strip_regions(python, [region], "00_demo", {"t1": 'add "one"'})
    assert stubbed == 'def f(x):\n    raise NotImplementedError("00_demo.t1: add \\"one\\"")\n'
    c = "int f(int x) {\n  // BEGIN SOLUTION t2\n  // STUB: return 0;\n  return x + 1;\n  // END SOLUTION\n}\n"
    (region,) = spec.find_regions(c, "k.c")
    assert region.stub == "return 0;" and spec.region_body(c, region) == "  return x + 1;"
    assert spec.strip_regions(c, [region], "00_demo", {"t2": "add one"}) == (
        "int f(int x) {\n  // TODO 00_demo.t2: add one\n  return 0;\n}\n"
    )
    assert spec.replace_body(c, region, "return x;\n") == (
        "int f(int x) {\n  // BEGIN SOLUTION t2\n  // STUB: return 0;\n  return x;\n  // END SOLUTION\n}\n"
    )
    for bad in ("# BEGIN SOLUTION a\n", "# END SOLUTION\n", "# BEGIN SOLUTION a\n# BEGIN SOLUTION b\n"):
        with pytest.raises(spec.ExerciseError):
            spec.find_regions(bad, "m.py")
