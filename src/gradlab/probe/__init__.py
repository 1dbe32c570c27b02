"""The BPTT probe (how the gradient reaches back through time, from one backward pass), the continual stream's
record."""
