"""Shared differentiable electron-microscopy forward model (potentials, multislice, CTF)."""
