"""The async bulk engine: pool sizing, the adaptive in-flight limiter, chunked sliding-window dispatch, retries.

It knows items and an abstract async operation, never Typer, rich or the SDK's classes.
"""
