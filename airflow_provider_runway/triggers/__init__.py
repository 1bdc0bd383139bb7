"""Triggers of the Runway (KIE.ai) provider."""
