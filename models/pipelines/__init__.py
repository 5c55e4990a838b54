"""Pipelines: `run(volume) -> Findings`, looked up by name in the registry."""
