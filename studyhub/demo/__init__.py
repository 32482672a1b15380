"""studyhub.demo."""
