"""studyhub.evidence."""
