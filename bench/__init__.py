"""The template's benchmarks, one module per area; ``bench/run.py`` is the entry point."""
