"""Top-level test configuration: its folder goes on sys.path, so tests import `tiny_models` from here."""
