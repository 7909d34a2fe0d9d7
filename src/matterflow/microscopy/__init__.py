"""Microscopy: the shared differentiable electron-microscopy forward model (potentials,
multislice, CTF, probe) and the domains built on it (HRTEM, ptychography, SEM)."""
