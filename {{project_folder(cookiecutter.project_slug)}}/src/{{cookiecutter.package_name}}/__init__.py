"""Model, data and training code of this project.

{{ cookiecutter.project_name | docstring_text(width=88) }}

{{ cookiecutter.description | docstring_text(width=88) }}
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("{{ cookiecutter.project_slug }}")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
