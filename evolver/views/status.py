"""`evolver status`: where the store and the daemon stand, one labelled line each."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from evolver.states import gen_name


def status_view(info: dict[str, Any]) -> Text:
    """The summary of evolver.store.watch.status_summary as aligned lines. Plain text, never markup:
    reasons may hold [brackets]."""
    d = info["daemon"]
    cur = info["pinned"] if info["pinned"] is not None else info["current"]
    rows = [
        ("state", info["state_dir"]),
        ("daemon", f"running (pid {d['pid']})" if d["alive"] else "not running"),
        ("generations", str(info["generations"])),
        ("current", ("none yet" if cur is None else gen_name(cur)) + (" (pinned)" if info["pinned"] is not None else "")),
    ]
    if info["latest"]:
        lt = info["latest"]
        rows.append(("latest", f"{gen_name(lt['id'])} {lt['status']}" + (f", phase {lt['phase']}" if lt["phase"] else "")))
    if info["last_decision"]:
        ld = info["last_decision"]
        gen = "" if ld["generation"] is None else f" {gen_name(ld['generation'])}"
        rows.append(("decision", f"{ld['kind']}{gen}: {ld['reason']}"))
    return Text("\n".join(f"{label:<12}{value}" for label, value in rows))
