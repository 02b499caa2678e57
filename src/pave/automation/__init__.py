"""Pave automation."""
