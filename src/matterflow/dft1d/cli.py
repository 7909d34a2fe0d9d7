"""``matterflow dft1d ...``: exact data, inversion, neural operator, PINN.

Each part defines its commands on its own module-level app; they are joined
here without a group name, so the commands stay flat (``matterflow dft1d pinn``).
"""

import typer

from matterflow.dft1d import cli_inversion, cli_pinn, cli_tdks

app = typer.Typer(help="Exact 1D electrons, density-to-potential inversion, FNO and PINN.",
                  no_args_is_help=True)
app.add_typer(cli_inversion.app)
app.add_typer(cli_pinn.app)
app.add_typer(cli_tdks.app)
