"""Command groups of the ``studyhub`` command line, assembled in :mod:`studyhub.cli`."""
