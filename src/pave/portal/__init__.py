"""Pave portal."""
