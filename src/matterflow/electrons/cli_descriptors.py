"""CLI commands of this part of the electrons domain."""

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to ``matterflow electrons``."""
