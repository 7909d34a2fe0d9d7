"""``matterflow electrons ...``: DFT data, descriptors, training, prediction."""

import typer

from matterflow.electrons import cli_descriptors, cli_dft, cli_ml

app = typer.Typer(help="ML surrogate for DFT: DFT data, descriptors, LDOS model, observables.",
                  no_args_is_help=True)
cli_dft.register(app)
cli_descriptors.register(app)
cli_ml.register(app)
