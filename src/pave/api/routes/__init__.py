"""Pave routes."""
