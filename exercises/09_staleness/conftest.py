"""pytest set-up for this exercise: its own directory first on sys.path, and the grading markers."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line("markers", "task(id): the exercise task a graded test scores")
    config.addinivalue_line("markers", "instructor: a test kept out of the student release")
