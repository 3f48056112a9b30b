"""The docs run: every Python example in README.md and docs/*.md, with the output it shows, and the images.

The rules, in full in docs/doc_examples.py (which runs the examples, here and for make_images):
- every ```python block runs. The python blocks of one file run in order, in one namespace, as a
  reader going down the page in one session would run them; each file in a fresh Python process
  whose working directory is an empty temporary folder;
- a ```text block right after a python block is what that block prints. It is compared after
  documented normalisations: trailing spaces and runs of spaces, numbers within 0.2% (the last
  printed digit may differ between machines), `...` for any text, a dashed table rule of any
  length;
- a block marked `<!-- not run: reason -->` is shown but not run: it is reported here as a
  skipped test, with its reason;
- docs/make_images.py rebuilds every image the docs show, from the example that draws it.
"""

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


doc_examples = _load("doc_examples")


def _all_blocks():
    params = []
    for doc in doc_examples.doc_files():
        try:
            blocks = doc_examples.collect(doc)
        except ValueError as error:  # a malformed fence: fail as a test, not as a collection error
            params.append(pytest.param(doc, error, id=f"{doc.name}:malformed"))
            continue
        params += [pytest.param(doc, block, id=f"{doc.name}:{block.line}") for block in blocks]
    return params


class DocRuns:
    """Runs each file's examples once (in its own temporary folder) and keeps the results."""

    def __init__(self, factory):
        self.factory = factory
        self.runs = {}

    def results(self, doc):
        if doc not in self.runs:
            workdir = self.factory.mktemp(doc.stem)
            self.runs[doc] = (workdir, doc_examples.run(doc, workdir))
        return self.runs[doc]


@pytest.fixture(scope="session")
def doc_runs(tmp_path_factory):
    return DocRuns(tmp_path_factory)


@pytest.mark.parametrize("doc, block", _all_blocks())
def test_example_runs_and_prints_what_the_docs_show(doc, block, doc_runs):
    if isinstance(block, ValueError):
        pytest.fail(str(block))
    if block.not_run is not None:
        pytest.skip(f"{block.where} is marked not run: {block.not_run}")
    _, results = doc_runs.results(doc)
    result = results.get(block.number)
    assert result is not None, f"{block.where} did not run: the process running {doc.name} crashed before it"
    assert result["error"] is None, f"{block.where} failed:\n{block.source}\n\n{result['error']}"
    if block.expected is not None:
        problem = doc_examples.compare(block.expected, result["stdout"])
        assert problem is None, f"{block.where}: {problem}"


def test_the_docs_have_examples_with_checked_output():
    """Guards the collector itself: if it found nothing, every test above would pass vacuously."""
    blocks = {doc.name: doc_examples.collect(doc) for doc in doc_examples.doc_files()}
    assert len(blocks["README.md"]) >= 5 and len(blocks["debugging.md"]) >= 10
    assert sum(b.expected is not None for b in blocks["debugging.md"]) >= 10
    assert any(b.expected is not None for b in blocks["README.md"])


# ---------------------------------------------------------------------------
# The rules themselves
# ---------------------------------------------------------------------------
def test_collect_pairs_output_blocks_reads_markers_and_rejects_unlabelled_output(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n```python\nprint(1)\n```\n\n```text\n1\n```\n\nProse.\n\n"
        "<!-- not run: needs your data -->\n```python\nopen('mine.csv')\n```\n\n"
        "```bash\nls\n```\n\n```python\nx = 2\n```\nProse between.\n```text\nnot this block's output\n```\n"
    )
    first, second, third = doc_examples.collect(page)
    assert (first.source, first.expected, first.not_run, first.line) == ("print(1)", "1", None, 3)
    assert second.not_run == "needs your data" and second.expected is None  # the bash block is not output
    assert third.expected is None  # prose in between: a text block further down is not its output
    page.write_text("```python\nprint(1)\n```\n```\n1\n```\n")
    with pytest.raises(ValueError, match="label it ```text"):
        doc_examples.collect(page)
    page.write_text("<!-- not run: -->\n```python\nprint(1)\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        doc_examples.collect(page)


@pytest.mark.parametrize(
    "shown, printed",
    [
        ("a  b   c", "a b c   "),  # runs of spaces, trailing spaces
        ("\nmean=0.1234\n\n", "mean=0.12345"),  # blank lines around; the last digit differs by < 0.2%
        ("norm 1e-07", "norm 0"),  # a difference below 1e-6
        ("step 4: MatMul -> H0 (3, 8)", "step 4: MatMul -> H0 (3, 8)"),
        ("at ...:7 in forward", "at /tmp/x/page_3.py:7 in forward"),
        ("first\n...\nlast", "first\nsecond\nthird\nlast"),
        ("first\n...\nlast", "first\nlast"),
        ("----  ---", "-----  ------"),  # a table rule
    ],
)
def test_output_that_matches(shown, printed):
    assert doc_examples.compare(shown, printed) is None


@pytest.mark.parametrize(
    "shown, printed",
    [
        ("zeros 9", "zeros 10"),  # counts must agree
        ("mean=0.1234", "mean=0.1260"),  # 2%: a real change
        ("mean=-0.5", "mean=0.5"),
        ("leaf_0 (4, 3)", "leaf_0 (1, 4)"),
        ("Sequential.0.weight", "Sequential.1.weight"),
        ("a\nb", "a\nb\nc"),  # an extra line
        ("at ...:7 in forward", "at /tmp/x/page_3.py:8 in forward"),
        ("first\n...\nlast", "first\nsecond"),
    ],
)
def test_output_that_does_not_match(shown, printed):
    assert doc_examples.compare(shown, printed) is not None


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
def test_make_images_rebuilds_every_image_the_docs_show(tmp_path, doc_runs):
    import matplotlib.image

    shown = {image for doc in doc_examples.doc_files() for image in doc_examples.images_shown(doc)}
    assert shown, "the docs show no images: nothing would be checked"
    committed = {path.relative_to(ROOT) for path in (ROOT / "docs" / "images").iterdir()}
    assert committed == shown, "docs/images should hold exactly the images the docs show"

    out = tmp_path / "images"
    subprocess.run([sys.executable, str(ROOT / "docs" / "make_images.py"), "--out", str(out)], check=True)
    assert {path.name for path in out.iterdir()} == {image.name for image in shown}
    for image in sorted(shown):
        made = out / image.name
        assert made.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
        pixels = matplotlib.image.imread(str(made))
        assert pixels.shape[0] >= 200 and pixels.shape[1] >= 200 and pixels[..., :3].std() > 0.05, image
        # The same as the picture the docs' own run of the example drew, in another process: the
        # image is what the example beside it draws, and it comes out the same every time.
        doc = next(d for d in doc_examples.doc_files() if image in doc_examples.images_shown(d))
        workdir, _ = doc_runs.results(doc)
        np.testing.assert_array_equal(pixels, matplotlib.image.imread(str(workdir / image.name)), err_msg=str(image))
