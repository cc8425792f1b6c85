"""File formats at the edge: reading batch input, writing outputs, the rows and columns."""
