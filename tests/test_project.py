"""The project's promises about itself: README commands and CI agree, the package imports cleanly."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) >= 2
    assert commands[0].startswith("pip install") and "minidl train" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_exactly_the_readme_test_command():
    test_command = _readme_commands()[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_import_minidl_does_not_import_heavy_optional_modules():
    code = "import sys, minidl; print(sorted(m for m in ('mpi4py', 'matplotlib', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# Every Python example of the README (and of docs/*.md) runs, with its shown output checked: tests/test_docs.py.
