"""minidl.backend.memory: freed activation memory is kept for reuse instead of being re-faulted every step.

Measured in fresh interpreters (the setting is process-wide and made at import): allocating
and freeing a step's worth of big arrays (31 MiB) over and over costs page faults with
glibc's defaults, and none once minidl has tuned malloc. MINIDL_MALLOC_TUNING=0 leaves malloc alone.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

import minidl
from minidl.backend import memory

PROBE = """
import json, resource
import numpy as np
import minidl
from minidl.backend import memory
keep = np.ones(1 << 20, np.float32)  # something live below, as in a real process
def step():  # like a training step: several big arrays alive at once, then all freed
    arrays = [np.ones(n << 18, np.float32) for n in (8, 2, 6, 4, 8, 3)]  # 8, 2, 6, 4, 8, 3 MiB
    del arrays
for _ in range(3):  # warm up
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"tuned": memory.tuned, "faults_per_step": faults}))
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc tuning applies to glibc only; other C libraries are left alone by design",
)


def probe(tuning):
    env = dict(os.environ, MINIDL_MALLOC_TUNING=tuning)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_importing_minidl_keeps_freed_memory_for_reuse():
    tuned, untouched = probe("1"), probe("0")
    assert tuned["tuned"] is True and untouched["tuned"] is False
    pages = (31 << 20) // 4096  # touched per step
    assert untouched["faults_per_step"] > pages / 10  # glibc's default: fresh pages, step after step (2278 measured)
    assert tuned["faults_per_step"] < pages / 100  # kept: (almost) no faults


@glibc_only
def test_this_process_is_tuned_and_minidl_info_says_so():
    assert memory.tuned is (os.environ.get("MINIDL_MALLOC_TUNING", "1").strip() != "0")
    assert minidl.backend.describe()["malloc_tuned"] is memory.tuned
    assert memory.tune_malloc() is memory.tuned  # a second call changes nothing
