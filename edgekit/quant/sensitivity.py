"""`--keep-float auto`: which sites stay float, the same greedy rule for every target.

Each site is tried float together with its *neighbourhood*: the quantized sites that produce
or consume its activations. A quantizer keeps an edge int8 while either end is quantized, so
floating one site leaves its input and output tensors int8; a tensor that cannot be int8 (one
channel 1000× the others) only leaves int8 when both of its ends are float. The target says
what its neighbourhoods are (ONNX nodes through Q/DQ pass-through ops, PT2E nodes through
observers); this module ranks them and picks, best first, until the cosine budget holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def neighbourhoods(sites: Sequence[str], inputs: Callable[[str], Sequence[str]],
                   users: Callable[[str], Sequence[str]], passes: Callable[[str], bool],
                   depth: int) -> dict[str, list[str]]:
    """Per site: itself and the sites that produce or consume its activations, walking through
    at most `depth` nodes for which `passes` holds (ops a Q/DQ pair or an observer passes
    through unchanged). `inputs(node)` lists a node's activation producers (a pass-through
    node's first is the one it passes on), `users(node)` its consumers; nodes are names."""
    site_set = set(sites)

    def up(node: str, left: int) -> set[str]:
        if node in site_set:
            return {node}
        if left == 0 or not passes(node):
            return set()
        first = inputs(node)[:1]
        return up(first[0], left - 1) if first else set()

    def down(node: str, left: int) -> set[str]:
        found: set[str] = set()
        for user in users(node):
            if user in site_set:
                found.add(user)
            elif left and passes(user):
                found |= down(user, left - 1)
        return found

    out = {}
    for site in sites:
        near = {site} | down(site, depth)
        for producer in inputs(site):
            near |= up(producer, depth)
        out[site] = sorted(near)
    return out


@dataclass
class Choice:
    chosen: list[str] = field(default_factory=list)
    cosine: float | None = None  # hold-out cosine with `chosen` float (None: nothing chosen)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)  # best first
    reasons: dict[str, str] = field(default_factory=dict)  # chosen site -> why


def choose_float_sites(sites: Sequence[str], around: Mapping[str, Sequence[str]],
                       cosine_with: Callable[[list[str]], float], baseline: float,
                       min_cosine: float, on_chosen: Callable[[list[str], float], None]
                       = lambda chosen, cos: None,
                       rank_with: Callable[[list[str]], float] | None = None) -> Choice:
    """Rank each site's neighbourhood by the hold-out cosine it buys over `baseline` (all
    int8), then float the best ones until `min_cosine` holds. At most a quarter of the sites
    go float, except that the best neighbourhood is always allowed whole. `rank_with` may
    estimate the cosine more cheaply for the ranking (the same baseline then comes from it
    too); every accepted set is measured with `cosine_with` on the real model. `on_chosen`
    sees every accepted set (a target keeps the last converted model instead of redoing it)."""
    if rank_with is not None:
        baseline = rank_with([])
    rank = rank_with or cosine_with
    gains = sorted(((rank(sorted(around[s])) - baseline, s) for s in sites), reverse=True)
    result = Choice(sensitivity=[
        {"site": s, "cosine_gain": round(g, 6), "with": sorted(set(around[s]) - {s})}
        for g, s in gains])
    budget = max(1, len(sites) // 4)
    chosen: set[str] = set()
    for gain, site in gains:
        if gain <= 0 or chosen and len(chosen | set(around[site])) > budget:
            break
        chosen |= set(around[site])
        result.chosen = sorted(chosen)
        result.cosine = cosine_with(result.chosen)
        on_chosen(result.chosen, result.cosine)
        if result.cosine >= min_cosine:
            break
    why: dict[str, str] = {}
    for row in result.sensitivity:  # best first: a site takes the reason of its best group
        for name in (row["site"], *row["with"]):
            why.setdefault(name, f"sensitivity: hold-out logit cosine +{row['cosine_gain']:.4g} "
                                 f"with {row['site']} and its int8 neighbours float")
    result.reasons = {n: why[n] for n in result.chosen}
    return result
