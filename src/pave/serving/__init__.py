"""Pave serving."""
