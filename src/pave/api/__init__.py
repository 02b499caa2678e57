"""Pave api."""
