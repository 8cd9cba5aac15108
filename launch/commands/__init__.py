"""Subcommands of the ``codeclm`` console script, one module a stage."""
