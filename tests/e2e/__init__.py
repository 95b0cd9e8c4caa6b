"""The end-to-end tier: bake, lock, install, test, lint, train and build for real.

A package (this file) so that its ``conftest`` is imported as
``e2e.conftest`` and does not replace the top-level ``conftest`` module that
the fast tier's test modules import ``Bake`` from.
"""
