"""Puts this exercise's folder first on sys.path and registers the grading markers."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line("markers", "task(id): the graded task this test belongs to")
    config.addinivalue_line("markers", "instructor: an instructor-only test")
