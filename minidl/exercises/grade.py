"""`minidl grade [PATH] [--instructor DIR] [--json]`: score a student's copy of an exercise.

Each task's tests run in their own pytest process, in a scratch copy of the student's folder,
killed when the task's timeout runs out. Whatever the student's code does (raise, crash,
loop forever, fail to parse) costs that task's points and nothing else. With --instructor
the tests, conftest.py and exercise.toml come from the instructor's folder (hidden tests
included), so editing the public tests gains nothing.

A task scores its points when every one of its tests passed (at least one ran); a skipped
test counts as not passed. The grader runs on the student's machine, so it is feedback, not
proof: the instructor re-grades the submitted code with --instructor.
"""

import concurrent.futures
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minidl.exercises.spec import ExerciseError, load_exercise

COPY_IGNORED = shutil.ignore_patterns("__pycache__", ".pytest_cache", "wrong", "*.pyc")


@dataclasses.dataclass
class TaskResult:
    id: str
    points: int
    max_points: int
    passed: bool
    detail: str
    tests_passed: int = 0
    tests_run: int = 0
    seconds: float = 0.0


@dataclasses.dataclass
class Grade:
    exercise: str
    title: str
    tasks: list

    @property
    def score(self):
        return sum(t.points for t in self.tasks)

    @property
    def max_score(self):
        return sum(t.max_points for t in self.tasks)

    def result(self, task_id):
        return next(t for t in self.tasks if t.id == task_id)

    def to_dict(self):
        return {
            "exercise": self.exercise,
            "title": self.title,
            "score": self.score,
            "max_score": self.max_score,
            "tasks": [dataclasses.asdict(t) for t in self.tasks],
        }

    def table(self):
        """The score table `minidl grade` prints."""
        width = max([len("task")] + [len(t.id) for t in self.tasks])
        lines = [f"{self.exercise}: {self.title}", f"{'task':<{width}}  points  result  tests  detail"]
        for t in self.tasks:
            points = f"{t.points}/{t.max_points}"
            tests = f"{t.tests_passed}/{t.tests_run}"
            lines.append(
                f"{t.id:<{width}}  {points:>6}  {'passed' if t.passed else 'failed'}  {tests:>5}  {t.detail}".rstrip()
            )
        passed = sum(t.passed for t in self.tasks)
        lines.append(
            f"{'total':<{width}}  {f'{self.score}/{self.max_score}':>6}  {passed}/{len(self.tasks)} tasks passed"
        )
        return "\n".join(lines)


def prepare_workspace(student, instructor, dest):
    """Copy the student's folder to dest; with an instructor folder, take the tests from there."""
    shutil.copytree(student, dest, ignore=COPY_IGNORED)
    if instructor is not None:
        shutil.rmtree(dest / "tests", ignore_errors=True)
        shutil.copytree(instructor / "tests", dest / "tests", ignore=COPY_IGNORED)
        for name in ("conftest.py", "exercise.toml"):
            if (instructor / name).is_file():
                shutil.copy2(instructor / name, dest / name)


def _environment():
    env = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Only the plugins the grading needs: autoloading every installed one (xdist, hypothesis, ...)
    # costs seconds per task and could change how the tests run.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # tasks run side by side; keep BLAS from oversubscribing
    env.setdefault("OMP_NUM_THREADS", "1")
    # The tests import the same minidl as the grader (and its pytest plugin).
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_tests(student, instructor, task_ids, timeout, scratch, fail_fast=False):
    """Run the tests of `task_ids` in a fresh copy of the student's folder, killed after `timeout` seconds.

    Returns (results from the pytest plugin or None, "timeout" | "crash" | None, the run's output, seconds).
    """
    scratch.mkdir(parents=True)
    workspace = scratch / "exercise"
    prepare_workspace(student, instructor, workspace)
    ini = scratch / "pytest.ini"  # our own settings, not those of a project the folder happens to sit in
    ini.write_text("[pytest]\n")
    report = scratch / "report.json"
    output = scratch / "output.txt"
    command = [sys.executable, "-m", "pytest", "-q", "-c", str(ini), "--rootdir", str(workspace),
               "-p", "no:cacheprovider", "-p", "minidl.exercises.pytest_plugin", "--minidl-report", str(report),
               "--continue-on-collection-errors", "-o", "console_output_style=classic"]  # fmt: skip
    for task_id in task_ids:
        command += ["--minidl-task", task_id]
    if fail_fast:
        command.append("--exitfirst")
    command.append("tests")
    start = time.monotonic()
    with open(output, "wb") as out:
        process = subprocess.Popen(
            command, cwd=workspace, env=_environment(), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(timeout=timeout)
            problem = None
        except subprocess.TimeoutExpired:
            problem = "timeout"
        finally:
            _kill_group(process)
    seconds = time.monotonic() - start
    text = output.read_text(errors="replace")
    results = None
    if report.is_file():
        try:
            results = json.loads(report.read_text())
        except json.JSONDecodeError:
            results = None
    if problem is None and (results is None or not results.get("finished")):
        problem = "crash"
    return results, problem, text, seconds, process.returncode


def _kill_group(process):
    """Kill the test process and anything it started (a student's code may fork)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _crash_detail(returncode, output):
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"crashed: killed by {name}"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    return f"crashed (exit status {returncode}): {last[:200]}"


def score_task(task, results, problem, output, seconds, returncode, timeout):
    """One task's result from a run that covered it."""
    tests = [t for t in (results or {}).get("tests", []) if t["task"] == task.id]
    calls = [t for t in tests if t["when"] == "call"]
    passed = [t for t in calls if t["outcome"] == "passed"]
    bad = [t for t in tests if t["outcome"] != "passed"]
    run = len({t["nodeid"] for t in tests})
    if problem == "timeout":
        detail = f"timeout after {timeout:g} s"
    elif problem == "crash":
        detail = _crash_detail(returncode, output)
    elif bad:
        detail = bad[0]["message"] or bad[0]["outcome"]
    elif not tests:
        errors = (results or {}).get("collection_errors", [])
        detail = f"no test ran: {errors[0]['message']}" if errors else "no tests for this task"
    else:
        detail = ""
    ok = problem is None and not bad and bool(passed)
    return TaskResult(task.id, task.points if ok else 0, task.points, ok, detail, len(passed), run, round(seconds, 2))


def _limit(task, timeout):
    if isinstance(timeout, dict):
        return timeout.get(task.id, task.timeout)
    return task.timeout if timeout is None else timeout


def grade(path=".", instructor=None, timeout=None, jobs=None, isolate=True, tasks=None, fail_fast=False):
    """Grade the exercise in `path`; returns a Grade.

    instructor  the original exercise folder: its tests (hidden ones included) and exercise.toml are used
    timeout     seconds per task, overriding exercise.toml (e.g. to keep a test of the grader quick);
                a number for every task, or {task id: seconds} for some
    jobs        tasks run side by side (default: the number of CPUs)
    isolate     one pytest process per task (False: one process for all, for quick checks in CI;
                a timeout or crash then fails every task)
    tasks       grade only these task ids
    fail_fast   stop a task's tests at the first failure (quick checks that a wrong answer is caught)
    """
    student = Path(path).resolve()
    if not student.is_dir():
        raise ExerciseError(f"{path}: no such folder")
    source = Path(instructor).resolve() if instructor is not None else None
    if source is not None and not (source / "tests").is_dir():
        raise ExerciseError(f"--instructor {instructor}: no tests/ folder there")
    exercise = load_exercise(source if source is not None else student)
    chosen = [t for t in exercise.tasks if tasks is None or t.id in tasks]
    if tasks is not None and len(chosen) != len(set(tasks)):
        raise ExerciseError(f"{exercise.name}: unknown task in {', '.join(tasks)}")
    limits = {t.id: _limit(t, timeout) for t in chosen}
    with tempfile.TemporaryDirectory(prefix="minidl-grade-") as scratch:
        scratch = Path(scratch)
        if not isolate:
            limit = sum(limits.values())
            run = run_tests(student, source, [t.id for t in chosen], limit, scratch / "all", fail_fast)
            return Grade(exercise.name, exercise.title, [score_task(t, *run, limit) for t in chosen])

        def one(task):
            run = run_tests(student, source, [task.id], limits[task.id], scratch / task.id, fail_fast)
            return score_task(task, *run, limits[task.id])

        workers = max(1, min(len(chosen), jobs or os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return Grade(exercise.name, exercise.title, list(pool.map(one, chosen)))
