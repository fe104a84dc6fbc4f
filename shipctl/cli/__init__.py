"""Thin Typer commands, one module per command; the consoles and the error edge live in `console`."""
