"""Token tries and tree attention masks: the geometry both engines score a trie with.

A trie over the continuations' token sequences has one node per distinct proper prefix; the root
(empty prefix) carries the context's last token. Node q is fed as ONE new token at position
(len(context) - 1 + depth(q)) and sees the context and its own ancestors (and itself), so its
next-token log-softmax scores its children:

    log P(c | context) = sum_i log softmax(logits(node(c_<i)))[c_i]

exactly as one full forward per prefix would, with 1 + 10 + ... + 10^(L-1) new tokens for all 10^L
numbers of L digits (when each digit is one token). How the nodes are run (a KV cache in chunks,
or one cache-free forward) is the engine's business (`interp.models.engine`).

    plan = TreePlan.build(context_ids, continuations)   # trie, positions, ancestors, what each node scores
    mask = tree_mask(visible, pos_q, pos_k, dtype, window)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from interp.errors import UserError

TRIE_LOGITS_BUDGET = 256 * 2**20  # bytes of float32 logits per forward: bounds nodes per chunk


@dataclass
class Trie:
    """Nodes of a token trie in BFS order (ancestors first).

    token[i]: the token node i feeds (root: the context's last token); parent[i] (-1 for the root);
    depth[i] (root 0). leaf_path[s]: (node, next_token) pairs whose log-probs add up to sequence s.
    """

    token: list[int]
    parent: list[int]
    depth: list[int]
    leaf_path: list[list[tuple[int, int]]]

    @property
    def n_nodes(self) -> int:
        return len(self.token)


def build_trie(root_token: int, continuations: Sequence[Sequence[int]]) -> Trie:
    """The trie of `continuations` (each non-empty) below a root that feeds `root_token`."""
    if not continuations or any(len(c) == 0 for c in continuations):
        raise ValueError("build_trie needs non-empty continuations")
    index: dict[tuple[int, ...], int] = {(): 0}
    token, parent, depth = [root_token], [-1], [0]
    max_len = max(len(c) for c in continuations)
    for d in range(1, max_len):  # BFS: all prefixes of length d after those of length d - 1
        for c in continuations:
            if len(c) > d:
                pre = tuple(c[:d])
                if pre not in index:
                    index[pre] = len(token)
                    token.append(int(c[d - 1]))
                    parent.append(index[pre[:-1]])
                    depth.append(d)
    paths = [[(index[tuple(c[:i])], int(c[i])) for i in range(len(c))] for c in continuations]
    return Trie(token, parent, depth, paths)


@dataclass
class TreePlan:
    """A trie below a context, laid out for scoring.

    ctx: the context ids; n_ctx = len(ctx) - 1 tokens come before the root (the root feeds ctx[-1]).
    pos_all: (n_ctx + n_nodes,) the position of every context token and node.
    anc: (n_nodes, max_depth + 1) ancestors-or-self of every node as indices into pos_all, padded
    with the node itself. wanted[node]: the (sequence, next token) pairs that node scores.
    """

    ctx: list[int]
    trie: Trie
    pos_all: torch.Tensor
    anc: torch.Tensor
    wanted: list[list[tuple[int, int]]]
    n_seq: int

    @property
    def n_ctx(self) -> int:
        return len(self.ctx) - 1

    @classmethod
    def build(cls, context_ids: Sequence[int], continuations: Sequence[Sequence[int]]) -> "TreePlan":
        ctx = list(context_ids)
        if not ctx:
            raise ValueError("trie_logprobs needs a non-empty context")
        trie = build_trie(ctx[-1], continuations)
        n_ctx, n = len(ctx) - 1, trie.n_nodes
        depth = torch.tensor(trie.depth, dtype=torch.long)
        pos_all = torch.cat([torch.arange(n_ctx), n_ctx + depth])
        max_d = int(depth.max())
        anc = torch.empty((n, max_d + 1), dtype=torch.long)
        for i in range(n):
            j, row = i, []
            while j >= 0:
                row.append(n_ctx + j)
                j = trie.parent[j]
            anc[i] = torch.tensor(row + [n_ctx + i] * (max_d + 1 - len(row)))
        wanted: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for s, path in enumerate(trie.leaf_path):
            for node, tok in path:
                wanted[node].append((s, tok))
        return cls(ctx, trie, pos_all, anc, wanted, len(continuations))

    def gather(self, a: int, b: int) -> tuple[list[int], list[int], list[int]]:
        """(row within nodes a..b-1, sequence, token) for every log-prob those nodes contribute."""
        rows, seqs, toks = [], [], []
        for i in range(a, b):
            for s, tok in self.wanted[i]:
                rows.append(i - a)
                seqs.append(s)
                toks.append(tok)
        return rows, seqs, toks

    def add_to(self, sums: np.ndarray, seqs: list[int], vals: np.ndarray) -> None:
        np.add.at(sums, np.array(seqs, dtype=np.int64), vals)


def mask_layer_types(model: torch.nn.Module) -> tuple[list[str] | None, int | None]:
    """(distinct attention layer types, sliding window) from the config: a model whose config lists
    several layer types (Gemma3: sliding + full) takes one 4D mask per type, as a dict."""
    cfg = getattr(model, "config", None)
    types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None)
    kinds = sorted(set(types)) if types else None
    unknown = set(kinds or []) - {"full_attention", "sliding_attention"}
    if unknown:
        raise UserError(f"the trie scorer supports full and sliding attention layers only; this model also has "
                        f"{', '.join(sorted(unknown))} layers, which it cannot mask")
    return kinds, window


def tree_mask(visible: torch.Tensor, pos_q: torch.Tensor, pos_k: torch.Tensor, dtype: torch.dtype,
              window: int | None = None) -> torch.Tensor:
    """Additive 4D mask (1, 1, query, key): 0 where `visible` (query, key) and, with a sliding
    `window`, pos_q - pos_k < window (the same rule as transformers' sliding_window_overlay);
    the dtype's minimum elsewhere."""
    allowed = visible
    if window is not None:
        allowed = allowed & ((pos_q[:, None] - pos_k[None, :]) < window)
    m = torch.zeros(allowed.shape, dtype=dtype)
    m.masked_fill_(~allowed, torch.finfo(dtype).min)
    return m[None, None]


def model_masks(model: torch.nn.Module, visible: torch.Tensor, pos_q: torch.Tensor, pos_k: torch.Tensor,
                dtype: torch.dtype) -> Any:
    """The attention mask a forward of `model` takes for this tree: one tensor, or {layer type: mask}."""
    kinds, window = mask_layer_types(model)
    if kinds is not None and len(kinds) > 1:
        return {k: tree_mask(visible, pos_q, pos_k, dtype, window if k == "sliding_attention" else None)
                for k in kinds}
    return tree_mask(visible, pos_q, pos_k, dtype, window if kinds == ["sliding_attention"] else None)


def trie_node_budget(vocab_size: int, budget_bytes: int = TRIE_LOGITS_BUDGET) -> int:
    """Nodes per forward so that the float32 logits and their log-softmax fit `budget_bytes`."""
    return max(16, budget_bytes // (2 * 4 * vocab_size))


__all__ = ["Trie", "build_trie", "TreePlan", "mask_layer_types", "tree_mask", "model_masks", "trie_node_budget",
           "TRIE_LOGITS_BUDGET"]
