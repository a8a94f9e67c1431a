"""Run a project's stages locally, the same stages CI and the DVC pipeline run."""
