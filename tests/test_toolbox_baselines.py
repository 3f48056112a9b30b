"""minidl.baselines (issue 13): scikit-learn's logistic regression, gradient boosting and random forest on
a minidl data split, in a table beside a network's numbers; scikit-learn stays out of `import minidl`."""

import subprocess
import sys

import pytest
from threadpoolctl import threadpool_limits

from minidl import baselines, data


def test_baselines_run_on_the_digits_split_and_make_a_table():
    train, test = data.digits(train=True), data.digits(train=False)
    small = {"gradient_boosting": {"max_iter": 20}, "random_forest": {"n_estimators": 20}}  # quick settings
    with threadpool_limits(1):
        rows = baselines.run_baselines(train, test, ("logistic_regression", "gradient_boosting", "random_forest"),
                                       options=small)  # fmt: skip
    assert [r.name for r in rows] == ["logistic_regression", "gradient_boosting", "random_forest"]
    for row in rows:  # the 8x8 digits are easy for all three (0.94-0.97 here); chance is 0.1
        assert 0.9 <= row.test_accuracy <= row.train_accuracy and row.seconds > 0
    table = baselines.format_table(rows + [baselines.BaselineResult("minidl cnn", None, 0.986, None)])
    lines = table.splitlines()
    assert lines[0] == "| model | train accuracy | test accuracy | fit s |" and len(lines) == 6
    assert lines[-1] == "| minidl cnn | - | 0.986 | - |"
    x, y = baselines.features(train)
    assert x.shape == (len(train), 64) and y.shape == (len(train),)
    with pytest.raises(ValueError, match="make_baseline: unknown baseline 'svm'"):
        baselines.make_baseline("svm")


def test_import_minidl_does_not_import_scikit_learn():
    code = "import sys, minidl, minidl.baselines; print(any(m.startswith('sklearn') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
