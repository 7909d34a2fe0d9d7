"""CLI commands of this part of the dft1d domain."""

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to ``matterflow dft1d``."""
