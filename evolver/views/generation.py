"""`evolver show N` (and the TUI's details pane): everything about one generation, parent-relative
where that helps: config changes, datasets, phases and training, evaluation, decision, reflections."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from evolver.states import STAGES, TRAINING_STAGES, EvalProtocol, Stage, gen_name
from evolver.store.detail import GenDetail, ReflectionRow
from evolver.store.lineage import GenInfo
from evolver.views.format import (
    STYLES,
    Chips,
    badges,
    clock,
    delta_style,
    evidence,
    minutes,
    pct,
    pts,
    section,
    short,
    sparkline,
)

# Phase-detail keys shown elsewhere (the adapter in the header) or too long for a table cell.
DETAIL_SKIP = ("adapter_path", "adapter_sha256", "init_state_sha256", "sources", "init")
DECISION_DETAIL = ("reason", "decision")  # the decide phase's, quoted under "decision"


def generation_view(d: GenDetail, benchmark: str | None = None) -> RenderableType:
    """`evolver show N`: everything about one generation, parent-relative where that helps."""
    g, lin = d.gen, d.lineage
    parts: list[RenderableType] = []
    title = Text(gen_name(g.id), style="bold")
    title.append("  ")
    title.append_text(badges(lin, g.id))
    parts.append(title)
    info = _grid()
    info.add_row("parent", "none (the base model)" if g.parent_id is None else gen_name(g.parent_id))
    info.add_row("created", clock(g.created_at))
    info.add_row("finished", clock(g.finished_at))
    info.add_row("adapter", g.adapter_sha256 or "none (base weights)")
    info.add_row("config", g.config_hash)
    if g.note:
        info.add_row("note", g.note)
    parts.append(info)
    parts.extend(_versions(d))

    parts.append(section("config vs parent"))
    parts.append(_config_diff(d))

    parts.append(section("datasets"))
    if g.datasets:
        t = Table(box=None, pad_edge=False, show_edge=False)
        for c in ("kind", "rows", "sha256", "source"):
            t.add_column(c, justify="right" if c == "rows" else "left", overflow="fold")
        for ds in g.datasets.values():
            t.add_row(ds.kind, f"{ds.rows:,}", ds.sha256[:16], ds.source)
        parts.append(t)
    else:
        parts.append(Text("no dataset snapshots", style="dim"))

    parts.append(section("phases and training"))
    parts.append(phases_table(g))
    parts.extend(_pool_lines(g))
    parts.extend(_schedule_lines(g))
    parts.extend(_train_line(phase, logs) for phase, logs in d.train_logs.items())

    parts.append(section("evaluation"))
    parts.append(eval_table(g, d.parent, benchmark))

    parts.append(section("decision"))
    parts.extend(_decision(d, benchmark))

    parts.append(section("reflections (pool)"))
    parts.extend(reflections_block(d))
    return Group(*parts)


def _versions(d: GenDetail) -> list[RenderableType]:
    """The stack that made it, and a warning for each version that differs from its parent's."""
    if not d.versions:
        return [Text("versions  not recorded (made before evolver recorded them)", style="dim")]
    keys = ("evolver", "torch", "cuda", "transformers", "trl", "peft", "vllm", "python")
    shown = "  ".join(f"{k} {d.versions.get(k) or '-'}" for k in keys if k in d.versions)
    out: list[RenderableType] = [Text(f"versions  {shown}", style="dim")]
    if d.parent is not None and d.versions_changed:
        changes = ", ".join(f"{k} {a or '-'} -> {b or '-'}" for k, (a, b) in d.versions_changed.items())
        out.append(Text(f"warning: made with other versions than {gen_name(d.parent.id)}: {changes}",
                        style="yellow"))
    return out


def _grid() -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim", no_wrap=True)
    t.add_column(overflow="fold")
    return t


def _value(v: Any) -> str:
    return v if isinstance(v, str) else repr(v)


def _config_diff(d: GenDetail) -> RenderableType:
    if d.parent is None:
        return Text("no parent: this is where the lineage starts", style="dim")
    if not d.config_diff:
        return Text(f"same config as {gen_name(d.parent.id)}", style="dim")
    t = Table(box=None, pad_edge=False, show_edge=False)
    t.add_column("key", style="bold", overflow="fold")
    t.add_column(gen_name(d.parent.id), overflow="fold")
    t.add_column(gen_name(d.gen.id), overflow="fold")
    for key, old, new in d.config_diff:
        t.add_row(key, _value(old), _value(new))
    return t


def _pool_lines(g: GenInfo) -> list[Text]:
    """How the generate stage drew its pool: the frontier level, new and returning questions per level."""
    ph = g.phases.get(Stage.GENERATE)
    pool = ph.detail.get("pool") if ph is not None else None
    if not isinstance(pool, dict):
        return []
    line = Text("pool: ", style="bold")
    if pool.get("frontier"):
        line.append(f"frontier {pool['frontier']}; ")
    elif pool.get("all_mastered"):
        line.append("every level mastered, new questions from each alike; ")
    line.append("; ".join(f"{lv} {v['new']} new + {v['returning']} returning"
                          for lv, v in (pool.get("levels") or {}).items()))
    line.append(f"; {pool.get('retired_before', 0):,} solved questions retired before, "
                f"{pool.get('waiting_before', 0):,} failed ones waiting", style="dim")
    return [line]


def _schedule_lines(g: GenInfo) -> list[Text]:
    """What each training stage trained on (snapshots by generation, de-duplicated) and for how long."""
    out = []
    for stage in TRAINING_STAGES:
        ph = g.phases.get(stage)
        if ph is None or not isinstance(ph.detail.get("schedule"), dict):
            continue
        sch, det = ph.detail["schedule"], ph.detail
        sources = det.get("sources") or []
        data = ", ".join(f"{s['kind']} {s['rows']:,} (gen {s['generation']})" for s in sources if isinstance(s, dict))
        line = Text(f"{stage}: ", style="bold")
        line.append(f"{sch.get('max_steps')} steps at lr {sch.get('learning_rate', 0):.2g}")
        if det.get("examples") is not None:
            line.append(f" on {det['examples']:,} examples ({det.get('duplicates', 0):,} duplicates dropped)")
        line.append(f"; data {data or 'none'}", style="dim")
        memory = _memory(det)
        if memory:
            line.append(f"; {memory}", style="dim")
        out.append(line)
    return out


def _memory(det: dict[str, Any]) -> str:
    """The training child's own peak memory (per rank when it ran several), as it measured it."""
    parts = []
    for key, label in (("peak_rss_mb", "peak RSS"), ("peak_cuda_mb", "peak GPU")):
        ranks = det.get(f"{key}_ranks")
        if isinstance(ranks, list) and len(ranks) > 1:
            parts.append(f"{label} {' + '.join(f'{v:,.0f}' for v in ranks if v is not None)} MB ({len(ranks)} ranks)")
        elif det.get(key) is not None:
            parts.append(f"{label} {det[key]:,.0f} MB")
    return ", ".join(parts)


def _train_line(phase: str, logs: list[dict[str, Any]]) -> Text:
    losses = [r["loss"] for r in logs if r.get("loss") is not None]
    line = Text(f"{phase}: {len(logs)} logged steps", style="bold")
    if losses:
        line.append(f"  loss {losses[0]:.3g} → {losses[-1]:.3g}  ")
        line.append(sparkline(losses[-24:], min(losses), max(losses)), style="cyan")
    lr = logs[-1].get("learning_rate")
    if lr is not None:
        line.append(f"  lr {lr:.2g}")
    return line


def _decision(d: GenDetail, benchmark: str | None) -> list[RenderableType]:
    g = d.gen
    parts: list[RenderableType] = []
    if g.decision is None and not d.events:
        parts.append(Text("no decision yet", style="dim"))
    if g.decision is not None:
        e = g.decision
        line = Text(e.kind, style=STYLES.get(e.kind, "bold"))
        line.append(f" by {e.actor}, {clock(e.ts)}: ")
        line.append(e.reason)
        parts.append(line)
        for b, t in e.tests.items():
            if benchmark is None or b == benchmark:
                sig = "significant" if t.significant else "not significant"
                parts.append(Text(f"  {b}: {t.test} n={t.n} {evidence(t)} ({sig})", style="dim"))
    for e in d.events:
        if g.decision is None or e.id != g.decision.id:
            line = Text(f"{e.kind}", style=STYLES.get(e.kind, "bold"))
            line.append(f" by {e.actor}, {clock(e.ts)}: {e.reason}")
            parts.append(line)
    return parts


def phases_table(g: GenInfo) -> Table:
    t = Table(box=None, pad_edge=False, show_edge=False)
    for c in ("phase", "status", "tries", "started", "took", "detail"):
        t.add_column(c, overflow="fold", no_wrap=c != "detail")
    order = {n: i for i, n in enumerate(STAGES)}
    for p in sorted(g.phases.values(), key=lambda p: order.get(p.name, len(order))):
        skip = DETAIL_SKIP + (DECISION_DETAIL if p.name == Stage.DECIDE else ())
        detail = p.error or ", ".join(f"{k}={_brief(v)}" for k, v in p.detail.items()
                                      if k not in skip and v is not None and not isinstance(v, dict | list))
        t.add_row(p.name, Text(p.status, style=STYLES.get(p.status, "")), str(p.attempts), clock(p.started_at),
                  minutes(p.minutes), short(detail, 120))
    if not g.phases:
        t.add_row("-", "no phases yet", "", "", "", "")
    return t


def _brief(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and len(v) > 16 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    return str(v)


def eval_table(g: GenInfo, parent: GenInfo | None, benchmark: str | None = None) -> RenderableType:
    """One row per evaluated unit (a suite, or one level of it: 'arith/5d') and protocol, as they were written."""
    if not g.results:
        return Text("not evaluated yet", style="dim")
    t = Table(box=None, pad_edge=False, show_edge=False)
    parsed = any(m == "parse_rate" for protos in g.metrics.values() for ms in protos.values() for m in ms)
    for c in ("benchmark", "protocol", "acc@t1", "Δ", "acc@t2", "Δ", *(("parsed",) if parsed else ()), "n", "test"):
        t.add_column(c, justify="left" if c in ("benchmark", "protocol", "test") else "right", no_wrap=True)
    tests = g.decision.tests if g.decision is not None else {}
    for b, protos in g.metrics.items():
        if benchmark is not None and b != benchmark:
            continue
        for proto in sorted(protos, key=lambda p: (p != EvalProtocol.STANDARD, p)):
            ms = protos[proto]
            t1, t2 = g.value(b, "acc@t1", proto), g.value(b, "acc@t2", proto)
            p1 = parent.value(b, "acc@t1", proto) if parent else None
            p2 = parent.value(b, "acc@t2", proto) if parent else None
            n = max((m.n for m in ms.values()), default=0)
            rate = g.value(b, "parse_rate", proto)  # share of trial-1 answers that parsed (standard protocol)
            t.add_row(b, proto, pct(t1), Text(pts(t1, p1), style=delta_style(t1, p1)), pct(t2),
                      Text(pts(t2, p2), style=delta_style(t2, p2)),
                      *((pct(rate) if rate is not None else "",) if parsed else ()), str(n),
                      evidence(tests.get(b)) if proto == EvalProtocol.STANDARD else "")
    return t


def _refl_cell(r: ReflectionRow | None) -> Text:
    if r is None:
        return Text("-", style="dim")
    out = Text(f"{r.instruction_id}", style="bold")
    out.append(f"  {r.question}\n", style="dim")
    out.append(short(r.text, 400))
    return out


def reflections_block(d: GenDetail) -> list[RenderableType]:
    st = d.reflections
    if st.total == 0:
        return [Text("no reflections", style="dim")]
    rate = 100 * st.fixed / max(st.total - st.unlinked, 1)
    head = Text(f"{st.total:,} reflections, {st.fixed:,} fixed the answer ({rate:.1f}% of those retried)")
    if st.unlinked:
        head.append(f", {st.unlinked:,} without a retry yet", style="dim")
    parts: list[RenderableType] = [head]
    top = [f"{iid} {fixed}/{n}" for iid, n, fixed in st.by_instruction[:6]]
    if top:
        parts.append(Chips([Text("fixes by instruction:", style="dim"), *[Text(x) for x in top]], indent=2))
    if d.pairs:
        t = Table(show_lines=True, expand=True)
        t.add_column("fixed the answer", ratio=1, overflow="fold")
        t.add_column("did not fix it", ratio=1, overflow="fold")
        for good, bad in d.pairs:
            t.add_row(_refl_cell(good), _refl_cell(bad))
        parts.append(t)
    return parts
