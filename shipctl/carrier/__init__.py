"""The EasyPost adapter: SDK calls (run in worker threads), plain result types, and error classification.

Knows the SDK; does not know the CLI, the journal or the engine's internals.
"""
