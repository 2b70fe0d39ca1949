"""The chat service's use cases (the package docstring describes the layout)."""
