"""The Python examples of README.md and docs/*.md: collect them, run them as a reader would, check what they print.

tests/test_docs.py runs every example with this module, and docs/make_images.py uses it to
rebuild the docs' images from the examples that draw them. The rules, for whoever writes docs:

- Every ```python block runs.
- A ```text block right after a python block (nothing but blank lines between) is what that
  block prints, and is checked. An unlabelled fence right after a python block is an error
  (label it `text` to have it checked). Comments in code (`# -> 0`) are prose: not checked.
- A block that is shown but cannot run (it needs your own file, say) has the line
  `<!-- not run: the reason -->` right before its fence; the test reports it as skipped, with
  the reason.
- The python blocks of one file run in order, in one namespace (as a reader pasting them into
  one session), in a fresh Python process whose working directory is an empty temporary
  folder (files an example writes, such as images, land there). Each block is saved there as
  `<file>_<n>.py` (README_3.py for the README's third block) and run from that file, so
  tracebacks and anomaly reports name that file. matplotlib draws off-screen (MPLBACKEND=Agg)
  and breakpoint() does nothing (PYTHONBREAKPOINT=0): break_on prints where it stops and goes on.

Printed output is compared with the text block after these normalisations, so a number's last
printed digit may differ between machines (BLAS, SIMD path) without the docs going stale:
- trailing spaces, and blank lines at the start and end, are ignored; a run of spaces matches
  a run of spaces of any length (a table column one character wider still matches);
- numbers are compared as numbers: they agree when they differ by at most 0.2% of the larger
  or by 1e-6;
- `...` matches anything within a line; a line holding only `...` matches any number of lines;
- a run of three or more dashes (a table rule) matches a run of any length.

Try one file by hand: `python docs/doc_examples.py docs/debugging.md` prints each block's
output and whether it matches.
"""

import contextlib
import difflib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")
FENCE = re.compile(r"^```(\S*)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.(?:png|svg|jpg|jpeg|gif))\)")
RELATIVE_TOLERANCE = 2e-3  # 0.2%: a difference in the 4th significant digit, as our tables print
ABSOLUTE_TOLERANCE = 1e-6


def doc_files():
    """README.md and docs/*.md, the files whose examples are checked."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


class Block:
    """One ```python block: where it is, its code, the output it shows (or None), and why it is not run (or None)."""

    def __init__(self, doc, number, line, source, expected=None, not_run=None):
        self.doc = doc  # pathlib.Path of the Markdown file
        self.number = number  # 1, 2, ... among the file's python blocks
        self.line = line  # the line of its opening fence
        self.source = source
        self.expected = expected
        self.not_run = not_run

    @property
    def script_name(self):
        return f"{self.doc.stem}_{self.number}.py"

    @property
    def where(self):
        doc = self.doc.relative_to(ROOT) if self.doc.is_relative_to(ROOT) else self.doc
        return f"{doc}:{self.line} (block {self.number})"

    def __repr__(self):
        return f"<Block {self.where}>"


def collect(doc):
    """The python blocks of a Markdown file, with their outputs; raises ValueError on a malformed fence."""
    lines = pathlib.Path(doc).read_text().splitlines()
    fences = []  # (language, first line, last line (1-based, the fences), body, the last non-blank line before)
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        if i == len(lines):
            raise ValueError(f"{doc}:{start + 1}: this fence is never closed")
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        fences.append((match.group(1), start + 1, i + 1, "\n".join(lines[start + 1 : i]), before))
        i += 1
    blocks = []
    for index, (language, first, last, body, before) in enumerate(fences):
        if language != "python":
            continue
        not_run = NOT_RUN.match(before)
        block = Block(pathlib.Path(doc), len(blocks) + 1, first, body, not_run=not_run and not_run.group(1))
        if not_run is not None and not block.not_run:
            raise ValueError(f"{block.where}: `<!-- not run: ... -->` needs a reason")
        if index + 1 < len(fences):
            next_language, next_first, _, next_body, _ = fences[index + 1]
            right_after = all(not line.strip() for line in lines[last : next_first - 1])
            if right_after and next_language == "text":
                block.expected = next_body
            elif right_after and not next_language:
                raise ValueError(
                    f"{doc}:{next_first}: an unlabelled block right after a python block; if it is the "
                    "output, label it ```text so that it is checked"
                )
        blocks.append(block)
    return blocks


def images_shown(doc):
    """The images a Markdown file shows, as paths relative to the repository (docs/images/x.png)."""
    doc = pathlib.Path(doc)
    shown = []
    for target in IMAGE.findall(doc.read_text()):
        if "://" not in target:
            shown.append((doc.parent / target).resolve().relative_to(ROOT))
    return shown


# ----------------------------------------------------------------------------
# Running a file's blocks
# ----------------------------------------------------------------------------
def run(doc, workdir, blocks=None, timeout=900):
    """Run the python blocks of `doc` in a fresh process in `workdir`.

    Returns {block number: {"stdout": text, "error": traceback text or None}} for every block
    that was run (blocks marked `not run` are not).
    """
    blocks = collect(doc) if blocks is None else blocks
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    job = [{"number": b.number, "script": b.script_name, "source": b.source} for b in blocks if b.not_run is None]
    with tempfile.TemporaryDirectory() as scratch:
        request, answer = pathlib.Path(scratch, "blocks.json"), pathlib.Path(scratch, "results.json")
        request.write_text(json.dumps(job))
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONBREAKPOINT": "0", "PYTHONHASHSEED": "0"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
        process = subprocess.run(
            [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", str(request), str(answer)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if not answer.exists():
            raise RuntimeError(f"running the examples of {doc} crashed:\n{process.stderr[-3000:]}")
        results = json.loads(answer.read_text())
    return {int(number): result for number, result in results.items()}


def _worker(request, answer):
    """Inside the fresh process: run each block in one shared namespace, capturing what it prints."""
    namespace = {"__name__": "__main__"}
    results = {}
    for block in json.loads(pathlib.Path(request).read_text()):
        path = pathlib.Path(block["script"]).resolve()
        path.write_text(block["source"] + "\n")
        printed = io.StringIO()
        error = None
        try:
            code = compile(block["source"] + "\n", str(path), "exec")
            with contextlib.redirect_stdout(printed):
                exec(code, namespace)
        except BaseException:  # noqa: BLE001 - SystemExit and KeyboardInterrupt in an example are failures too
            error = traceback.format_exc()
        results[block["number"]] = {"stdout": printed.getvalue(), "error": error}
        pathlib.Path(answer).write_text(json.dumps(results))  # after each block: a crash keeps what ran
    pathlib.Path(answer).write_text(json.dumps(results))


# ----------------------------------------------------------------------------
# Comparing printed output with the docs
# ----------------------------------------------------------------------------
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"(?P<ellipsis>\.\.\.)|(?P<number>{NUMBER})|(?P<rule>-{{3,}})|(?P<space> +)|(?P<text>.)")


def normalize(text):
    """Trailing spaces and blank lines at either end removed."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _pattern(expected):
    parts = []
    for line in normalize(expected).split("\n"):
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")  # any number of whole lines
            continue
        for token in _TOKEN.finditer(line):
            kind = token.lastgroup
            if kind == "ellipsis":
                parts.append(r"[^\n]*?")
            elif kind == "number":
                parts.append(f"({NUMBER})")
            elif kind == "rule":
                parts.append("-{3,}")
            elif kind == "space":
                parts.append(" +")
            else:
                parts.append(re.escape(token.group()))
        parts.append(r"\n")
    return re.compile("".join(parts) + r"\Z")


def _numbers_agree(a, b):
    a, b = float(a), float(b)
    return a == b or abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b)) + ABSOLUTE_TOLERANCE


def compare(expected, actual):
    """None when `actual` (what a block printed) matches `expected` (its text block), else an explanation."""
    actual_text = normalize(actual) + "\n"
    match = _pattern(expected).match(actual_text)
    if match is None:
        diff = difflib.unified_diff(
            normalize(expected).split("\n"), normalize(actual).split("\n"), "shown in the docs", "printed", lineterm=""
        )
        return "the printed output differs from the docs:\n" + "\n".join(diff)
    problems = [
        f"{w} shown, {g} printed"
        for w, g in zip(_expected_numbers(expected), match.groups())
        if not _numbers_agree(w, g)
    ]
    if problems:
        return "numbers differ by more than the tolerance: " + "; ".join(problems) + "\nprinted:\n" + normalize(actual)
    return None


def _expected_numbers(expected):
    numbers = []
    for line in normalize(expected).split("\n"):
        if line.strip() != "...":
            numbers += [t.group() for t in _TOKEN.finditer(line) if t.lastgroup == "number"]
    return numbers


# ----------------------------------------------------------------------------
# By hand: python docs/doc_examples.py FILE.md
# ----------------------------------------------------------------------------
def main(argv):
    if argv[:1] == ["--worker"]:
        _worker(*argv[1:3])
        return 0
    status = 0
    for name in argv or [str(p) for p in doc_files()]:
        doc = pathlib.Path(name).resolve()
        blocks = collect(doc)
        with tempfile.TemporaryDirectory() as workdir:
            results = run(doc, workdir, blocks)
        for block in blocks:
            if block.not_run is not None:
                print(f"== {block.where}: not run ({block.not_run})")
                continue
            result = results.get(block.number, {"stdout": "", "error": "did not run"})
            verdict = "ok"
            if result["error"]:
                verdict = "FAILED:\n" + result["error"]
            elif block.expected is not None:
                problem = compare(block.expected, result["stdout"])
                verdict = "output matches" if problem is None else "OUTPUT DIFFERS: " + problem
            status |= verdict not in ("ok", "output matches")
            print(f"== {block.where}: {verdict}")
            if result["stdout"].strip():
                print(result["stdout"].rstrip())
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
