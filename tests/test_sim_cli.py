"""`minidl simulate`: named experiments and config files, their files, and one-line errors."""

import json
import subprocess
import sys

import pytest

from minidl.cli import main
from minidl.sim.experiments import EXPERIMENTS, run_experiment


def simulate(*args):
    return main(["simulate", *args])


def test_list_names_every_experiment(capsys):
    assert simulate("--list") == 0
    out = capsys.readouterr().out
    for name in ("sync-vs-async", "backup-workers", "staleness", "bounded-delay", "failures", "compression"):
        assert name in out and name in EXPERIMENTS


def test_a_named_experiment_writes_its_data_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    status = simulate("backup-workers", "--quick", "--workers", "3", "--backup", "1", "--updates", "15",
                      "--out", str(out))  # fmt: skip
    assert status == 0
    captured = capsys.readouterr()
    assert "E[X_(3:4)]" in captured.out  # the report: predicted and simulated step times
    assert "[1/3] b=0" in captured.err  # a progress bar per run
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "sim_backup_workers.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"]["workers"] == 3 and len(summary["runs"]) == 3
    header = (out / "history.csv").read_text().splitlines()[0]
    assert header == "run,time,updates,gradients,epochs,train_loss,train_accuracy,test_loss,test_accuracy"


def test_a_config_file_of_runs(tmp_path, capsys):
    config = tmp_path / "mine.json"
    config.write_text(json.dumps({
        "title": "two async runs",
        "common": {"updates": 20, "hidden": 8, "eval_updates": 10},
        "runs": {"2 workers": {"mode": "async", "workers": 2}, "4 workers": {"mode": "async", "workers": 4}},
    }))  # fmt: skip
    assert simulate(str(config), "--out", str(tmp_path / "out"), "--quiet") == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    assert (tmp_path / "out" / "sim_custom.png").exists()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["runs"]["4 workers"]["updates"] == 20


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "name an experiment"),
        (["warp-drive"], "unknown experiment 'warp-drive'; expected one of sync-vs-async"),
        (["staleness", "--backup", "2"], "--backup does not apply (it takes --workers, --updates, --compute"),
        (["staleness", "--set", "speed=3"], "no parameter 'speed'; it takes"),
        (["sync-vs-async", "--workers", "1,2"], "takes one number of workers"),
        (["sync-vs-async", "--workers", "many"], "expected a whole number"),
        (["sync-vs-async", "--compute", "gamma:k=1"], "unknown kind 'gamma'"),
        (["missing.json"], "config file missing.json does not exist"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert simulate(*args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and len(err.splitlines()) == 1


def test_bad_config_files_name_the_problem(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"runs": {"a": {"mode": "async", "wokers": 3}}}))
    with pytest.raises(ValueError, match="run 'a': unknown setting 'wokers'"):
        run_experiment(str(config))
    config.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        run_experiment(str(config))


def test_the_console_script_runs_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "minidl", "simulate", "failures", "--quick", "--set", "time=3", "--set", "dies_at=1",
         "--set", "restart_at=1.5", "--out", str(tmp_path), "--no-plot"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "plain sync" in proc.stdout and "stalled at t=" in proc.stdout
    assert not (tmp_path / "sim_failures.png").exists()  # --no-plot
