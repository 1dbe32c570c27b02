"""The study: its grid, every run in one table pooled over seeds, the published claims and the verdicts on them."""
