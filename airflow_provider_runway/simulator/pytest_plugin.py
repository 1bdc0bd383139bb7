"""pytest fixtures for the Runway simulator (registered through the ``pytest11`` entry point)."""
