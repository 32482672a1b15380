"""studyhub.protocol."""
