"""Where a run's numbers go: Lightning's CSV logger and W&B (offline by default), the offline-log reader, `make
view`."""
