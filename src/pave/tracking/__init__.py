"""Pave tracking."""
