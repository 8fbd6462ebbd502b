"""The ``swatch`` command line."""
