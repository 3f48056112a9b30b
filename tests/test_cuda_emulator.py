"""The CUDA emulator itself: real barriers, the checker (MINIDL_CUDA_CHECK), printf, atomics,
OS threads, launch errors, and how MINIDL_CUDA picks a build.

The demo kernels live in csrc/cuda/demos.cu: a block reduction, the same kernel with one
__syncthreads() left out, and a kernel without its `if (i < n)` guard.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from cuda_helpers import dev, emulated_only, host, load_or_skip

load_or_skip()

from minidl.backend.cuda import kernels as ck  # noqa: E402
from minidl.backend.cuda import runtime  # noqa: E402
from minidl.backend.cuda.array import DeviceArray  # noqa: E402

pytestmark = emulated_only()


@pytest.fixture
def checking():
    runtime.set_checking(True)
    yield
    runtime.set_checking(False)


def block_sum(name, x):
    out = DeviceArray.zeros(1)
    rc = getattr(runtime.lib(), name)(x._ptr(), out._ptr(), x.size)
    return rc, out


def test_a_missing_barrier_gives_a_wrong_sum_without_the_checker():
    x = dev(np.arange(1000))
    rc, out = block_sum("mdc_demo_block_sum", x)
    runtime.check(rc, "block_sum")
    assert host(out)[0] == 499500.0
    rc, out = block_sum("mdc_demo_block_sum_missing_barrier", x)
    runtime.check(rc, "block_sum_missing_barrier")
    # Fibers run in thread order: thread 0 reads partial[64], [32], ... before their owners add
    # into them, so the barrier really is missing (this is deterministic on the emulator).
    assert host(out)[0] != 499500.0


def test_checker_reports_the_race_naming_the_shared_array(checking):
    rc, _ = block_sum("mdc_demo_block_sum_missing_barrier", dev(np.arange(1000)))
    with pytest.raises(runtime.CudaCheckError) as err:
        runtime.check(rc, "block_sum_missing_barrier")
    message = str(err.value)
    assert "race on __shared__ array `partial`" in message
    assert "no __syncthreads() between" in message
    assert "in kernel `block_sum_missing_barrier_kernel`, thread (1,0,0) of block (0,0,0)" in message
    assert "after thread (0,0,0) read it" in message


def test_checker_is_quiet_on_the_correct_kernel(checking):
    rc, out = block_sum("mdc_demo_block_sum", dev(np.arange(1000)))
    runtime.check(rc, "block_sum")
    assert host(out)[0] == 499500.0


def test_checker_reports_an_out_of_bounds_write_with_its_thread(checking):
    out = DeviceArray.zeros(1000)
    rc = runtime.lib().mdc_demo_write_past_end(out._ptr(), 1000)  # grid of 8 x 128 threads for 1000 items
    with pytest.raises(runtime.CudaCheckError) as err:
        runtime.check(rc, "write_past_end")
    message = str(err.value)
    assert (
        "out-of-bounds write of 4 bytes in global array `out`: element 1000, but it holds 1000 elements "
        "of 4 bytes in kernel `write_index_kernel`, thread (104,0,0) of block (7,0,0)" in message
    )
    assert "element 1023" in message or "and 4 more" in message  # all 24 extra threads are reported
    np.testing.assert_array_equal(host(out), np.arange(1000, dtype=np.float32))  # the bad writes were dropped


def test_no_false_alarms_from_the_kernels(checking):
    """Every kernel family runs clean under the checker (no race, no bad access)."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((33, 17)).astype(np.float32), rng.standard_normal((17, 40)).astype(np.float32)
    for stage in ck.GEMM_STAGES:
        ck.matmul(dev(a), dev(b), stage=stage)
    x = dev(rng.standard_normal((37, 300)))
    ck.sum(x, axis=1), ck.sum(x, axis=0), ck.max(x), ck.sum(dev(rng.standard_normal(20000)))
    ck.softmax(x), ck.cross_entropy_forward(x, dev(rng.integers(0, 300, 37), np.int64))
    img = dev(rng.standard_normal((2, 3, 9, 7)))
    ck.col2im(ck.im2col(img, 3, 3, 2, 1), (2, 3, 9, 7), 3, 3, 2, 1)
    out, arg = ck.max_pool2d_forward(img, 2, 2, 1)
    ck.max_pool2d_backward(out, arg, (2, 3, 9, 7), 2, 2, 1)
    ck.scatter_add((5, 3), dev([1, 1, 4], np.int64), dev(np.ones((3, 3))))
    assert runtime.take_reports() == []


def test_printf_inside_a_kernel(capfd):
    runtime.check(runtime.lib().mdc_demo_printf(2, 40), "printf demo")
    lines = capfd.readouterr().out.splitlines()
    assert len(lines) == 80
    assert "hello from thread 33 of block 1 (lane 1 of warp 1)" in lines


@pytest.mark.parametrize("os_threads", [1, 2])
def test_atomics_count_every_thread(os_threads):
    runtime.set_emulator_threads(os_threads)
    try:
        counter = DeviceArray.zeros(1, np.int32)
        runtime.check(runtime.lib().mdc_demo_atomic_count(counter._ptr("int *"), 37, 129), "atomic count")
        assert host(counter)[0] == 37 * 129
    finally:
        runtime.set_emulator_threads(1)


def test_blocks_on_two_os_threads_give_the_same_result():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((200, 64)).astype(np.float32), rng.standard_normal((64, 300)).astype(np.float32)
    one = host(ck.matmul(dev(a), dev(b), stage="blocktile_2d"))
    runtime.set_emulator_threads(2)
    try:
        two = host(ck.matmul(dev(a), dev(b), stage="blocktile_2d"))
    finally:
        runtime.set_emulator_threads(1)
    np.testing.assert_array_equal(one, two)  # every output has one owner thread: same order, same bits


def test_a_launch_a_gpu_would_refuse_is_an_error():
    rc = runtime.lib().mdc_demo_printf(1, 2000)  # 2000 threads per block > 1024
    with pytest.raises(runtime.CudaError, match="invalid configuration argument"):
        runtime.check(rc, "printf demo")


def _run(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_minidl_cuda_selects_the_build():
    code = "from minidl.backend.cuda import runtime; print(runtime.build())"
    off = _run(code, MINIDL_CUDA="off")
    assert off.returncode != 0 and "CUDA is turned off (MINIDL_CUDA=off)" in off.stderr
    real = _run(code, MINIDL_CUDA="real")  # no GPU on this machine: the reason, not a crash
    assert real.returncode != 0 and "MINIDL_CUDA=real:" in real.stderr
    auto = _run(code, MINIDL_CUDA="auto")
    assert auto.stdout.strip() == "emulated"
    assert auto.stderr.count("runs on the CUDA emulator") == 1  # said once, with the reason
    quiet = _run(code, MINIDL_CUDA="emulate")
    assert quiet.stdout.strip() == "emulated" and "emulator" not in quiet.stderr


def test_check_env_variable_turns_the_checker_on():
    code = (
        "import numpy as np\n"
        "from minidl.backend.cuda import runtime, DeviceArray\n"
        "out = DeviceArray.zeros(10)\n"
        "rc = runtime.lib().mdc_demo_write_past_end(out._ptr(), 10)\n"
        "runtime.check(rc, 'demo')\n"
    )
    result = _run(code, MINIDL_CUDA="emulate", MINIDL_CUDA_CHECK="1")
    assert "CudaCheckError" in result.stderr and "thread (10,0,0) of block (0,0,0)" in result.stderr
