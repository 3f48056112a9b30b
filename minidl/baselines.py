"""The baselines the lectures tell you to try first, on the same data split as your network.

"Try Logistic Regression, Random Forests or Gradient Boosting first! Debug your data / problem
setup on simple models, a small dataset, then scale up." And on Kaggle, "note which other
techniques often win competitions: Gradient Boosting, Random Forests". This module runs
scikit-learn's versions on a minidl (train, test) split, so a network's accuracy always has a
yardstick beside it:

    rows = run_baselines(data.digits(train=True), data.digits(train=False))
    print(format_table(rows + [BaselineResult("minidl cnn", None, 0.986, 4.0)]))

scikit-learn is imported only when a baseline runs (it takes seconds to import), never by `import minidl`.
"""

import time
from dataclasses import dataclass

import numpy as np

# name -> (scikit-learn class path, default options, what it is)
BASELINES = {
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", {"max_iter": 2000},
                            "a linear model: softmax regression on the raw features"),
    "gradient_boosting": ("sklearn.ensemble.HistGradientBoostingClassifier", {},
                          "boosted decision trees (histogram-based, LightGBM-style)"),
    "random_forest": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100},
                      "an average of randomized decision trees"),
}  # fmt: skip


@dataclass
class BaselineResult:
    """One row of the comparison: a model's name, its train and test accuracy, and its fit time in seconds."""

    name: str
    train_accuracy: float | None
    test_accuracy: float
    seconds: float | None


def features(dataset):
    """(X (N, features) float64, y (N,) int64) from a dataset of (input, label) pairs: inputs flattened."""
    arrays = getattr(dataset, "arrays", None)
    if arrays is not None and len(arrays) >= 2:
        inputs, labels = arrays[0], arrays[1]
    else:
        inputs, labels = zip(*(dataset[i][:2] for i in range(len(dataset))))
        inputs, labels = np.stack([np.asarray(x) for x in inputs]), np.asarray(labels)
    inputs = np.asarray(inputs, dtype=np.float64)
    return inputs.reshape(len(inputs), -1), np.asarray(labels).astype(np.int64)


def make_baseline(name, seed=0, **options):
    """A fresh scikit-learn estimator for a baseline name (see BASELINES), options overriding its defaults."""
    if name not in BASELINES:
        raise ValueError(f"make_baseline: unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")
    import importlib

    path, defaults, _ = BASELINES[name]
    module_name, class_name = path.rsplit(".", 1)
    try:
        estimator_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError:
        raise ImportError("baselines: scikit-learn is needed (pip install scikit-learn)") from None
    return estimator_class(random_state=seed, **{**defaults, **options})


def run_baselines(train, test, models=("logistic_regression", "gradient_boosting"), seed=0, options=None):
    """Fit each baseline on `train` and score it on `test`: a list of BaselineResult, in the order given.

    options: {name: {scikit-learn option: value}} to change a baseline's settings (e.g. fewer trees).
    """
    options = options or {}
    x_train, y_train = features(train)
    x_test, y_test = features(test)
    rows = []
    for name in models:
        estimator = make_baseline(name, seed, **options.get(name, {}))
        start = time.perf_counter()
        estimator.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        rows.append(
            BaselineResult(
                name, float(estimator.score(x_train, y_train)), float(estimator.score(x_test, y_test)), seconds
            )
        )
    return rows


def format_table(rows):
    """A Markdown table of BaselineResult rows (train accuracy and seconds may be None: shown as '-')."""

    def number(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["| model | train accuracy | test accuracy | fit s |", "|---|---|---|---|"]
    for row in rows:
        cells = (row.name, number(row.train_accuracy, 3), number(row.test_accuracy, 3), number(row.seconds, 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["BASELINES", "BaselineResult", "features", "make_baseline", "run_baselines", "format_table"]
