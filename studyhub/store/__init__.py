"""studyhub.store."""
