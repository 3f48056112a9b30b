"""Run the lecture notebooks (`lectures/NN_topic.ipynb`) and turn them into HTML pages.

`minidl lectures build DEST` and `tests/test_lectures.py` both come here. A notebook runs
top to bottom in a fresh `python3` kernel of this Python environment, in a scratch working
directory (so files it writes never land in the repository), and with this copy of minidl
first on the kernel's path. Fast mode sets MINIDL_NOTEBOOK_FAST=1: each notebook's first
code cell reads it and shrinks its data and epochs, so the test suite runs them all in minutes.

nbclient, nbformat, ipykernel (and nbconvert for HTML) are imported only when a notebook runs.
"""

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FAST_ENV = "MINIDL_NOTEBOOK_FAST"
NOTEBOOK_PATTERN = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
CELL_TIMEOUT = 600  # seconds a single cell may take before the run is called stuck (full mode trains longest)


class LectureError(Exception):
    """Something about the request (a folder without notebooks, a filter matching none): said in one line."""


@dataclass
class NotebookRun:
    """What running one notebook gave: the executed notebook, seconds, and the error if a cell failed."""

    path: Path
    notebook: object
    seconds: float
    error: str | None = None
    outputs: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.error is None


def default_source():
    """The `lectures/` folder beside this minidl package (a source checkout), else ./lectures."""
    beside = Path(__file__).resolve().parent.parent / "lectures"
    return beside if beside.is_dir() else Path("lectures")


def find_notebooks(source=None, names=()):
    """The notebooks `NN_topic.ipynb` in `source`, in course order.

    `names` filters them: a notebook is kept if any name is its number ("2" or "02"), its full
    stem ("02_backprop") or a part of it ("backprop").
    """
    source = Path(source) if source is not None else default_source()
    if not source.is_dir():
        raise LectureError(
            f"lectures: {source} is not a folder (expected the lectures/ folder with NN_topic.ipynb files)"
        )
    notebooks = sorted(p for p in source.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    if not notebooks:
        raise LectureError(f"lectures: no notebooks named NN_topic.ipynb in {source}")
    if not names:
        return notebooks
    chosen = [p for p in notebooks if any(_matches(p.stem, name) for name in names)]
    if not chosen:
        available = ", ".join(p.stem for p in notebooks)
        raise LectureError(f"lectures: no notebook matches {', '.join(map(repr, names))}; available: {available}")
    return chosen


def _matches(stem, name):
    name = str(name).strip().removesuffix(".ipynb")
    if name.isdigit():
        return stem[:2] == f"{int(name):02d}"
    return name.lower() in stem.lower()


def kernel_environment(fast):
    """The kernel's environment: this one, plus fast mode, inline figures and this minidl first on the path."""
    env = dict(os.environ)
    env[FAST_ENV] = "1" if fast else "0"
    # The Agg backend (often set for headless tests) would swallow the figures; the inline backend
    # puts each one in the notebook as a PNG, which is what the HTML pages show.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    package_root = str(Path(__file__).resolve().parent.parent)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = package_root + (os.pathsep + path if path else "")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silences a debugger warning at kernel start
    return env


def execute_notebook(path, fast=False, cwd=None, timeout=CELL_TIMEOUT):
    """Run a notebook top to bottom in a fresh kernel; returns a NotebookRun (error set if a cell failed).

    `cwd` is the kernel's working directory (a fresh temporary folder when None). `timeout` is per cell.
    """
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    scratch = tempfile.TemporaryDirectory(prefix=f"minidl-{path.stem}-")
    if cwd is None:
        cwd = os.path.join(scratch.name, "work")
        os.mkdir(cwd)
    # Local sockets (ipc) rather than TCP ports: nothing listens on the network, and no warning about it.
    manager = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(scratch.name, "kernel"))
    manager.kernel_spec.argv[0] = sys.executable  # this environment's Python, whatever `python` is on PATH
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=timeout,
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
    )
    start = time.perf_counter()
    error = None
    # The kernel process's own output (its log lines, anything C code prints) goes to a file rather than
    # our terminal; what the notebook's cells print is captured in the notebook as usual.
    kernel_log = os.path.join(scratch.name, "kernel.log")
    try:
        with open(kernel_log, "w") as log:
            client.execute(env=kernel_environment(fast), cwd=str(cwd), stdout=log, stderr=log)
    except CellExecutionError as e:
        error = f"{path.name}: a cell failed:\n{e}"
    except CellTimeoutError:
        error = f"{path.name}: a cell ran longer than {timeout} s"
    except DeadKernelError as e:
        with open(kernel_log) as log:
            tail = "".join(log.readlines()[-20:])
        error = f"{path.name}: the kernel died: {e}\n{tail}"
    finally:
        scratch.cleanup()
    return NotebookRun(path, notebook, time.perf_counter() - start, error)


def to_html(notebook):
    """The executed notebook as one self-contained HTML page (figures embedded as PNG data)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    return body


def build(dest, source=None, names=(), fast=False, progress=True, timeout=CELL_TIMEOUT):
    """Execute the notebooks and write DEST/NN_topic.html for each, plus DEST/index.html.

    Returns the list of NotebookRun. A notebook whose cell fails still gets its page (with the
    traceback where the cell failed); the caller decides what a failure means.
    """
    notebooks = find_notebooks(source, names)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    runs = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(notebooks), unit=" notebook", file=sys.stderr, dynamic_ncols=True)
    try:
        for path in notebooks:
            if bar is not None:
                bar.set_description(path.stem)
            run = execute_notebook(path, fast=fast, timeout=timeout)
            (dest / f"{path.stem}.html").write_text(to_html(run.notebook), encoding="utf-8")
            runs.append(run)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    _write_index(dest, runs, fast)
    return runs


def _write_index(dest, runs, fast):
    import html

    rows = []
    for run in runs:
        title = _title(run.notebook) or run.path.stem
        status = "" if run.ok else " <b>(a cell failed)</b>"
        rows.append(
            f'<li><a href="{run.path.stem}.html">{html.escape(run.path.stem)}</a>: '
            f"{html.escape(title)} ({run.seconds:.0f} s){status}</li>"
        )
    mode = "fast mode (MINIDL_NOTEBOOK_FAST=1)" if fast else "full mode"
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>minidl lectures</title></head><body>"
        f"<h1>minidl lectures</h1><p>Executed in {mode} on {time.strftime('%Y-%m-%d %H:%M')}.</p>"
        f"<ul>{''.join(rows)}</ul></body></html>"
    )
    (dest / "index.html").write_text(page, encoding="utf-8")


def _title(notebook):
    """The first markdown heading of a notebook, without its #."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return None
