"""Microscopy: image formation and analysis for electron microscopes (SEM, HRTEM, ...)."""
