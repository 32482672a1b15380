"""studyhub.stats."""
