"""The pytest plugin `minidl grade` runs each task's tests with (`-p minidl.exercises.pytest_plugin`).

--minidl-task ID      keep only the tests marked @pytest.mark.task("ID") (repeatable; all tests when omitted)
--minidl-report FILE  write what happened as JSON: each test's task, outcome and the first line
                      of its failure, the collection errors, and whether the session finished
"""

import json
import os
import re


def pytest_addoption(parser):
    group = parser.getgroup("minidl grading")
    group.addoption("--minidl-task", action="append", default=[], help="run only the tests of this task")
    group.addoption("--minidl-report", default=None, help="write the results to this JSON file")


def pytest_configure(config):
    config.addinivalue_line("markers", "task(id): the graded task this test belongs to")
    config.addinivalue_line("markers", "instructor: an instructor-only test (left out of the student version)")
    config.pluginmanager.register(Recorder(config), "minidl-grade-recorder")


def task_of(item):
    marker = item.get_closest_marker("task")
    return str(marker.args[0]) if marker is not None and marker.args else None


def first_line(report):
    """The first line of why a test failed: "AssertionError: ...", "NotImplementedError: ..."."""
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return f"skipped: {str(report.longrepr[2]).removeprefix('Skipped: ')}"
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    else:  # a collection error is pytest's text, whose "E   " lines hold the exception
        text = str(report.longrepr)
        errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ") and line[1:].strip()]
        if errors:
            text = errors[-1]
            places = [e for e in errors if e.startswith('File "')]
            if places and text.startswith(("SyntaxError", "IndentationError", "TabError")):
                place = re.match(r'File "([^"]+)", line (\d+)', places[-1])  # where the student's code fails to parse
                if place:
                    text += f" ({os.path.basename(place.group(1))}, line {place.group(2)})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else "failed"
    if line.endswith(":") and len(lines) > 1:  # "AssertionError:" with the message on the next line
        line = f"{line} {lines[1]}"
    return line if len(line) <= 300 else line[:297] + "..."


class Recorder:
    def __init__(self, config):
        self.config = config
        self.results = {"tests": [], "collection_errors": [], "unmarked": [], "finished": False}

    def pytest_collection_modifyitems(self, config, items):
        for item in items:
            item.user_properties.append(("task", task_of(item)))
            if task_of(item) is None:
                self.results["unmarked"].append(item.nodeid)
        wanted = set(config.getoption("--minidl-task"))
        if wanted:
            deselected = [item for item in items if task_of(item) not in wanted]
            items[:] = [item for item in items if task_of(item) in wanted]
            if deselected:
                config.hook.pytest_deselected(items=deselected)

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.outcome == "passed":
            return  # setup and teardown that went well say nothing
        task = dict(report.user_properties).get("task")
        message = first_line(report) if report.failed or report.skipped else ""
        if report.failed and report.when != "call":
            message = f"error in test {report.when}: {message}"
        self.results["tests"].append(
            {"nodeid": report.nodeid, "task": task, "when": report.when, "outcome": report.outcome, "message": message}
        )

    def pytest_collectreport(self, report):
        if report.failed:
            self.results["collection_errors"].append({"nodeid": report.nodeid, "message": first_line(report)})

    def pytest_sessionfinish(self, session, exitstatus):
        self.results["finished"] = True
        self.results["exitstatus"] = int(exitstatus)
        path = self.config.getoption("--minidl-report")
        if path:
            with open(path, "w") as f:
                json.dump(self.results, f)
