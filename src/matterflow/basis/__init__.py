"""Basis-set (precision) error of DFT total energies: quantile forests, SISSO, calibrated intervals."""
