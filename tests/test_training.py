"""minidl.training, the library behind `minidl train`: fit, recipes, resume, divergence, progress and plots.

Short runs on small data (moons, digits); accuracies are asserted with margins below what the
recipes measure (README's table), never timings.
"""

import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import minidl
from minidl import checkpoint, data, nn, training
from minidl.training import loop

MOONS = dict(model="mlp", dataset="moons")


def weights(model):
    return {name: np.array(getattr(value, "data", value)) for name, value in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ---------------------------------------------------------------------------
# Defaults that work
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("model,at_least", [("mlp", 0.95), ("lstm", 0.95)])
def test_each_models_defaults_train_to_a_sensible_accuracy(model, at_least):
    # Measured with the recipes: mlp 0.97-0.99, lstm 0.98 (cnn: tests/test_cli.py's main job).
    result = training.fit(model=model)
    assert result.config.epochs == training.RECIPES[model]["epochs"]
    assert result.test_accuracy >= at_least, result.history["test_accuracy"]


def test_one_epoch_of_the_lstm_is_well_above_chance():
    # Its old default (SGD with momentum) scored 0.078 after one epoch: below chance (0.1).
    result = training.fit(model="lstm", epochs=1)
    assert result.config.optimizer == "adam"
    assert result.test_accuracy > 0.3, result.history


def test_settings_left_out_come_from_the_models_recipe_or_the_optimizers_default():
    lstm = training.TrainingConfig(model="lstm").resolved()
    assert (lstm.optimizer, lstm.lr, lstm.epochs) == ("adam", 0.01, 10)
    picked = training.TrainingConfig(model="cnn", optimizer="adam").resolved()
    assert picked.lr == training.OPTIMIZER_LR["adam"]
    assert training.TrainingConfig(model="mlp", optimizer="momentum").resolved().lr == training.RECIPES["mlp"]["lr"]
    assert training.TrainingConfig(lr=0.2).resolved().lr == 0.2


# ---------------------------------------------------------------------------
# fit: results, files, resume
# ---------------------------------------------------------------------------
def test_fit_returns_the_model_history_and_metrics_and_writes_nothing_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = training.fit(**MOONS, epochs=3)
    assert os.listdir(tmp_path) == []
    assert isinstance(result.model, nn.Module) and result.out is None and result.checkpoint is None
    assert len(result.history["train_loss"]) == 3 and result.epochs == result.trained_epochs == 3
    assert result.test_accuracy == result.history["test_accuracy"][-1] > 0.8
    assert result.metrics["settings"]["model"] == "mlp" and result.metrics["fused"] is True
    x, _ = data.moons(seed=0)[0]
    assert result.model(minidl.tensor(x[None])).shape == (1, 2)


def test_fit_with_out_writes_a_checkpoint_metrics_and_a_titled_plot(tmp_path):
    out = tmp_path / "run"
    result = training.fit(**MOONS, epochs=2, out=out)
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "metrics.json", "training_curves.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert checkpoint.read(out / "checkpoint.npz")["step"] == 2
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_interrupted_fit_resumes_to_the_same_weights(tmp_path):
    uninterrupted = training.fit(**MOONS, epochs=4, out=tmp_path / "a", plot=False)

    class StopInEpoch3(training.Callback):
        def on_batch_end(self, epoch, batch, loss, accuracy):
            if epoch == 3 and batch == 2:
                raise KeyboardInterrupt

    with pytest.raises(training.TrainingInterrupted) as stopped:
        training.fit(**MOONS, epochs=4, out=tmp_path / "b", plot=False, callbacks=[StopInEpoch3()])
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert stopped.value.epoch == 2 and stopped.value.checkpoint == str(tmp_path / "b" / "checkpoint.npz")
    assert stopped.value.result.history["train_loss"] == uninterrupted.history["train_loss"][:2]
    assert not (tmp_path / "b" / "metrics.json").exists()

    resumed = training.fit(resume=stopped.value.checkpoint, plot=False)
    assert resumed.resumed_from_epoch == 2 and resumed.trained_epochs == 2 and resumed.epochs == 4
    assert_same_weights(weights(resumed.model), weights(uninterrupted.model))
    assert resumed.history == uninterrupted.history


def test_an_interrupt_before_the_first_checkpoint_leaves_no_folder(tmp_path):
    class StopAtOnce(training.Callback):
        def on_batch_end(self, epoch, batch, loss, accuracy):
            raise KeyboardInterrupt

    out = tmp_path / "runs" / "now"
    with pytest.raises(training.TrainingInterrupted) as stopped:
        training.fit(**MOONS, out=out, callbacks=[StopAtOnce()])
    assert stopped.value.checkpoint is None and stopped.value.epoch == 0
    assert os.listdir(tmp_path) == []  # runs/now and runs were made by fit, and removed again


def test_resuming_a_finished_run_trains_and_evaluates_nothing_and_leaves_its_files_alone(tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = training.fit(**MOONS, epochs=2, out=out)
    files = {name: (out / name).read_bytes() for name in os.listdir(out)}
    evaluations = []
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: evaluations.append(1) or 0.0)

    again = training.fit(resume=out / "checkpoint.npz")
    assert again.already_finished and again.trained_epochs == 0 and evaluations == []
    assert again.test_accuracy == first.test_accuracy and again.history == first.history
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == files


def test_the_last_epochs_test_accuracy_is_not_computed_twice(tmp_path, monkeypatch):
    evaluations, real_evaluate = [], loop.evaluate

    def counting_evaluate(*args, **kwargs):
        evaluations.append(real_evaluate(*args, **kwargs))
        return evaluations[-1]

    monkeypatch.setattr(loop, "evaluate", counting_evaluate)
    result = training.fit(**MOONS, epochs=2, out=tmp_path / "run")
    assert len(evaluations) == 2  # once per epoch; the final accuracy is the last epoch's
    assert result.test_accuracy == result.history["test_accuracy"][-1] == evaluations[-1]
    extra = checkpoint.read(tmp_path / "run" / "checkpoint.npz")["extra"]
    assert extra["settings"]["epochs"] == 2 and "settings_epochs" not in extra  # stored once


def test_resume_checks_the_settings_it_is_given_against_the_checkpoint(tmp_path):
    training.fit(**MOONS, epochs=1, out=tmp_path / "run")
    with pytest.raises(training.TrainingError) as error:
        training.fit(resume=tmp_path / "run" / "checkpoint.npz", optimizer="adam")
    assert str(error.value) == (
        "resume: the checkpoint was trained with optimizer='momentum'; it cannot continue with optimizer='adam'"
    )
    longer = training.fit(resume=tmp_path / "run" / "checkpoint.npz", model="mlp", epochs=2, plot=False)
    assert longer.epochs == 2 and longer.resumed_from_epoch == 1


# ---------------------------------------------------------------------------
# Errors speak Python here (the command line's flags are tested in test_cli.py)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(epochs=0), "epochs must be >= 1, got 0"),
        (dict(epochs=2.5), "epochs must be an integer >= 1, got 2.5"),
        (dict(lr=-1.0), "lr must be a positive number, got -1.0"),
        (dict(lr_decay=float("nan")), "lr_decay must be a number in [0, 50], got nan"),
        (dict(model="resnet"), "model must be one of 'mlp', 'cnn', 'lstm', got 'resnet'"),
        (dict(dataset="spirals"), "dataset='spirals' is 2-D points, not images: use model='mlp'"),
        (dict(dataset="mnist"), "dataset='mnist' needs data_dir (a folder with the IDX files) or download=True"),
    ],
)
def test_bad_settings_are_training_errors_in_python_terms(settings, message):
    with pytest.raises(training.TrainingError) as error:
        training.fit(**settings)
    assert str(error.value) == message


def test_an_unknown_setting_is_a_type_error_listing_the_settings():
    with pytest.raises(TypeError, match="unknown setting.* learning_rate; settings are model, dataset"):
        training.fit(learning_rate=0.1)


def test_mnist_errors_name_the_api_arguments(tmp_path):
    with pytest.raises(training.TrainingError) as error:
        training.fit(dataset="mnist", data_dir=tmp_path)
    text = str(error.value)
    assert text.startswith(f"data_dir={str(tmp_path)!r} does not contain train-images-idx3-ubyte")
    assert "download=True" in text and "https://ossci-datasets.s3.amazonaws.com/mnist/" in text and "--" not in text
    with pytest.raises(data.MissingFilesError) as error:
        data.mnist(tmp_path, kind="fashion")
    assert "pass download=True" in str(error.value) and "--" not in str(error.value)
    assert error.value.url == training.default_mirror("fashion-mnist") and error.value.root == tmp_path


# ---------------------------------------------------------------------------
# Watching the loss
# ---------------------------------------------------------------------------
def test_a_nan_loss_stops_training_with_the_lectures_advice_and_no_numpy_warnings(tmp_path):
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught, pytest.raises(training.DivergedError) as error:
        warnings.simplefilter("always")
        training.fit(**MOONS, lr=1e6, out=out)
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []
    message = str(error.value)
    assert "the loss became" in message and "lower your learning rate, e.g. lr=100000.0" in message
    assert error.value.epoch == 1 and error.value.checkpoint is None
    assert not out.exists()  # nothing was written, so the folder fit made is gone


def test_a_loss_growing_for_several_epochs_is_flagged_once(monkeypatch):
    losses = iter([1.0, 0.9, 1.0, 1.1, 1.2, 1.3])
    monkeypatch.setattr(loop, "train_one_epoch", lambda *a, **k: (next(losses), 0.5))
    with pytest.warns(training.DivergenceWarning) as caught:
        training.fit(**MOONS, epochs=6, lr=0.3)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "the training loss grew for 3 epochs in a row (0.9 -> 1 -> 1.1 -> 1.2): keep calm and lower your "
        "learning rate, e.g. lr=0.03 (this run: lr=0.3)"
    )


def test_loss_is_growing_and_lower_lr():
    assert training.loss_is_growing([3, 2, 2.5, 2.6, 2.7])
    assert not training.loss_is_growing([3, 2, 2.5, 2.4, 2.7])
    assert not training.loss_is_growing([1, 2, 3])  # 3 rises need 4 epochs
    assert training.lower_lr(0.05) == 0.005 and training.lower_lr(0.3) == 0.03 and training.lower_lr(7e-3) == 0.0007


# ---------------------------------------------------------------------------
# Progress, callbacks, fusion, plots
# ---------------------------------------------------------------------------
def test_callbacks_see_every_epoch_and_batch_and_the_end():
    seen = []

    class Recorder(training.Callback):
        def on_fit_start(self, info):
            seen.append(("start", info["epochs"], info["batches"]))

        def on_epoch_start(self, epoch, epochs, batches):
            seen.append(("epoch", epoch))

        def on_batch_end(self, epoch, batch, loss, accuracy):
            seen.append("batch")

        def on_epoch_end(self, epoch, stats):
            seen.append(("done", epoch, round(stats["train_loss"], 12)))

        def on_fit_end(self):
            seen.append("end")

    result = training.fit(**MOONS, epochs=2, batch_size=100, callbacks=[Recorder()])
    losses = [round(v, 12) for v in result.history["train_loss"]]
    assert seen == [("start", 2, 3), ("epoch", 1), "batch", "batch", "batch", ("done", 1, losses[0]),
                    ("epoch", 2), "batch", "batch", "batch", ("done", 2, losses[1]), "end"]  # fmt: skip


def test_progress_off_a_terminal_is_one_line_per_epoch_and_a_bar_on_one():
    lines = io.StringIO()
    training.fit(**MOONS, epochs=3, progress=training.ProgressBar(lines))
    printed = lines.getvalue().splitlines()
    assert len(printed) == 3 and all(line.startswith(f"epoch {i}/3: loss ") for i, line in enumerate(printed, 1))
    bar = io.StringIO()
    training.fit(**MOONS, epochs=1, progress=training.ProgressBar(bar, bar=True))
    assert "\r" in bar.getvalue() and "loss=" in bar.getvalue() and "test=" in bar.getvalue()


def test_fusion_keeps_the_parameters_and_can_be_turned_off():
    model = training.make_model("mlp", (2,), 2)
    fused = training.apply_fusion(model, fuse=True)
    assert {id(p) for p in fused.parameters()} == {id(p) for p in model.parameters()}
    result = training.fit(**MOONS, epochs=2, fuse=False)
    assert result.metrics["fused"] is False and result.test_accuracy > 0.8


def test_make_model_builds_each_network_for_the_digits():
    x = minidl.tensor(np.zeros((5, 1, 8, 8), dtype=np.float32))
    for name in training.MODELS:
        assert training.make_model(name)(x).shape == (5, 10), name
    with pytest.raises(training.TrainingError, match="model='lstm' reads single-channel images"):
        training.make_model("lstm", input_shape=(3, 8, 8))


def test_plot_history_titles_the_run_uses_a_log_loss_axis_and_whole_epochs():
    history = {"train_loss": [2.2], "train_accuracy": [0.3], "test_accuracy": [0.4]}
    figure = training.plot_history(history, title="cnn on digits: test accuracy 40.00%")
    loss_axes, accuracy_axes = figure.axes
    assert figure._suptitle.get_text() == "cnn on digits: test accuracy 40.00%"
    assert loss_axes.get_yscale() == "log"
    figure.canvas.draw()
    for axes in (loss_axes, accuracy_axes):
        visible = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
        assert visible == [1.0], visible  # one epoch: one tick, "1", not 0.6, 0.8, 1.0, 1.2
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_import_minidl_loads_neither_matplotlib_nor_tqdm():
    code = (
        "import sys, minidl; minidl.training.fit; print(sorted(m for m in ('matplotlib', 'tqdm') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
