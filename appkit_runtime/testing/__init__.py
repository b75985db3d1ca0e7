"""pytest fixtures for appkit services; loaded through the `pytest11` entry point."""
