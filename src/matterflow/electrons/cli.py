"""``matterflow electrons ...``: DFT data, descriptors, training, prediction.

Each part defines its commands on its own module-level app; they are joined
here without a group name, so the commands stay flat (``matterflow electrons dft``).
"""

import typer

from matterflow.electrons import cli_descriptors, cli_dft, cli_mala, cli_ml

app = typer.Typer(help="ML surrogate for DFT: DFT data, descriptors, LDOS model, observables.",
                  no_args_is_help=True)
app.add_typer(cli_dft.app)
app.add_typer(cli_descriptors.app)
app.add_typer(cli_ml.app)
app.add_typer(cli_mala.app)
