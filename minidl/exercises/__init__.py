"""Course exercises: read an exercise folder, write the student version, grade a student's copy.

An exercise is a folder `exercises/NN_topic/` with an `exercise.toml` (its name, title and
tasks with points), code with solution regions marked `BEGIN SOLUTION <task>` / `END
SOLUTION`, graded tests marked `@pytest.mark.task("<task>")` and `wrong/<task>/*` fixtures
(plausible wrong answers the tests must reject). `exercises/README.md` describes the format;
`minidl exercises release` (release.py) and `minidl grade` (grade.py) are built on spec.py.
"""

from minidl.exercises.spec import Exercise, ExerciseError, Region, Task, find_exercises, load_exercise

__all__ = ["Exercise", "ExerciseError", "Region", "Task", "find_exercises", "load_exercise"]
