"""The trainer presets in configs/presets/ and ``--model.compile``."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.system import Classifier

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "presets"
CallCLI = Callable[..., Path | None]


@pytest.fixture(autouse=True)
def _no_pytest_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI warns when it gets arguments and sys.argv holds some too."""
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])


def preset(name: str) -> str:
    return str(PRESETS / f"{name}.yaml")


def last_row(run: Path) -> dict[str, str]:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))[-1]


@pytest.mark.parametrize("name", sorted(p.stem for p in PRESETS.glob("*.yaml")))
def test_every_preset_parses(
    name: str, configs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--config", str(configs / "default.yaml"), "--config", preset(name)]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "trainer:" in capsys.readouterr().out


def test_all_presets_are_tested() -> None:
    names = {p.stem for p in PRESETS.glob("*.yaml")}
    assert names == {"gpu", "ddp", "mps", "debug", "overfit", "profile", "limit"}


def test_debug_runs_one_batch_and_leaves_no_run_folder(call_cli: CallCLI) -> None:
    assert call_cli("fit", "--config", preset("debug")) is None


def test_overfit_drives_the_loss_of_one_batch_near_zero(call_cli: CallCLI) -> None:
    run = call_cli("fit", "--config", preset("overfit"), "--model.lr=0.05")
    assert run is not None
    assert float(last_row(run)["train_loss"]) < 0.05


def test_profile_writes_its_report_into_the_run_folder(call_cli: CallCLI) -> None:
    run = call_cli("fit", "--config", preset("profile"))
    assert run is not None
    (report,) = run.glob("*profile*.txt")
    assert "Profiler Report" in report.read_text(encoding="utf-8")


def test_limit_runs_a_few_batches_per_epoch(call_cli: CallCLI) -> None:
    run = call_cli("fit", "--config", preset("limit"))
    assert run is not None
    assert run.name.endswith("_fit_limit")
    assert last_row(run)["epoch"] == "2"  # three epochs


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_preset_trains_on_the_gpu(call_cli: CallCLI, configs: Path) -> None:
    args = ["--config", str(configs / "smoke.yaml"), "--config", preset("gpu")]
    assert call_cli("fit", *args, "--trainer.accelerator=gpu") is not None


@pytest.mark.gpu
@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason="needs 2 or more CUDA devices"
)
def test_ddp_preset_parses_for_every_device(
    configs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--config", str(configs / "smoke.yaml"), "--config", preset("ddp")]
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"])
    assert "strategy: ddp" in capsys.readouterr().out


@pytest.mark.skipif(
    not torch.backends.mps.is_available(), reason="needs Apple's MPS device"
)
def test_mps_preset_trains_on_mps(call_cli: CallCLI, configs: Path) -> None:
    args = ["--config", str(configs / "smoke.yaml"), "--config", preset("mps")]
    assert call_cli("fit", *args, "--trainer.accelerator=mps") is not None


def test_compile_is_off_by_default_and_keeps_checkpoint_keys(
    make_model: Callable[..., Classifier],
) -> None:
    eager = make_model()
    compiled = make_model(compile=True)  # compiles lazily, at the first call
    assert not eager.hparams["compile"]
    assert eager.state_dict().keys() == compiled.state_dict().keys()


@pytest.mark.slow
def test_compiled_and_eager_networks_predict_the_same(
    make_model: Callable[..., Classifier], batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    torch.manual_seed(0)
    eager = make_model().eval()
    compiled = make_model(compile=True).eval()
    compiled.load_state_dict(eager.state_dict())
    x = batch[0][:16]
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-5)
