"""`minidl exercises release DEST`: write the student version of exercises.

Each solution region becomes a stub (Python: `raise NotImplementedError("<exercise>.<task>:
<description>")`; C/CUDA: a TODO comment and the region's STUB line, so the file still
compiles). The wrong-answer fixtures (`wrong/`) and the instructor-only tests
(`tests/test_instructor_*.py`) are left out; everything else is copied as it is.
"""

import ast
import shutil
from pathlib import Path

from minidl.exercises.spec import ExerciseError, find_exercises, load_exercise, strip_regions

LEFT_OUT_DIRS = {"wrong", "__pycache__", ".pytest_cache", "build"}
LEFT_OUT_SUFFIXES = (".pyc", ".so", ".o", ".pyd")


def is_instructor_only(relative):
    """Files a student never sees: instructor tests and the wrong-answer fixtures."""
    parts = Path(relative).parts
    if LEFT_OUT_DIRS.intersection(parts[:-1]):
        return True
    name = parts[-1]
    return (len(parts) >= 2 and parts[-2] == "tests" and name.startswith("test_instructor_")) or name.endswith(
        LEFT_OUT_SUFFIXES
    )


def release_exercise(source, dest):
    """Write the student version of the exercise in `source` to the folder `dest` (must not exist).

    Returns the list of files written, relative to dest.
    """
    exercise = load_exercise(source)
    dest = Path(dest)
    if dest.exists():
        raise ExerciseError(f"{dest} already exists: release writes into a new folder")
    regions = exercise.regions()
    descriptions = {t.id: t.description for t in exercise.tasks}
    missing = sorted({t.id for t in exercise.tasks} - {r.task for r in regions})
    if missing:
        raise ExerciseError(f"{exercise.name}: tasks without a solution region: {', '.join(missing)}")
    written = []
    for path in sorted(exercise.path.rglob("*")):
        relative = path.relative_to(exercise.path)
        if not path.is_file() or is_instructor_only(relative):
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        in_file = [r for r in regions if r.path == relative]
        if in_file:
            text = strip_regions(path.read_text(), in_file, exercise.name, descriptions)
            if relative.suffix == ".py":
                try:
                    ast.parse(text, str(relative))
                except SyntaxError as e:  # e.g. a region at class level that a raise cannot stand in for
                    raise ExerciseError(f"{exercise.name}: the released {relative} does not parse: {e}") from None
            target.write_text(text)
            shutil.copymode(path, target)
        else:
            shutil.copy2(path, target)
        written.append(relative)
    return written


def release(dest, names=None, source_root=None):
    """Release the exercises `names` (all when None) from source_root into dest/<name>/.

    Returns {exercise folder name: number of files written}.
    """
    from minidl.exercises.spec import default_exercises_root

    root = Path(source_root) if source_root is not None else default_exercises_root()
    folders = {p.name: p for p in find_exercises(root)}
    if not folders:
        raise ExerciseError(f"{root}: no exercises (folders with an exercise.toml)")
    if names:
        unknown = [n for n in names if n not in folders]
        if unknown:
            raise ExerciseError(f"unknown exercise {', '.join(unknown)}; expected some of {', '.join(folders)}")
        folders = {n: folders[n] for n in names}
    return {name: len(release_exercise(path, Path(dest) / name)) for name, path in folders.items()}
