"""`edgekit report`: bench results -> Markdown table and a self-contained HTML page with PNG
plots (latency distribution per artifact, latency vs size, accuracy vs latency); `edgekit
profile` results add a per-block latency bar chart each, `edgekit diff` results one
cosine-by-depth line per artifact."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from edgekit.errors import UsageError


def load_results(paths: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text())
        except FileNotFoundError:
            raise UsageError("no such results file", path=p, hint="pass `edgekit bench --out` "
                             "files") from None
        except ValueError as exc:
            raise UsageError(f"not a results JSON file ({exc})", path=p,
                             hint="pass files written by `edgekit bench --out`") from None
        data = data if isinstance(data, list) else [data]
        if not all(isinstance(r, dict) and "artifact" in r for r in data):
            raise UsageError("not an edgekit bench, profile or diff results file", path=p,
                             hint="pass files written by `edgekit bench|profile|diff --out`")
        rows.extend(data)
    if not rows:
        raise UsageError("no results in the given files", hint="run `edgekit bench` first")
    return rows


def _f(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "–"


def _label(r: dict[str, Any]) -> str:
    name = Path(r["artifact"]).name
    dev = r.get("device", "local")
    return name if dev == "local" else f"{name} @ {dev}"


def kind_of(r: dict[str, Any]) -> str:
    """bench row, `edgekit profile` result or `edgekit diff` result."""
    if "by_block" in r and "rows" in r:
        return "profile"
    if "first_below" in r and "layers" in r:
        return "diff"
    return "bench"


def render_markdown(rows: list[dict[str, Any]]) -> str:
    profiles = [r for r in rows if kind_of(r) == "profile"]
    diffs = [r for r in rows if kind_of(r) == "diff"]
    rows = [r for r in rows if kind_of(r) == "bench"]
    extra = "".join(_profile_markdown(p) for p in profiles) + \
        "".join(_diff_markdown(d) for d in diffs)
    return (_bench_markdown(rows) if rows else "") + extra


def _profile_markdown(p: dict[str, Any], top: int = 5) -> str:
    lines = [f"\n### Profile: {Path(p['artifact']).name} on {p['device']} ({p['runtime']})\n",
             f"per-op sum {p['total_ms']:.3f} ms, end-to-end median "
             f"{p['end_to_end_median_ms']:.3f} ms (gap {_f(p['gap'], '+.0%')})"
             + (", emulated: shares only" if p.get("emulated") else "") + "\n",
             "| block | ms | share | ops |", "| --- | --- | --- | --- |"]
    lines += [f"| {b['block']} | {b['ms']:.3f} | {b['share']:.1%} | {b['ops']} |"
              for b in p["by_block"][:top]]
    lines += ["", "| op type | ms | share | ops |", "| --- | --- | --- | --- |"]
    lines += [f"| {b['op']} | {b['ms']:.3f} | {b['share']:.1%} | {b['ops']} |"
              for b in p["by_op_type"][:top]]
    return "\n".join(lines) + "\n"


def _diff_markdown(d: dict[str, Any], top: int = 5) -> str:
    lines = [f"\n### Diff: {Path(d['artifact']).name} vs {d['against']}\n",
             f"first layer under cosine {d['threshold']}: {d['first_below'] or 'none'}\n",
             "| module | cosine | worst | SQNR dB | max abs |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['module'] or '(model)'} | {r['cosine']:.5f} | {r['cosine_worst']:.5f} | "
              f"{r['sqnr_db']:.1f} | {r['max_abs']:.4g} |"
              for r in sorted(d["layers"], key=lambda r: r["cosine"])[:top]]
    return "\n".join(lines) + "\n"


def _bench_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| artifact | device | runtime | median ms | p90 ms | p99 ms | cv | n | init ms | "
             "peak RSS MB | outputs | flags |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {Path(r['artifact']).name} | {r.get('device')} | | FAILED | | | | "
                         f"| | | | {r.get('error', '')[:120]} |")
            continue
        flags = [f for f, ok in (("unstable", r["stable"]), ("implausible", r["plausible"]))
                 if ok is False] + (["native tool"] if r.get("native") else []) \
            + (["emulated (qemu): not a speed"] if r.get("emulated") else [])
        ratio = f" (×{r['ratio_vs_first']:.2f})" if "ratio_vs_first" in r else ""
        outputs = {True: "ok", False: "WRONG", None: "not checked"}[r["validated"]]
        lines.append(
            f"| {Path(r['artifact']).name} | {r.get('device')} | {r['runtime']} | "
            f"{_f(r['median_ms'], '.3f')}{ratio} | {_f(r['p90_ms'], '.3f')} | "
            f"{_f(r['p99_ms'], '.3f')} | {_f(r['cv'], '.1%')} | {r['iterations']} | "
            f"{_f(r['init_ms'], '.0f')} | {_f(r['peak_rss_mb'], '.0f')} | {outputs} | "
            f"{', '.join(flags)} |")
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(ok: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    sampled = [r for r in ok if r.get("samples_ms")]  # native tools report aggregates only
    fig, ax = plt.subplots(figsize=(8, 0.6 * max(len(sampled), 1) + 1.5))
    if sampled:
        ax.boxplot([r["samples_ms"] for r in sampled], vert=False, showfliers=True)
        ax.set_yticks(range(1, len(sampled) + 1), [_label(r) for r in sampled])
    ax.set_xscale("log")
    ax.set_xlabel("latency per inference (ms, log scale)")
    ax.set_title("Latency distribution (every measured sample)")
    plots.append(("Latency distribution", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in ok:
        ax.scatter((r.get("size_bytes") or 0) / 2**20, r["median_ms"])
        ax.annotate(_label(r), ((r.get("size_bytes") or 0) / 2**20, r["median_ms"]),
                    fontsize=7)
    ax.set_xlabel("artifact size (MB)")
    ax.set_ylabel("median latency (ms)")
    ax.set_title("Latency vs size")
    plots.append(("Latency vs size", _png(fig)))
    plt.close(fig)

    acc = [r for r in ok if r.get("accuracy") is not None
           or r.get("validation_cosine") is not None]
    if acc:
        fig, ax = plt.subplots(figsize=(6, 4))
        key = "accuracy" if all(r.get("accuracy") is not None for r in acc) \
            else "validation_cosine"
        for r in acc:
            ax.scatter(r["median_ms"], r[key])
            ax.annotate(_label(r), (r["median_ms"], r[key]), fontsize=7)
        ax.set_xlabel("median latency (ms)")
        ax.set_ylabel("top-1 accuracy" if key == "accuracy" else "cosine vs fp32 reference")
        ax.set_title("Accuracy vs latency")
        plots.append(("Accuracy vs latency", _png(fig)))
        plt.close(fig)
    return plots


def _layer_plots(profiles: list[dict[str, Any]], diffs: list[dict[str, Any]]
                 ) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    for p in profiles:
        blocks = p["by_block"][:15][::-1]
        fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(blocks), 1) + 1.5))
        ax.barh([b["block"] for b in blocks], [b["ms"] for b in blocks])
        unit = "emulated ms (shares only)" if p.get("emulated") else "ms per inference"
        ax.set_xlabel(f"{unit}, median of per-op profiler times")
        ax.set_title(f"Per-block latency: {Path(p['artifact']).name} ({p['runtime']})")
        plots.append((f"Per-block latency: {Path(p['artifact']).name}", _png(fig)))
        plt.close(fig)
    if diffs:
        fig, ax = plt.subplots(figsize=(8, 4))
        for d in diffs:
            ax.plot([r["depth"] for r in d["layers"]], [r["cosine"] for r in d["layers"]],
                    marker=".", label=Path(d["artifact"]).name)
        ax.set_xlabel("layer (graph order)")
        ax.set_ylabel("cosine vs reference")
        ax.set_title("Cosine by depth")
        ax.legend(fontsize=7)
        plots.append(("Cosine by depth", _png(fig)))
        plt.close(fig)
    return plots


def render_html(rows: list[dict[str, Any]], out: Path) -> None:
    profiles = [r for r in rows if kind_of(r) == "profile"]
    diffs = [r for r in rows if kind_of(r) == "diff"]
    rows = [r for r in rows if kind_of(r) == "bench"]
    ok = [r for r in rows if r.get("status") == "ok"]
    table = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in (
        "artifact", "device", "runtime", "median ms", "p90 ms", "p99 ms", "cv", "n", "init ms",
        "first ms", "peak RSS MB", "outputs", "stable", "plausible")) + "</tr>"]
    for r in rows:
        if r.get("status") != "ok":
            table.append(f"<tr class='bad'><td>{html.escape(Path(r['artifact']).name)}</td>"
                         f"<td colspan='13'>FAILED: {html.escape(str(r.get('error')))}</td></tr>")
            continue
        yes_no = {True: "yes", False: "NO", None: "–"}
        cells = [Path(r["artifact"]).name, r.get("device"), r["runtime"],
                 _f(r["median_ms"], ".3f"), _f(r["p90_ms"], ".3f"), _f(r["p99_ms"], ".3f"),
                 _f(r["cv"], ".1%"), r["iterations"], _f(r["init_ms"], ".0f"),
                 _f(r["first_ms"], ".1f"), _f(r["peak_rss_mb"], ".0f"),
                 {True: "ok", False: "WRONG", None: "not checked"}[r["validated"]],
                 yes_no[r["stable"]], yes_no[r["plausible"]]]
        table.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                     + "</tr>")
    table.append("</table>")
    figures = "".join(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                      f"src='data:image/png;base64,{data}'>" for title, data in _plots(ok)) \
        if ok else ("<p>No successful results to plot.</p>" if rows else "")
    figures += "".join(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
                       f"src='data:image/png;base64,{data}'>"
                       for title, data in _layer_plots(profiles, diffs))
    if profiles or diffs:
        figures += "<pre>" + html.escape("".join(_profile_markdown(p) for p in profiles)
                                         + "".join(_diff_markdown(d) for d in diffs)) + "</pre>"
    fps = sorted({json.dumps({k: v for k, v in r.get("fingerprint", {}).items()
                              if k in ("device", "cpu_model", "cores", "os", "governor")})
                  for r in ok})
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>edgekit report</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}th{{background:#eef}}
tr.bad td{{background:#fdd}}img{{max-width:100%;display:block;margin:1em 0}}</style></head>
<body><h1>edgekit report</h1><p>{len(ok)} result(s), {len(rows) - len(ok)} failure(s),
{len(profiles)} profile(s), {len(diffs)} diff(s).
Compare ratios within one run; absolute times on shared machines mean little.</p>
{''.join(table) if rows else ''}{figures}<h2>Devices</h2><pre>{html.escape(chr(10).join(fps))}</pre>
</body></html>"""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page)
    tmp.replace(out)
