"""Hooks of the Runway (KIE.ai) provider."""
