"""The recorded results (docs/results/*.json) rendered into README.md and docs/*.md, and README's picture."""
