"""Diffraction: XRD processing (xrd) and GIXD feature detection (gixd)."""
