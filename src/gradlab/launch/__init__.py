"""Starting work: the Hydra command line, the machine's checks, Slurm, and the parallel study runner."""
