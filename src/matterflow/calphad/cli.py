"""``matterflow calphad ...`` commands."""

import typer

app = typer.Typer(help="calphad", no_args_is_help=True)
