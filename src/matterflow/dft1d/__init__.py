"""Exact 1D quantum systems, density-to-potential inversion (numerical and FNO), PINNs for the TDSE."""
