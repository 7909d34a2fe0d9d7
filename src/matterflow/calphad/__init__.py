"""Bayesian CALPHAD: fit, sample, propagate to phase diagrams, propose experiments."""
