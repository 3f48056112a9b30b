"""Test-wide settings: a hypothesis profile sized for gradient checks on a small, busy machine,
and minidl's global random state restored after every test.

Gradient checks cost two forward passes per input element, so examples are kept few and
small; `deadline=None` because timings on shared cores are meaningless (and timing is
never what a test here asserts). Pick another profile with HYPOTHESIS_PROFILE=thorough.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import minidl

settings.register_profile(
    "minidl", deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("thorough", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "minidl"))


@pytest.fixture(autouse=True)
def _isolated_random_state():
    """Every test starts from the same generator state, whatever ran (or reseeded) before it."""
    state = minidl.random.get_rng_state()
    yield
    minidl.random.set_rng_state(state)


@pytest.fixture
def kernel_set():
    """A function that switches the cpu kernel set ("numpy" or "c") for one test; the original comes back after."""
    before = minidl.backend.kernels_name()
    yield minidl.backend.set_kernels
    minidl.backend.set_kernels(before)
