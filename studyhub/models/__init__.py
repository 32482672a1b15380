"""studyhub.models."""
