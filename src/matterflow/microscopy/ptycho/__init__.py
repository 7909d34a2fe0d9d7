"""Multislice electron ptychography and joint ptychographic tomography (issue 19)."""
