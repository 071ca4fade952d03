"""The CLI's two consoles: results on stdout, interruptions on stderr (errors are plain prints)."""
from rich.console import Console

console = Console()
err_console = Console(stderr=True)
