"""``matterflow basis ...`` commands."""

import typer

app = typer.Typer(help="basis", no_args_is_help=True)
