"""Build script: the package metadata lives in pyproject.toml; this file only adds the C kernels.

The cffi extension (minidl/backend/_ckernels) is optional: if it cannot be built
(no C compiler), installation still succeeds and minidl runs on the NumPy kernels.
"""

from setuptools import setup

setup()
