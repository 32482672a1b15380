"""studyhub.rating."""
