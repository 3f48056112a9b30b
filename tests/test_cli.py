"""The `minidl` command: the default job's accuracy, exact resume after SIGKILL, every option, and clean errors.

The main-job tests run the real console script in a subprocess. Timings are never asserted.
"""

import gzip
import json
import os
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


def run_cli(*args, timeout=600):
    return subprocess.run(minidl_command() + list(args), capture_output=True, text=True, timeout=timeout)


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
    assert "epoch 1/" in result.stderr and "loss=" in result.stderr and "acc=" in result.stderr  # the progress bar
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.stderr
    assert "Traceback" not in result.stderr


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


def test_info_reports_versions_kernels_blas_and_cuda():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    assert "minidl 0.1.0" in result.stdout
    assert "kernels in use:" in result.stdout and "numpy" in result.stdout
    assert "BLAS:" in result.stdout
    cuda = [line for line in result.stdout.splitlines() if line.startswith("CUDA: ")]
    assert len(cuda) == 1 and cuda[0].split(": ", 1)[1].split()[0] in ("real", "emulated", "not")
    if "CUDA: emulated" in result.stdout:
        assert "device: emulated" in result.stdout and "compiled_for: emulated" in result.stdout


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
    metrics = train_in_process(tmp_path, "--model", "lstm", "--epochs", "2", "--optimizer", "adam", "--lr", "0.01")
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1


def test_averaging_clipping_weight_decay_and_dropout_options(tmp_path):
    metrics = train_in_process(
        tmp_path, "--model", "mlp", "--epochs", "3", "--average", "ema", "--clip-grad-norm", "1.0",
        "--weight-decay", "1e-4", "--dropout", "0.2", "--lr-decay", "0",
    )  # fmt: skip
    assert metrics["settings"]["average"] == "ema" and metrics["test_accuracy"] > 0.5
    assert metrics["history"]["lr"] == [0.05, 0.05, 0.05]


def test_the_last_epochs_test_accuracy_is_not_computed_twice(tmp_path, monkeypatch):
    from minidl import cli

    evaluations, real_evaluate = [], cli.evaluate

    def counting_evaluate(*args, **kwargs):
        evaluations.append(real_evaluate(*args, **kwargs))
        return evaluations[-1]

    monkeypatch.setattr(cli, "evaluate", counting_evaluate)
    metrics = train_in_process(tmp_path, "--model", "mlp", "--dataset", "moons", "--epochs", "2")
    assert len(evaluations) == 2  # once per epoch; the final accuracy is the last epoch's
    assert metrics["test_accuracy"] == metrics["history"]["test_accuracy"][-1] == evaluations[-1]
    extra = checkpoint.read(tmp_path / "run" / "checkpoint.npz")["extra"]
    assert extra["settings"]["epochs"] == 2 and "settings_epochs" not in extra  # stored once

    # Resuming a finished run trains nothing; its accuracy is measured afresh, on the saved weights.
    evaluations.clear()
    assert main(["train", "--resume", str(tmp_path / "run" / "checkpoint.npz"), "--quiet", "--no-plot"]) == 0
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(evaluations) == 1 and resumed["test_accuracy"] == metrics["test_accuracy"]
    assert resumed["epochs"] == 2 and resumed["history"] == metrics["history"]


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
