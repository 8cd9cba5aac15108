"""Command line and cluster launch: the ``codeclm`` console script, SLURM and torchrun."""
