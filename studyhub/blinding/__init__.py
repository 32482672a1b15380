"""studyhub.blinding."""
