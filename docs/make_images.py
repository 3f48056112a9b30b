"""Rebuild every image in docs/images from the example that draws it.

    python docs/make_images.py              # rewrites docs/images/*.png
    python docs/make_images.py --out DIR    # writes them to DIR instead (the tests do this)

Each image a Markdown file shows (README.md, docs/*.md) is drawn by one of that same file's
Python examples, under the image's file name: docs/debugging.md shows images/graph_mlp.png, and
one of its examples calls `debug.draw_graph(loss, "graph_mlp.png", ...)`. So a picture is
always what the code beside it draws. This script runs the examples of every file that shows
an image, exactly as tests/test_docs.py runs them (docs/doc_examples.py: in order, in a fresh
process, in an empty temporary folder), and copies each image the file shows from that folder.
The examples are seeded, so the images come out the same every time on one machine.
"""

import argparse
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import doc_examples  # noqa: E402 - lives next to this script

IMAGES = doc_examples.ROOT / "docs" / "images"


def make_images(out=IMAGES):
    """Run the examples and write every image the docs show into `out`; returns the paths written."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in doc_examples.doc_files():
        shown = doc_examples.images_shown(doc)
        if not shown:
            continue
        with tempfile.TemporaryDirectory() as workdir:
            results = doc_examples.run(doc, workdir)
            failed = {number: r["error"] for number, r in results.items() if r["error"]}
            if failed:
                number, error = next(iter(failed.items()))
                raise RuntimeError(f"{doc.name}: example {number} failed, so its images cannot be made:\n{error}")
            for image in shown:
                if image.parent != IMAGES.relative_to(doc_examples.ROOT):
                    raise ValueError(f"{doc.name} shows {image}: the docs' images live in docs/images")
                made = pathlib.Path(workdir, image.name)
                if not made.exists():
                    raise FileNotFoundError(
                        f"{doc.name} shows {image}, but none of its examples writes {image.name}: draw it in an "
                        "example of that file, under that name"
                    )
                if out / image.name in written:
                    raise ValueError(f"{image} is shown by two files: give each picture one home")
                shutil.copyfile(made, out / image.name)
                written.append(out / image.name)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(IMAGES), help="folder to write the images to (default: docs/images)")
    args = parser.parse_args(argv)
    for path in make_images(args.out):
        print(path)


if __name__ == "__main__":
    main()
