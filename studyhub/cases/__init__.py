"""studyhub.cases."""
