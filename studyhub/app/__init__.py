"""studyhub.app."""
