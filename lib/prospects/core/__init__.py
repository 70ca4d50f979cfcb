"""Foundations every package uses: configuration, column dictionary, errors, session, jars, Delta I/O."""
