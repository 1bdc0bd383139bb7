"""Operator extra links for the Runway provider."""
