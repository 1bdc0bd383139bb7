"""Operators of the Runway provider."""
