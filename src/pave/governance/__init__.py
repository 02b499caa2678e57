"""Pave governance."""
