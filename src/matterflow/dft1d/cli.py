"""``matterflow dft1d ...``: exact data, inversion, neural operator, PINN."""

import typer

from matterflow.dft1d import cli_inversion, cli_pinn

app = typer.Typer(help="Exact 1D electrons, density-to-potential inversion, FNO and PINN.",
                  no_args_is_help=True)
cli_inversion.register(app)
cli_pinn.register(app)
