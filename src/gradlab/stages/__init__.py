"""The code of each pipeline stage: `pipelines/<name>.py` parses its command line and calls `gradlab.stages.<name>`."""
