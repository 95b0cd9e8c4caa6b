"""``python -m {{ cookiecutter.package_name }}``: the same as the ``{{ cookiecutter.project_slug }}`` command."""

from .cli import main

if __name__ == "__main__":
    main()
