"""studyhub: registered, blinded validation studies of vision-model explanations."""

__version__ = "0.1.0"

__all__ = ["__version__"]
