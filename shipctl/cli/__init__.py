"""The thin CLI: one module per command over the core jobs (`shipctl.jobs`); the terminal object, the
shared options and the error edge beside them."""
