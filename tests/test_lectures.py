"""The lecture notebooks: each runs top to bottom in fast mode, is committed without outputs, plots
something and ends with questions to try; `minidl lectures build` turns them into HTML pages.

Every `lectures/NN_topic.ipynb` is picked up by the glob below, so a new notebook is tested the
moment it lands. Notebooks run in a fresh python3 kernel of this environment, with
MINIDL_NOTEBOOK_FAST=1 and a temporary working directory (see minidl/lectures.py).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbclient", reason="the lecture tests need nbclient (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="the lecture tests need ipykernel (pip install -e '.[dev]')")

from minidl import lectures  # noqa: E402

LECTURES = Path(__file__).resolve().parent.parent / "lectures"
NOTEBOOKS = sorted(p for p in LECTURES.glob("*.ipynb") if lectures.NOTEBOOK_PATTERN.match(p.name))
# A single cell that runs longer than this in fast mode is stuck, or the notebook is not shrinking
# its work in fast mode (the whole notebook should take well under 2 minutes).
FAST_CELL_TIMEOUT = 120
# What counts as drawing something: a matplotlib call or a library function that returns a Figure.
PLOT_CALL = re.compile(r"\b(plt\.|ax\.|axes\[|fig\.|\.plot\(|\.imshow\(|plot_history\(|draw_graph\()")
TRY_THIS = re.compile(r"^#{1,6}\s*Try this", re.IGNORECASE | re.MULTILINE)


def _ids(paths):
    return [p.stem for p in paths]


def test_lectures_folder_has_notebooks():
    assert NOTEBOOKS, f"no notebooks named NN_topic.ipynb in {LECTURES}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_fast_mode(path, tmp_path):
    run = lectures.execute_notebook(path, fast=True, cwd=tmp_path, timeout=FAST_CELL_TIMEOUT)
    assert run.ok, run.error
    print(f"{path.name}: {run.seconds:.1f} s in fast mode")
    produced_image = any(
        "image/png" in output.get("data", {})
        for cell in run.notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert produced_image, f"{path.name} ran, but no cell displayed a figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_clean_and_complete(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = notebook["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    with_outputs = [
        i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not with_outputs, f"{path.name}: cells {with_outputs} have outputs; clear them before committing"
    assert code, f"{path.name} has no code cells"
    first = "".join(code[0]["source"])
    assert lectures.FAST_ENV in first, f"{path.name}: the first code cell should read {lectures.FAST_ENV} (fast mode)"
    source = "\n".join("".join(c["source"]) for c in code)
    assert PLOT_CALL.search(source), f"{path.name}: no plot call (matplotlib or a minidl plotting function)"
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert TRY_THIS.search(markdown), f"{path.name}: no 'Try this' markdown heading"
    assert "import torch" not in source, f"{path.name}: notebooks teach minidl; PyTorch belongs in tests"


def test_find_notebooks_filters_by_number_and_name(tmp_path):
    for name in ("01_first.ipynb", "02_second_topic.ipynb", "10_tenth.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in lectures.find_notebooks(tmp_path)] == [
        "01_first.ipynb",
        "02_second_topic.ipynb",
        "10_tenth.ipynb",
    ]
    assert [p.name for p in lectures.find_notebooks(tmp_path, ["2"])] == ["02_second_topic.ipynb"]
    assert [p.name for p in lectures.find_notebooks(tmp_path, ["10", "first"])] == ["01_first.ipynb", "10_tenth.ipynb"]
    with pytest.raises(lectures.LectureError, match="no notebook matches 'nope'; available: 01_first"):
        lectures.find_notebooks(tmp_path, ["nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(lectures.LectureError, match="no notebooks named NN_topic.ipynb"):
        lectures.find_notebooks(tmp_path / "empty")
    with pytest.raises(lectures.LectureError, match="is not a folder"):
        lectures.find_notebooks(tmp_path / "missing")


def _minidl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "minidl", *args], cwd=cwd, capture_output=True, text=True)


def test_build_command_writes_html_with_figures(tmp_path):
    # 02 runs in seconds in fast mode; any notebook would do, so fall back on the smallest file.
    quick = [p for p in NOTEBOOKS if p.name.startswith("02_")]
    smallest = quick[0] if quick else min(NOTEBOOKS, key=lambda p: p.stat().st_size)
    before = smallest.read_bytes()
    out = tmp_path / "site"
    result = _minidl("lectures", "build", str(out), smallest.stem, "--fast", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (out / f"{smallest.stem}.html").read_text(encoding="utf-8")
    assert "data:image/png;base64" in page, "the page has no embedded figure"
    assert smallest.stem in (out / "index.html").read_text(encoding="utf-8")
    assert not list(tmp_path.glob("*.png")), "a notebook wrote into the caller's folder instead of a scratch one"
    assert smallest.read_bytes() == before, "building must leave the committed notebook as it was"


def test_build_command_reports_a_failing_notebook_and_bad_filters(tmp_path):
    import nbformat

    source = tmp_path / "lectures"
    source.mkdir()
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")]
    )
    nbformat.write(notebook, source / "01_broken.ipynb")
    result = _minidl("lectures", "build", str(tmp_path / "site"), "--source", str(source), "--quiet", cwd=tmp_path)
    assert result.returncode == 1
    assert "01_broken.ipynb" in result.stderr and "broken on purpose" in result.stderr
    assert "broken on purpose" in (tmp_path / "site" / "01_broken.html").read_text(encoding="utf-8")

    result = _minidl("lectures", "build", str(tmp_path / "site"), "7", "--source", str(source), cwd=tmp_path)
    assert result.returncode == 2
    assert "no notebook matches '7'; available: 01_broken" in result.stderr
