"""Command line: the typer app and its sub-apps."""
