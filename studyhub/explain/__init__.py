"""studyhub.explain."""
