"""`python -m agent.cli ...` runs the `dicom-agent` command (how `serve` starts its worker)."""

from agent.cli import app

app(prog_name="dicom-agent")
