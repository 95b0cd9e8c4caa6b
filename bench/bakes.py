"""Bake speed: whole-process bakes against the import floor (and the peers), in-process bakes.

``measure_process`` times, interleaved in one run, ``python -c "import
cookiecutter.main"`` (the floor), the default bake of this template and the
commands that split the gap, and the bakes of other templates' checkouts
(``--peers``), each as a ratio to the floor. ``measure_in_process`` bakes every
option combination of the fast tier through cookiecutter's API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    cookiecutter_config,
    interleaved,
    log,
    median,
    quiet_stdout,
    ratio,
    test_module,
    tool,
)


def peer_commit(checkout: Path) -> str | None:
    """The commit a peer's checkout (a git worktree or clone) has checked out, if any."""
    try:
        ran = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return ran.stdout.strip() or None


def peer_names(peers: Sequence[Path]) -> dict[str, Path]:
    """``peer:<folder name>`` for each checkout (``-2``, ``-3`` on repeated names)."""
    names: dict[str, Path] = {}
    for checkout in peers:
        base = f"peer:{checkout.resolve().name}"
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base}-{count}"
        names[name] = checkout
    return names


def measure_process(
    runs: int, work: Path, warmup: int = 1, peers: Sequence[Path] = ()
) -> dict[str, Any]:
    """The default bake's whole process against the import floor, and where the gap goes.

    Five commands, interleaved: the floor (``import cookiecutter.main``), the
    import of cookiecutter's command line (what its executable loads), a bake
    with ``--accept-hooks no`` (rendering without the hooks), the real bake,
    and the same bake from a copy of the template whose compile cache
    (``template_cache.py``) is emptied before each run: the first bake after a
    fresh clone; and, with ``init_git=no``, a bake from a copy without the
    bytecode-cache extension, against ``bake_no_git`` what the cache saves.
    The ratio is bake / floor; the others split the difference.
    Each checkout in ``peers`` (another template) is baked with its defaults in
    the same rounds, so its ratio is measured under the same load as ours. The
    peers' defaults make no git repository, so they are compared with our bake
    doing the same work, ``init_git=no`` (``bake_no_git``, also timed each round).
    """
    cookiecutter = tool("cookiecutter")
    counter = iter(range(10**6))
    fresh, plain = work / "fresh-clone", work / "no-cache"
    for copy in (fresh, plain):
        shutil.copytree(
            ROOT,
            copy,
            ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "bench", "node_modules"),
        )
    settings = json.loads((plain / "cookiecutter.json").read_text(encoding="utf-8"))
    settings["_extensions"].remove("template_cache.CompiledTemplates")
    (plain / "cookiecutter.json").write_text(json.dumps(settings), encoding="utf-8")

    with cookiecutter_config(work) as config:

        def baking(
            *extra: str, template: Path = ROOT, context: Sequence[str] = ()
        ) -> Callable[[], list[str]]:
            def command() -> list[str]:
                out = work / f"bake-{next(counter)}"
                out.mkdir()
                if template == fresh:
                    shutil.rmtree(fresh / ".cache", ignore_errors=True)
                flags = ["--no-input", "--config-file", str(config), *extra]
                return [cookiecutter, *flags, "-o", str(out), str(template), *context]

            return command

        def importing(module: str) -> Callable[[], list[str]]:
            return lambda: [sys.executable, "-c", f"import {module}"]

        commands = {
            "bake": baking(),
            "floor": importing("cookiecutter.main"),
            "cli_import": importing("cookiecutter.cli"),
            "bake_no_hooks": baking("--accept-hooks", "no"),
            "bake_no_git": baking(context=["init_git=no"]),
            "bake_empty_cache": baking(template=fresh),
            "bake_no_cache": baking(template=plain, context=["init_git=no"]),
        }
        named_peers = peer_names(peers)
        for name, checkout in named_peers.items():
            commands[name] = baking(template=checkout)
        times = interleaved(commands, runs, warmup)
    medians = {name: median(values) for name, values in times.items()}
    return {
        "runs": runs,
        "times_s": times,
        "medians_s": medians,
        "bake_median_s": medians["bake"],
        "floor_median_s": medians["floor"],
        "ratio": ratio(medians["bake"], medians["floor"]),
        "empty_cache_ratio": ratio(medians["bake_empty_cache"], medians["floor"]),
        "no_git_median_s": medians["bake_no_git"],
        "no_git_ratio": ratio(medians["bake_no_git"], medians["floor"]),
        "no_cache_median_s": medians["bake_no_cache"],
        "peers": [
            {
                "name": name.removeprefix("peer:"),
                "path": str(checkout),
                "commit": peer_commit(checkout),
                "median_s": medians[name],
                "ratio": ratio(medians[name], medians["floor"]),
            }
            for name, checkout in named_peers.items()
        ],
    }


def option_combinations() -> list[dict[str, str]]:
    """The defaults, then the pairwise set the fast tier bakes (without repeating the defaults)."""
    try:
        pairwise = list(test_module("test_options").PAIRWISE)
    except Exception as error:  # the test module moved or broke: rebuild the same set
        log(f"tests/test_options.py gave no PAIRWISE ({error!r}); computing it here")
        harness, pairs = test_module("harness"), test_module("pairwise")
        hook_only = {"init_git", "poetry_lock"}
        options = {k: v for k, v in harness.choices().items() if k not in hook_only}
        pairwise = pairs.all_pairs(options)
    defaults = test_module("harness").defaults()
    rest = [dict(c) for c in pairwise if any(defaults.get(k) != v for k, v in c.items())]
    return [{}, *rest]


def bake(options: Mapping[str, str], out: Path, config: Path) -> Path:
    """Bake the template in this process (cookiecutter's API), without questions."""
    from cookiecutter.main import cookiecutter  # type: ignore[import-untyped]

    return Path(
        cookiecutter(
            str(ROOT),
            no_input=True,
            extra_context=dict(options),
            output_dir=str(out),
            config_file=str(config),
        )
    )


def measure_in_process(
    combinations: Sequence[Mapping[str, str]], work: Path, warmup: bool = True
) -> dict[str, Any]:
    """One in-process bake per combination (after an untimed warm-up bake)."""
    times: list[float] = []
    with cookiecutter_config(work) as config, quiet_stdout():
        bakes: list[tuple[Mapping[str, str], bool]] = [({}, False)] if warmup else []
        bakes += [(options, True) for options in combinations]
        for number, (options, timed) in enumerate(bakes):
            out = work / f"inproc-{number}"
            out.mkdir()
            started = time.perf_counter()
            bake(options, out, config)
            if timed:
                times.append(time.perf_counter() - started)
            shutil.rmtree(out, ignore_errors=True)
    slowest = max(range(len(times)), key=times.__getitem__)
    return {
        "combinations": len(times),
        "median_s": median(times),
        "max_s": times[slowest],
        "max_options": dict(combinations[slowest]),
        "times_s": times,
    }
