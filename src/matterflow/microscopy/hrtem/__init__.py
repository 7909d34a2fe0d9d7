"""HRTEM image matching by Bayesian optimisation over the multislice forward model."""
