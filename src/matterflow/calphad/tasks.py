"""Tasks of the calphad domain (entry point ``matterflow.tasks: calphad``)."""

TASKS: list = []
