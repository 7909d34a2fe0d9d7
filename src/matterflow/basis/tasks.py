"""Tasks of the basis domain (entry point ``matterflow.tasks: basis``)."""

TASKS: list = []
