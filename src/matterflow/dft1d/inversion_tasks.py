"""Tasks of this part of the dft1d domain (filled in as the part is built)."""

TASKS: list = []
