"""The `minidl` command: the default job's accuracy, exact resume after SIGKILL, every option, and clean errors.

Also the command's guidance (issue 9): exit codes, one-line messages naming flags and
environment variables, no empty run folders, Ctrl-C's resume command, resuming a finished
run, `--quiet`, progress off a terminal and the divergence advice. The library underneath,
minidl.training, has its own tests (tests/test_training.py). The main-job tests run the real
console script in a subprocess. Timings are never asserted.
"""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minidl import checkpoint
from minidl.cli import main


def minidl_command():
    """The installed console script if it is on PATH, else `python -m minidl` (same entry point)."""
    script = shutil.which("minidl")
    return [script] if script else [sys.executable, "-m", "minidl"]


def run_cli(*args, timeout=600, cwd=None):
    return subprocess.run(minidl_command() + list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd)


def checkpoint_arrays(path):
    """Every array in a checkpoint (model parameters/buffers and optimizer state), by name."""
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files if name != "meta"}


# ---------------------------------------------------------------------------
# The main job
# ---------------------------------------------------------------------------
def test_default_training_reaches_97_percent_on_digits(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97, metrics
    assert {"test_accuracy", "train_loss", "epochs", "seconds"} <= set(metrics)
    assert metrics["settings"]["model"] == "cnn" and metrics["settings"]["dataset"] == "digits"
    assert metrics["train_loss"] < metrics["history"]["train_loss"][0]
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert checkpoint.read(out / "checkpoint.npz")["step"] == metrics["epochs"]
    # stderr is a pipe here, not a terminal: one progress line per epoch instead of a redrawn bar
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == [f"epoch {i}/15" for i in range(1, 16)]
    assert "\r" not in result.stderr and "loss " in epoch_lines[0] and "test acc " in epoch_lines[0]
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_same_weights(tmp_path):
    common = ["--epochs", "8", "--seed", "3", "--quiet", "--no-plot"]
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    assert run_cli("train", "--out", str(uninterrupted), *common).returncode == 0

    process = subprocess.Popen(minidl_command() + ["train", "--out", str(interrupted), *common])
    saved = interrupted / "checkpoint.npz"
    deadline = time.monotonic() + 300
    while not saved.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = checkpoint.read(saved)["step"]
    assert killed_at < 8, "the run finished before it could be killed"
    assert not (interrupted / "metrics.json").exists()

    resumed = run_cli("train", "--resume", str(saved), "--quiet", "--no-plot")
    assert resumed.returncode == 0, resumed.stderr
    expected, actual = checkpoint_arrays(uninterrupted / "checkpoint.npz"), checkpoint_arrays(saved)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    metrics = json.loads((interrupted / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == killed_at
    assert metrics["test_accuracy"] == json.loads((uninterrupted / "metrics.json").read_text())["test_accuracy"]


def test_info_reports_versions_kernels_blas_and_cuda_each_once():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("minidl 0.1.0 (python ")
    assert "kernels in use:" in result.stdout and "numpy" in result.stdout
    assert "BLAS:" in result.stdout
    cuda = [line for line in lines if line.startswith("CUDA: ")]
    assert len(cuda) == 1 and cuda[0].split(": ", 1)[1].split()[0] in ("real", "emulated", "not")
    if "CUDA: emulated" in result.stdout:
        assert "device: emulated" in result.stdout and "compiled_for: emulated" in result.stdout
    for fact in ("kernels in use", "CUDA:", "malloc", "SIMD path", "active_kernels", "cuda_available"):
        assert sum(fact.lower() in line.lower() for line in lines) <= 1, (fact, lines)
    assert len(set(lines)) == len(lines)


# ---------------------------------------------------------------------------
# Bad input: one line on stderr, non-zero exit, never a traceback
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,expected",
    [
        (["train", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
        (["train", "--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
        (["train", "--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "/nonexistent/mnist does not contain"),
    ],
)
def test_bad_input_through_the_real_command(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr


def write_idx_gz(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_a_corrupt_gzip_data_file_is_a_one_line_error(tmp_path):
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    for prefix, n in (("train", 8), ("t10k", 4)):
        write_idx_gz(data_dir / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        write_idx_gz(data_dir / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(n))
    images = data_dir / "train-images-idx3-ubyte.gz"
    garbled = bytearray(images.read_bytes())
    garbled[12:40] = bytes(b ^ 0xFF for b in garbled[12:40])  # the gzip header stays valid, the data does not
    images.write_bytes(bytes(garbled))
    result = run_cli("train", "--dataset", "mnist", "--data-dir", str(data_dir), "--quiet", "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --dataset mnist: read_idx: cannot read"), result.stderr
    assert "train-images-idx3-ubyte.gz" in lines[0]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["train", "--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["train", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["train", "--lr", "-1"], "--lr must be a positive number, got -1.0"),
        (["train", "--lr", "nan"], "--lr must be a positive number"),
        (["train", "--momentum", "1.5"], "--momentum must be in [0, 1)"),
        (["train", "--lr-decay", "1000"], "--lr-decay must be a number in [0, 50], got 1000.0"),
        (["train", "--lr-decay", "inf"], "--lr-decay must be a number in [0, 50], got inf"),
        (["train", "--lr-decay", "nan"], "--lr-decay must be a number in [0, 50], got nan"),
        (["train", "--weight-decay", "inf"], "--weight-decay must be a number >= 0, got inf"),
        (["train", "--dropout", "1"], "--dropout must be in [0, 1)"),
        (["train", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
        (["train", "--dataset", "mnist"], "--dataset mnist needs --data-dir"),
        (["train", "--dataset", "spirals"], "--dataset spirals is 2-D points, not images: use --model mlp"),
        (
            ["train", "--resume", "/nonexistent/checkpoint.npz"],
            "--resume: checkpoint /nonexistent/checkpoint.npz does not",
        ),
        (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_bad_options_are_one_line_errors(args, expected, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], captured.err


def test_bad_resume_and_output_paths_are_one_line_errors(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    assert main(["train", "--resume", str(corrupt)]) == 2
    assert "cannot be read" in capsys.readouterr().err
    foreign = tmp_path / "foreign.npz"
    checkpoint.save(foreign, extra={})
    assert main(["train", "--resume", str(foreign)]) == 2
    assert "was not written by `minidl train`" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["train", "--out", str(a_file / "sub"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out") and len(err.splitlines()) == 1


@pytest.mark.parametrize("blocked", ["checkpoint.npz", "metrics.json"])
def test_an_output_file_that_cannot_be_written_is_a_one_line_error(tmp_path, capsys, blocked):
    out = tmp_path / "run"
    (out / blocked).mkdir(parents=True)  # a directory where the file should go: IsADirectoryError
    args = ["train", "--model", "mlp", "--dataset", "moons", "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(args + ["--no-plot"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Is a directory" in lines[0], lines
    assert blocked in lines[0]


def test_resume_refuses_to_change_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--dataset", "moons", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--optimizer", "adam"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --resume: the checkpoint was trained with --optimizer momentum; "
        "it cannot continue with --optimizer adam"
    )


# ---------------------------------------------------------------------------
# Other models, data sets and options (short runs, in-process)
# ---------------------------------------------------------------------------
def train_in_process(tmp_path, *args):
    out = tmp_path / "run"
    os.makedirs(tmp_path, exist_ok=True)
    assert main(["train", "--out", str(out), "--quiet", "--no-plot", *args]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "rmsprop", "adam"])
def test_every_optimizer_learns_the_moons(tmp_path, optimizer):
    metrics = train_in_process(
        tmp_path, "--model", "mlp", "--dataset", "moons", "--optimizer", optimizer, "--epochs", "6"
    )
    assert metrics["test_accuracy"] > 0.8, metrics["history"]


@pytest.mark.parametrize("dataset", ["spirals", "blobs"])
def test_mlp_on_generated_points(tmp_path, dataset):
    metrics = train_in_process(tmp_path, "--model", "mlp", "--dataset", dataset, "--epochs", "20", "--lr", "0.1")
    assert metrics["test_accuracy"] > 0.7  # chance is 1/3


def test_lstm_reads_digits_row_by_row(tmp_path):
    metrics = train_in_process(tmp_path, "--model", "lstm", "--epochs", "2")  # its recipe: Adam, lr 0.01
    assert metrics["settings"]["optimizer"] == "adam" and metrics["test_accuracy"] > 0.5  # chance is 0.1


def test_averaging_clipping_weight_decay_and_dropout_options(tmp_path):
    metrics = train_in_process(
        tmp_path, "--model", "mlp", "--epochs", "3", "--average", "ema", "--clip-grad-norm", "1.0",
        "--weight-decay", "1e-4", "--dropout", "0.2", "--lr-decay", "0",
    )  # fmt: skip
    assert metrics["settings"]["average"] == "ema" and metrics["test_accuracy"] > 0.5
    assert metrics["history"]["lr"] == [0.1, 0.1, 0.1]  # the mlp recipe's α₀, kept by --lr-decay 0


def test_mnist_from_a_data_dir(tmp_path):
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 16)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            (data_dir / (name + ".gz")).write_bytes(gzip.compress(header + array.tobytes()))
    metrics = train_in_process(tmp_path, "--dataset", "fashion-mnist", "--data-dir", str(data_dir), "--epochs", "1")
    assert metrics["settings"]["dataset"] == "fashion-mnist" and 0 <= metrics["test_accuracy"] <= 1


# ---------------------------------------------------------------------------
# A command line that guides (issue 9, item 4)
# ---------------------------------------------------------------------------
def write_mnist(data_dir, n_train=64, n_test=16):
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx_gz(data_dir / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx_gz(data_dir / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


def one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_failed_run_leaves_no_empty_runs_folder(tmp_path):
    # Fails before anything is written: the data is missing...
    missing = run_cli("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nothing"), cwd=tmp_path)
    assert missing.returncode == 2 and "does not contain" in one_error_line(missing.stderr)
    # ...or the loss becomes NaN in the first epoch, after runs/<time>/ was made.
    diverged = run_cli("train", "--model", "mlp", "--lr", "1000", "--no-plot", cwd=tmp_path)
    assert diverged.returncode == 1 and "the loss became" in diverged.stderr
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)


def test_ctrl_c_prints_the_checkpoint_to_resume_from_and_resuming_it_works(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        minidl_command() + ["train", "--model", "mlp", "--epochs", "1000", "--no-plot", "--out", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.npz").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=300)[1]
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    command = stderr.strip().splitlines()[-1]  # the last line, on its own: the command to continue with
    assert command.startswith("minidl train --resume "), stderr
    resume_from = command.split(maxsplit=3)[3]
    assert resume_from == str(out / "checkpoint.npz")
    stopped_at = checkpoint.read(resume_from)["step"]
    assert 1 <= stopped_at < 1000 and not (out / "metrics.json").exists()

    resumed = run_cli("train", "--resume", resume_from, "--epochs", str(stopped_at + 1), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == stopped_at and metrics["epochs"] == stopped_at + 1


def test_resuming_a_finished_run_says_so_and_leaves_metrics_alone(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *MOONS, "--epochs", "2", "--out", str(out), "--quiet", "--no-plot"]) == 0
    metrics_before = (out / "metrics.json").read_bytes()
    checkpoint_before = (out / "checkpoint.npz").read_bytes()
    result = run_cli("train", "--resume", str(out / "checkpoint.npz"))
    assert result.returncode == 0, result.stderr
    assert "already trained its 2 epochs" in result.stderr and "nothing to do" in result.stderr
    assert "--epochs N" in result.stderr and "epoch 1/" not in result.stderr
    assert (out / "metrics.json").read_bytes() == metrics_before
    assert (out / "checkpoint.npz").read_bytes() == checkpoint_before


MOONS = ("--model", "mlp", "--dataset", "moons")


@pytest.mark.parametrize(
    "variable,value,how",
    [
        ("MINIDL_KERNELS", "fast", "script"),
        ("MINIDL_KERNELS", "fast", "module"),
        ("MINIDL_SIMD", "sse9", "script"),
    ],
)
def test_a_bad_kernel_environment_variable_is_one_line_naming_it_and_its_valid_values(variable, value, how):
    from minidl import backend

    if variable == "MINIDL_SIMD" and "c" not in backend.available_kernels():
        pytest.skip("MINIDL_SIMD is read by the C kernels, which are not built here")
    command = minidl_command() if how == "script" else [sys.executable, "-m", "minidl"]
    result = subprocess.run(
        command + ["train"], capture_output=True, text=True, timeout=300, env={**os.environ, variable: value}
    )
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: {variable}={value}: ")
    valid = ["numpy", "c", "auto"] if variable == "MINIDL_KERNELS" else ["scalar", "avx2", "avx512", "neon"]
    named = line.split(f"{variable}={value}: ", 1)[1]
    assert all(re.search(rf"\b{v}\b", named) for v in valid), line
    # A program importing minidl still gets the exception itself.
    program = subprocess.run(
        [sys.executable, "-c", "import minidl"], capture_output=True, text=True, env={**os.environ, variable: value}
    )
    assert program.returncode == 1 and value in program.stderr and "Traceback" in program.stderr


def test_mnist_errors_name_the_command_line_flags(tmp_path):
    result = run_cli("train", "--dataset", "mnist", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: --data-dir {tmp_path} does not contain train-images-idx3-ubyte")
    assert "use --download to fetch them from https://ossci-datasets.s3.amazonaws.com/mnist/" in line
    assert "download=True" not in line and "data_dir" not in line


def test_download_without_a_mirror_says_where_it_downloads_from(tmp_path):
    write_mnist(tmp_path / "mnist")  # every file is there already: nothing is actually downloaded
    result = run_cli(
        "train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--download", "--epochs", "1",
        "--no-plot", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--download: missing mnist files come from https://ossci-datasets.s3.amazonaws.com/mnist/" in result.stderr


def test_quiet_prints_only_the_output_folder(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", *MOONS, "--epochs", "2", "--no-plot", "--quiet", "--out", str(out))
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"{out}\n"
    default = run_cli("train", *MOONS, "--epochs", "1", "--no-plot", "--quiet", cwd=tmp_path)
    folder = default.stdout.strip()
    assert folder.startswith("runs" + os.sep) and (tmp_path / folder / "metrics.json").exists()


def test_progress_is_one_line_per_epoch_when_stderr_is_not_a_terminal(tmp_path):
    result = run_cli("train", *MOONS, "--epochs", "3", "--no-plot", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "\r" not in result.stderr
    assert lines[0].startswith("training mlp on moons (") and lines[-1].startswith("test accuracy ")


def test_a_nan_loss_is_one_line_with_the_lectures_advice_before_any_numpy_warning(tmp_path):
    result = run_cli("train", *MOONS, "--lr", "1e6", "--no-plot", "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the loss became" in errors[0], result.stderr
    assert "keep calm and lower your learning rate, e.g. --lr 100000.0 (this run: --lr 1000000.0)" in errors[0]
    assert "RuntimeWarning" not in result.stderr and "overflow" not in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_a_growing_loss_is_one_warning_line_naming_the_lr_flag(tmp_path, monkeypatch, capsys):
    from minidl.training import loop

    losses = iter([1.0, 1.1, 1.2, 1.3, 1.4])
    monkeypatch.setattr(loop, "train_one_epoch", lambda *a, **k: (next(losses), 0.5))
    assert main(["train", *MOONS, "--epochs", "5", "--lr", "0.5", "--no-plot", "--out", str(tmp_path / "run")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warned == [
        "warning: the training loss grew for 3 epochs in a row (1 -> 1.1 -> 1.2 -> 1.3): keep calm and lower "
        "your learning rate, e.g. --lr 0.05 (this run: --lr 0.5)"
    ]


def test_no_fuse_trains_the_same_model_unfused(tmp_path):
    fused = train_in_process(tmp_path / "a", *MOONS, "--epochs", "2")
    unfused = train_in_process(tmp_path / "b", *MOONS, "--epochs", "2", "--no-fuse")
    assert fused["fused"] is True and unfused["fused"] is False
    # Fusion changes how the forward pass runs (one op instead of two), not what it computes.
    np.testing.assert_allclose(unfused["history"]["train_loss"], fused["history"]["train_loss"], rtol=1e-5)
