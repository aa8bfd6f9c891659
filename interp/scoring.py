"""Batched scoring: next-token log-probs, teacher-forced continuation log-probs, target matrices.

All functions take a `LoadedModel` (or anything with `.model` and `.tokenizer`) and token ids,
left-pad a batch with an attention mask and explicit position ids
(position = cumsum(mask) - 1), so a padded batch gives the same numbers as one prompt at a
time (tested to 1e-5). Sequences are sorted by length before batching to bound padding.

    ids = encode(lm.tokenizer, prompts)                     # list[list[int]], BOS rule applied
    lp = next_token_logprobs(lm, ids)                       # (n_prompts, vocab) float32, log-softmax
    s = target_logprobs(lm, ids, [owl, dog])                # (n_prompts, n_targets) log P(target | prompt)
    per_tok = continuation_logprobs(lm, pairs)              # list of (len(cont),) arrays

Batches back off on out-of-memory (`interp.batching.run_with_backoff`: halve, retry, down to one
prompt). A model with an nnsight executor (`--remote`, `--serve`, or `executor.attach`) runs every
forward as an nnsight trace (`interp.mech.nnsight_run`), which computes the log-softmax (and picks
the wanted columns) where the weights are; the trie scorer then runs the whole trie in one forward
with a tree mask instead of a KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from interp.batching import run_with_backoff
from interp.errors import UserError
from interp.models.compat import cache_kwargs
from interp.models.executor import nnsight_executor
from interp.progress import progress_bar
from interp.prompts import Target

DEFAULT_BATCH = 16


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer prepends BOS by itself (Gemma does, SmolLM2 does not)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of prompt texts; BOS is prepended once when the tokenizer adds one by default
    and the text (e.g. a rendered chat template) does not already start with it."""
    add = adds_bos(tokenizer)
    out = []
    batch = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if len(texts) else []
    for ids in batch:  # one batched tokenizer call: the same ids as tokenizer.encode per text
        ids = list(ids)
        if add and not (ids and ids[0] == tokenizer.bos_token_id):
            ids = [tokenizer.bos_token_id] + ids
        out.append(ids)
    return out


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """input_ids, attention_mask, position_ids for left-padded `seqs`: each (batch, max_len)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s) == 0:
            raise ValueError("cannot score an empty sequence")
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device)}


MAX_BATCH_TOKENS = 8192  # padded tokens per forward; a long prompt gets a batch of its own


def _batches(order: list[int], size: int, lengths: Sequence[int] | None = None,
             max_tokens: int = MAX_BATCH_TOKENS) -> list[list[int]]:
    """Split `order` (sorted by length) into batches of at most `size` items and at most
    `max_tokens` padded tokens (len(batch) * longest), so one long prompt never pads a whole batch."""
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = max([lengths[j] for j in cur] + [lengths[i]]) if lengths is not None else 0
        if cur and (len(cur) >= size or (lengths is not None and width * (len(cur) + 1) > max_tokens)):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def length_plan(lengths: Sequence[int], max_tokens: int = MAX_BATCH_TOKENS) -> Callable[[list[int], int], list[list[int]]]:
    """`plan(items, size)` for `run_with_backoff`: `_batches` of the length-sorted items with a padded-token budget."""
    return lambda items, size: _batches(items, size, lengths, max_tokens)


@torch.no_grad()
def _last_logprobs(lm: Any, batch: dict[str, torch.Tensor], keep: int,
                   columns: Sequence[int] | None = None) -> torch.Tensor:
    """log-softmax of the last `keep` positions: (batch, keep, vocab or len(columns)), float32 on CPU.
    Through nnsight when the model has an executor (module docstring), else one plain HF forward."""
    if nnsight_executor(lm) is not None:
        from interp.mech.nnsight_run import logprobs

        return logprobs(lm, batch, keep, columns)
    out = lm.model(**batch, logits_to_keep=keep, use_cache=False)
    lp = torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1)
    return (lp[..., list(columns)] if columns is not None else lp).cpu()


def _input_device(lm: Any) -> torch.device | str:
    ex = nnsight_executor(lm)
    return "cpu" if ex is not None and ex.is_remote else _device(lm.model)


def next_token_logprobs(
    lm: Any, prompt_ids: Sequence[Sequence[int]], batch_size: int = DEFAULT_BATCH, progress: bool = False,
    description: str = "next-token log-probs", columns: Sequence[int] | None = None,
) -> torch.Tensor:
    """log P(next token | prompt), normalised over the full vocabulary: (n_prompts, vocab) float32,
    or (n_prompts, len(columns)) when only some token ids are wanted (saves memory on big vocabularies)."""
    tok = lm.tokenizer
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    lengths = [len(p) for p in prompt_ids]
    width = len(columns) if columns is not None else None
    result: dict[str, torch.Tensor] = {}
    with progress_bar(len(order), description, progress) as advance:

        def one(idx: list[int]) -> None:
            batch = left_pad([prompt_ids[i] for i in idx], tok.pad_token_id, _input_device(lm))
            lp = _last_logprobs(lm, batch, 1, columns)[:, -1, :]
            if "lp" not in result:
                result["lp"] = torch.empty((len(prompt_ids), width or lp.shape[-1]), dtype=torch.float32)
            result["lp"][idx] = lp
            advance(len(idx))

        run_with_backoff(order, batch_size, one, length_plan(lengths), what=description)
    assert "lp" in result, "no prompts given"
    return result["lp"]


def continuation_logprobs(
    lm: Any, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = DEFAULT_BATCH,
    progress: bool = False, description: str = "continuation log-probs",
) -> list[np.ndarray]:
    """Teacher-forced log P(c_i | context, c_<i) for each (context_ids, continuation_ids) pair.

    Returns one float64 array of shape (len(continuation),) per pair. The context must be
    non-empty (it holds at least BOS or the prompt).
    """
    tok = lm.tokenizer
    if any(len(c) == 0 for c, _ in pairs):
        raise ValueError("continuation_logprobs needs a non-empty context for every pair")
    seqs = [list(c) + list(x) for c, x in pairs]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    lengths = [len(x) for x in seqs]
    out: list[np.ndarray | None] = [None] * len(seqs)
    with progress_bar(len(order), description, progress) as advance:

        def one(idx: list[int]) -> None:
            n_cont = [len(pairs[i][1]) for i in idx]
            keep = max(n_cont) + 1
            batch = left_pad([seqs[i] for i in idx], tok.pad_token_id, _input_device(lm))
            lp = _last_logprobs(lm, batch, keep)  # positions predicting the last keep-1 tokens and one more
            for row, i in enumerate(idx):
                k = n_cont[row]
                cont = torch.tensor(list(pairs[i][1]), dtype=torch.long)
                # logits at position t predict token t+1; the last k tokens are predicted by positions -k-1..-2
                preds = lp[row, keep - 1 - k: keep - 1, :]
                out[i] = preds.gather(1, cont[:, None])[:, 0].double().numpy()
            advance(len(idx))

        run_with_backoff(order, batch_size, one, length_plan(lengths), what=description)
    return [o if o is not None else np.zeros(0) for o in out]


def target_logprobs(
    lm: Any, prompt_ids: Sequence[Sequence[int]], targets: Sequence[Target], batch_size: int = DEFAULT_BATCH,
    progress: bool = False, description: str = "scoring",
) -> np.ndarray:
    """log P(target | prompt) for every prompt x target: (n_prompts, n_targets), float64.

    A target's probability is the sum over its variants of each variant's joint (teacher-forced)
    probability. Single-token variants come from one next-token pass per prompt; multi-token
    variants add one pass per (prompt, variant).
    """
    single = sorted({t[0] for tg in targets for t in tg.token_ids if len(t) == 1})
    multi = sorted({t for tg in targets for t in tg.token_ids if len(t) > 1})
    logp: dict[tuple[int, ...], np.ndarray] = {}
    n = len(prompt_ids)
    if single:
        mat = next_token_logprobs(lm, prompt_ids, batch_size, progress, description, columns=single).double().numpy()
        for j, t in enumerate(single):
            logp[(t,)] = mat[:, j]
    if multi:
        pairs = [(p, m) for m in multi for p in prompt_ids]
        res = continuation_logprobs(lm, pairs, batch_size, progress, description)
        for k, m in enumerate(multi):
            logp[m] = np.array([res[k * n + i].sum() for i in range(n)])
    out = np.empty((n, len(targets)), dtype=np.float64)
    for j, tg in enumerate(targets):
        stack = np.stack([logp[t] for t in tg.token_ids], axis=0)
        out[:, j] = np.logaddexp.reduce(stack, axis=0)
    return out


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# ---- trie scoring: many continuations of one prompt, each trie node computed once -----------------
#
# A trie over the continuations' token sequences has one node per distinct proper prefix; the root
# (empty prefix) carries the context's last token. The context minus its last token is run once into
# a KV cache; then every node is fed as ONE new token on top of that cache, in BFS order, all in one
# forward (or a few chunks when the logits would not fit the memory budget) with a 4D tree attention
# mask: node q sees the context and its own ancestors (and itself), at position (len(context) - 1 +
# depth(q)). The node's next-token log-softmax (over the full vocabulary) scores its children, so
#
#     log P(c | context) = sum_i log softmax(logits(node(c_<i)))[c_i]
#
# exactly as one full forward per prefix would, with 1 + 10 + ... + 10^(L-1) new tokens for all
# 10^L numbers of L digits (when each digit is one token).

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


def _mask_layer_types(model: torch.nn.Module) -> tuple[list[str] | None, int | None]:
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


@torch.no_grad()
def _tree_forward(model: torch.nn.Module, cache: Any, tokens: list[int], positions: torch.Tensor,
                  visible: torch.Tensor, pos_all: torch.Tensor, keep_all: bool) -> torch.Tensor:
    """One forward of `tokens` (batch 1) appended to `cache`, with `visible` (query, past + query)
    as the attention pattern; returns logits (query or 1, vocab)."""
    kinds, window = _mask_layer_types(model)
    dtype = next(model.parameters()).dtype
    if kinds is not None and len(kinds) > 1:
        mask: Any = {k: tree_mask(visible, positions, pos_all, dtype, window if k == "sliding_attention" else None)
                     for k in kinds}
    else:
        slide = window if kinds == ["sliding_attention"] else None
        mask = tree_mask(visible, positions, pos_all, dtype, slide)
    dev = _device(model)
    if isinstance(mask, dict):
        mask = {k: v.to(dev) for k, v in mask.items()}
    else:
        mask = mask.to(dev)
    out = model(input_ids=torch.tensor([tokens], device=dev), position_ids=positions[None].to(dev),
                attention_mask=mask, **cache_kwargs(model, cache), use_cache=True, logits_to_keep=0 if keep_all else 1)
    return out.logits[0]


def trie_node_budget(vocab_size: int, budget_bytes: int = TRIE_LOGITS_BUDGET) -> int:
    """Nodes per forward so that the float32 logits and their log-softmax fit `budget_bytes`."""
    return max(16, budget_bytes // (2 * 4 * vocab_size))


@torch.no_grad()
def trie_logprobs(
    lm: Any, context_ids: Sequence[int], continuations: Sequence[Sequence[int]], max_nodes: int | None = None,
    progress: bool = False, description: str = "trie",
) -> np.ndarray:
    """log P(continuation | context) for every continuation: (n,) float64, each token normalised by a
    log-softmax over the full vocabulary (see the section comment above).

    One forward runs context[:-1] into a fresh full-length cache (no sliding-window eviction: the
    tree's positions are not its storage order); the trie's nodes then go in BFS chunks of at most
    `max_nodes` (default: `trie_node_budget`), each chunk appended to the same cache and masked so
    a node sees only the context and its ancestors. Every node is computed exactly once. A chunk
    that runs out of memory is retried in halves (the cache is cropped back first). A model with an
    nnsight executor runs the whole trie in one forward instead (`_trie_one_forward`).
    """
    model = lm.model
    ctx = list(context_ids)
    if not ctx:
        raise ValueError("trie_logprobs needs a non-empty context")
    trie = build_trie(ctx[-1], continuations)
    n_ctx = len(ctx) - 1  # tokens in the prompt cache
    n = trie.n_nodes
    depth = torch.tensor(trie.depth, dtype=torch.long)
    pos_all = torch.cat([torch.arange(n_ctx), n_ctx + depth])  # position of every cache entry
    # ancestors-or-self of every node, as global cache indices, padded with the node itself
    max_d = int(depth.max())
    anc = torch.empty((n, max_d + 1), dtype=torch.long)
    for i in range(n):
        j, row = i, []
        while j >= 0:
            row.append(n_ctx + j)
            j = trie.parent[j]
        anc[i] = torch.tensor(row + [n_ctx + i] * (max_d + 1 - len(row)))
    # which (sequence, step) pairs each node scores
    wanted: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for s, path in enumerate(trie.leaf_path):
        for node, tok in path:
            wanted[node].append((s, tok))
    if nnsight_executor(lm) is not None:
        return _trie_one_forward(lm, ctx, trie, pos_all, anc, wanted, len(continuations))

    from transformers import DynamicCache

    budget = max_nodes or trie_node_budget(int(model.config.vocab_size))
    cache = DynamicCache()
    if n_ctx:
        vis = torch.ones((n_ctx, n_ctx), dtype=torch.bool).tril()
        _tree_forward(model, cache, ctx[:-1], pos_all[:n_ctx], vis, pos_all[:n_ctx], keep_all=False)
    sums = np.zeros(len(continuations), dtype=np.float64)
    with progress_bar(n, description, progress) as advance:

        def chunk(nodes: list[int]) -> None:
            a, b = nodes[0], nodes[-1] + 1
            _crop(cache, n_ctx + a)  # drops what a chunk that ran out of memory may have appended
            vis = torch.zeros((b - a, n_ctx + b), dtype=torch.bool)
            vis[:, :n_ctx] = True
            vis.scatter_(1, anc[a:b], True)
            logits = _tree_forward(model, cache, trie.token[a:b], pos_all[n_ctx + a:n_ctx + b], vis,
                                   pos_all[:n_ctx + b], keep_all=True)
            lp = torch.log_softmax(logits.float(), dim=-1).double().cpu()
            rows, seqs, toks = _gather_plan(wanted, a, b)
            vals = lp[torch.tensor(rows, dtype=torch.long), torch.tensor(toks, dtype=torch.long)].numpy()
            np.add.at(sums, np.array(seqs, dtype=np.int64), vals)
            del logits, lp
            advance(b - a)

        run_with_backoff(list(range(n)), budget, chunk, what=description)
    return sums


def _crop(cache: Any, length: int) -> None:
    """Cut every layer of a DynamicCache back to `length` tokens (layers a failed forward reached
    may be longer than the others)."""
    for layer in getattr(cache, "layers", []):
        if getattr(layer, "is_initialized", False) and layer.get_seq_length() > length:
            layer.crop(length - layer.get_seq_length())


def _gather_plan(wanted: list[list[tuple[int, int]]], a: int, b: int) -> tuple[list[int], list[int], list[int]]:
    """(row within nodes a..b-1, sequence, token) for every log-prob those nodes contribute."""
    rows, seqs, toks = [], [], []
    for i in range(a, b):
        for s, tok in wanted[i]:
            rows.append(i - a)
            seqs.append(s)
            toks.append(tok)
    return rows, seqs, toks


def _trie_one_forward(lm: Any, ctx: list[int], trie: Trie, pos_all: torch.Tensor, anc: torch.Tensor,
                      wanted: list[list[tuple[int, int]]], n_seq: int) -> np.ndarray:
    """The trie in ONE nnsight forward without a cache: context[:-1] then every node, with the
    tree mask (the context causal; a node sees the context and its ancestors). The log-softmax
    and the gather run inside the trace, so only the wanted log-probs travel back."""
    from interp.mech.nnsight_run import tree_logprobs

    n_ctx, n = len(ctx) - 1, trie.n_nodes
    total = n_ctx + n
    vis = torch.zeros((total, total), dtype=torch.bool)
    vis[:n_ctx, :n_ctx] = torch.ones((n_ctx, n_ctx), dtype=torch.bool).tril()
    vis[n_ctx:, :n_ctx] = True
    vis[n_ctx:].scatter_(1, anc, True)
    kinds, window = _mask_layer_types(lm.model)
    span = int(pos_all.max()) + 1
    if kinds is not None and "sliding_attention" in kinds and window is not None and span > window:
        raise UserError(f"the one-forward trie (remote scoring) spans {span} positions, more than the sliding "
                        f"window ({window}); use a shorter prompt or --method vocab")
    mask = tree_mask(vis, pos_all, pos_all, _param_dtype(lm.model))
    rows, seqs, toks = _gather_plan(wanted, 0, n)
    vals = tree_logprobs(lm, torch.tensor([ctx[:-1] + trie.token]), pos_all[None], mask, n,
                         torch.tensor(rows, dtype=torch.long), torch.tensor(toks, dtype=torch.long)).numpy()
    sums = np.zeros(n_seq, dtype=np.float64)
    np.add.at(sums, np.array(seqs, dtype=np.int64), vals)
    return sums


def _param_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def split_continuations(tokenizer: PreTrainedTokenizerBase, prompt: str, suffixes: Sequence[str]
                        ) -> tuple[list[int], list[list[int]]]:
    """Canonical tokenisation of prompt + suffix for every suffix, split into a shared context and
    per-suffix continuations: context = the longest common prefix of encode(prompt) and every
    encode(prompt + suffix) (BOS rule of `encode`), continuation = the rest. When the prompt's own
    tokens are a prefix of every full encoding (digits after "is "), the context is encode(prompt)."""
    ctx = encode(tokenizer, [prompt])[0]
    full = encode(tokenizer, [prompt + s for s in suffixes])
    k = len(ctx)
    for f in full:
        m = 0
        while m < min(k, len(f)) and f[m] == ctx[m]:
            m += 1
        k = m
    if k == 0:
        raise ValueError("prompt and continuations share no tokens")
    conts = [f[k:] for f in full]
    if any(len(c) == 0 for c in conts):
        raise ValueError("a suffix adds no tokens to the prompt")
    return ctx[:k], conts


def digit_trie_logprobs(
    lm: Any, prompt: str, digits: int, max_nodes: int | None = None, progress: bool = False,
) -> tuple[list[str], np.ndarray]:
    """All 10**digits zero-padded numbers and log P(number | prompt) over their canonical tokens
    (prompt + number tokenised as one text), via `trie_logprobs`: ([numbers], (10**digits,) float64)."""
    numbers = [str(i).zfill(digits) for i in range(10**digits)]
    ctx, conts = split_continuations(lm.tokenizer, prompt, numbers)
    return numbers, trie_logprobs(lm, ctx, conts, max_nodes, progress, description=f"trie ({digits} digits)")
