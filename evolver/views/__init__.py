"""Views: pure functions from the store's read side (evolver.store.lineage, .detail, .watch) to Rich
renderables, JSON and a plot, one renderable per module, as rich keeps its own.

No view touches the store, so each is tested by rendering with `Console(color_system=None,
width=80)` and reading the text. The CLI prints them; the TUI (evolver.tui.app) shows them.
"""
