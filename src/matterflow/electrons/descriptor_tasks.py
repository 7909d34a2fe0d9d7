"""Tasks of this part of the electrons domain (filled in as the part is built)."""

TASKS: list = []
