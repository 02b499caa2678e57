"""Pave cli."""
