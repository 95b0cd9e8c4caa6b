"""Names every command shares: the program, its commands, the run folder's files.

A leaf module: it imports nothing of this package, so any command can use it
without loading another (``cli.py`` only wires commands; no command imports it).
"""

from __future__ import annotations

PROGRAM = "{{ cookiecutter.project_slug }}"
"""The console script's name, as usage lines and messages show it."""

TRACEBACK_VARIABLE = "{{ cookiecutter.package_name | upper }}_TRACEBACK"
"""Environment variable: ``1`` shows a usage error's full traceback (for debugging)."""

SUMMARIES: dict[str, str] = {
    "fit": "Train the model; its run folder keeps config, metrics, checkpoints.",
    "validate": "Score a trained checkpoint on the validation split.",
    "test": "Score a trained checkpoint on the held-out test split.",
    "predict": (
        "Predict the test split, or a file (--data.predict_path), with a checkpoint."
    ),
    "export": "Export a run's model to ONNX, preprocessing inside, with its card.",
    "serve": "Serve an exported model over HTTP with ONNX Runtime (no torch).",
{%- if cookiecutter.hpo == "optuna" %}
    "tune": "Search hyperparameters with Optuna; every trial is a run folder.",
{%- endif %}
    "runs": "Compare run folders: status, metrics, what differs.",
}
"""Every subcommand and one sentence for ``--help``, in the order it lists them."""

CONFIG = "config.yaml"
"""The resolved config of a run, ready for ``--config``."""
MANIFEST = "manifest.json"
"""What produced a run, how it ran and how it ended (``status``)."""
METRICS = "metrics.csv"
"""One row of metrics per epoch (one row of final metrics for validate/test)."""
PLOT = "learning_curves.png"
"""The learning curves of a fit."""
PREDICTIONS = "predictions.csv"
"""What ``predict`` wrote."""
BEST_CHECKPOINT = "checkpoints/best.ckpt"
"""The checkpoint with the best monitored value."""
LAST_CHECKPOINT = "checkpoints/last.ckpt"
"""The checkpoint of the last epoch, which ``--resume`` continues from."""
EXPORT = "export"
"""Where ``export`` writes a run's model by default (``RUN/export``)."""
ONNX_MODEL = "model.onnx"
"""The exported model in an export folder: raw inputs in, class probabilities out."""
MODEL_CARD = "model.json"
"""The model card beside it: inputs, classes, metrics, source, versions."""
