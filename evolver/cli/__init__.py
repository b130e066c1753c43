"""Command-line faces over the same functions the daemon uses."""
