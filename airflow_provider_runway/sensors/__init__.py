"""Sensors of the Runway provider."""
