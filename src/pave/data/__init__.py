"""Pave data."""
