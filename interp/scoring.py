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
prompt). Every forward runs through the model's engine (`lm.engine`, chosen at load:
`interp.models.engine`), which computes the log-softmax (and picks the wanted columns) where the
weights are; the trie scorer hands the engine the whole trie (`interp.models.tree.TreePlan`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from interp.batching import run_with_backoff
from interp.models.loaded import LoadedModel
from interp.models.tree import TreePlan, Trie, build_trie, tree_mask, trie_node_budget  # noqa: F401 (re-exported)
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


def _last_logprobs(lm: LoadedModel, batch: dict[str, torch.Tensor], keep: int,
                   columns: Sequence[int] | None = None) -> torch.Tensor:
    """log-softmax of the last `keep` positions: (batch, keep, vocab or len(columns)), float32 on CPU."""
    return lm.engine.logprobs(batch, keep, columns)


def _input_device(lm: LoadedModel) -> torch.device | str:
    return lm.engine.input_device


def next_token_logprobs(
    lm: LoadedModel, prompt_ids: Sequence[Sequence[int]], batch_size: int = DEFAULT_BATCH, progress: bool = False,
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
    lm: LoadedModel, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = DEFAULT_BATCH,
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
    lm: LoadedModel, prompt_ids: Sequence[Sequence[int]], targets: Sequence[Target], batch_size: int = DEFAULT_BATCH,
    progress: bool = False, description: str = "scoring",
) -> np.ndarray:
    """log P(target | prompt) for every prompt x target: (n_prompts, n_targets), float64.

    A target's probability is the sum over its variants of each variant's joint (teacher-forced)
    probability. With local weights and a multi-token variant, each prompt and all its variants are
    one trie (`shared_prefix_logprobs`: the prompt computed once); otherwise (single tokens only, or a
    hosted engine) single-token variants come from one next-token pass per prompt (only their columns
    leave the engine) and multi-token variants add one pass per (prompt, variant).
    """
    single = sorted({t[0] for tg in targets for t in tg.token_ids if len(t) == 1})
    multi = sorted({t for tg in targets for t in tg.token_ids if len(t) > 1})
    logp: dict[tuple[int, ...], np.ndarray] = {}
    n = len(prompt_ids)
    if multi and lm.engine.describe() is None:  # local weights: every variant of a prompt in one trie
        variants = [(t,) for t in single] + multi
        res = shared_prefix_logprobs(lm, [(p, v) for p in prompt_ids for v in variants], batch_size, progress, description)
        for k, v in enumerate(variants):
            logp[v] = np.array([res[i * len(variants) + k].sum() for i in range(n)])
        single, multi = [], []
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


# ---- trie scoring: many continuations of one prompt, each trie node computed once -----------------
# (the trie and its tree mask: interp.models.tree; how the nodes run: the engine)


def trie_logprobs(
    lm: LoadedModel, context_ids: Sequence[int], continuations: Sequence[Sequence[int]], max_nodes: int | None = None,
    progress: bool = False, description: str = "trie",
) -> np.ndarray:
    """log P(continuation | context) for every continuation: (n,) float64, each token normalised by a
    log-softmax over the full vocabulary:

        log P(c | context) = sum_i log softmax(logits(node(c_<i)))[c_i]

    Every trie node is computed exactly once (`interp.models.tree`); how the nodes run is the
    engine's (`lm.engine.trie_logprobs`: e.g. BFS chunks of at most `max_nodes` on top of the
    context's KV cache, or the whole tree in one cache-free forward for a remote engine).
    """
    plan = TreePlan.build(context_ids, continuations)
    return lm.engine.trie_logprobs(plan, max_nodes, progress, description)


def forest_logprobs(
    lm: LoadedModel, plans: Sequence[TreePlan], progress: bool = False, description: str = "trie forest",
    max_tokens: int | None = None,
) -> list[list[np.ndarray]]:
    """Teacher-forced log P(c_i | context, c_<i) for every continuation of every plan (per plan, one
    (len(continuation),) float64 array per continuation): several small tries per forward, each
    cache-free and right-padded, so every token position of every trie (its context and its nodes) is
    computed once per forward batch:

        row = context[:-1] + nodes;  the context causal, a node sees the context and its ancestors (and
        itself), padding sees itself only; positions = the plan's `pos_all` (0 for padding)

    Only the nodes reach the LM head (`HeadPositions`: no padding or context position), and a log-prob is
    logit - logsumexp(logits) at the wanted token (no vocabulary-sized log-softmax kept). E.g. the two
    sentences of a CrowS pair share their prefix: one trie computes it once. At most `max_tokens` padded
    positions per forward (default `trie_node_budget`: the float32 logits of a forward's nodes stay within
    its budget); tries sorted by size to bound padding. Local weights only (`lm.engine.forward`)."""
    from interp.models.head_positions import HeadPositions
    from interp.models.tree import model_masks

    if not plans:
        return []
    model = lm.model
    dtype = next(model.parameters()).dtype
    seqs = [p.ctx[:-1] + p.trie.token for p in plans]
    lengths = [len(x) for x in seqs]
    order = sorted(range(len(plans)), key=lengths.__getitem__)
    budget = max(max(lengths), max_tokens or trie_node_budget(int(model.config.vocab_size)))
    out: list[list[np.ndarray]] = [[] for _ in plans]
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    with progress_bar(len(order), description, progress) as advance, torch.no_grad(), HeadPositions(lm) as head:

        def one(idx: list[int]) -> None:
            width = max(lengths[i] for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            pos = torch.zeros((len(idx), width), dtype=torch.long)
            masks: list[Any] = []
            rows: list[int] = []
            cols: list[int] = []
            offset: list[int] = []
            for r, i in enumerate(idx):
                p, n = plans[i], lengths[i]
                ids[r, :n] = torch.tensor(seqs[i], dtype=torch.long)
                pos[r, :n] = p.pos_all
                vis = torch.eye(width, dtype=torch.bool)
                vis[:p.n_ctx, :p.n_ctx] = torch.ones((p.n_ctx, p.n_ctx), dtype=torch.bool).tril()
                vis[p.n_ctx:n, :p.n_ctx] = True
                vis[p.n_ctx:n].scatter_(1, p.anc, True)
                masks.append(model_masks(model, vis, pos[r], pos[r], dtype))
                offset.append(len(cols))
                rows += [r] * p.trie.n_nodes
                cols += range(p.n_ctx, n)
            mask = ({k: torch.cat([m[k] for m in masks]) for k in masks[0]} if isinstance(masks[0], dict)
                    else torch.cat(masks))
            dev = _input_device(lm)
            head.select(torch.tensor(rows), torch.tensor(cols))
            logits = lm.engine.forward(
                input_ids=ids.to(dev), position_ids=pos.to(dev), use_cache=False,
                attention_mask={k: v.to(dev) for k, v in mask.items()} if isinstance(mask, dict) else mask.to(dev),
            ).logits[0].float()  # (nodes of the batch, vocab)
            lse = torch.logsumexp(logits, dim=-1)
            for r, i in enumerate(idx):
                at = [[offset[r] + node for node, _ in path] for path in plans[i].trie.leaf_path]
                flat = torch.tensor([a for path in at for a in path], dtype=torch.long, device=logits.device)
                toks = torch.tensor([t for path in plans[i].trie.leaf_path for _, t in path], dtype=torch.long,
                                    device=logits.device)
                vals = (logits[flat, toks] - lse[flat]).double().cpu().numpy()
                cuts = np.cumsum([len(path) for path in at])[:-1]
                out[i] = list(np.split(vals, cuts))
            advance(len(idx))

        run_with_backoff(order, len(order), one, length_plan(lengths, budget), what=description)
    return out


TRIE_GROUP = 8  # most continuations per trie in `shared_prefix_logprobs` when they share only a first token
TRIE_GROUP_LONG = 64  # ... and when they share a context of two or more tokens (a prompt)


def prefix_groups(pairs: Sequence[tuple[tuple[int, ...], tuple[int, ...]]], group: int = TRIE_GROUP,
                  group_long: int = TRIE_GROUP_LONG) -> list[tuple[tuple[int, ...], list[int]]]:
    """(context, indices of its continuations) per trie: the continuations of each context in token
    order. With a context of two or more tokens (a prompt) they all share it: up to `group_long` go
    into one trie. With a one-token context (BOS) a run of neighbours that share their first token
    goes into one trie (at most `group`), and a continuation that shares nothing with its neighbour
    starts a new one (a trie of one is a plain causal row, so unrelated sentences never widen each
    other's attention)."""
    by_ctx: dict[tuple[int, ...], list[int]] = {}
    for i, (ctx, _) in enumerate(pairs):
        by_ctx.setdefault(ctx, []).append(i)
    out: list[tuple[tuple[int, ...], list[int]]] = []
    for ctx, members in by_ctx.items():
        cap = group_long if len(ctx) > 1 else group
        cur: list[int] = []
        for i in sorted(members, key=lambda j: pairs[j][1]):
            if cur and (len(cur) >= cap or (len(ctx) <= 1 and pairs[cur[-1]][1][:1] != pairs[i][1][:1])):
                out.append((ctx, cur))
                cur = []
            cur.append(i)
        out.append((ctx, cur))
    return out


def shared_prefix_logprobs(
    lm: LoadedModel, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = DEFAULT_BATCH,
    progress: bool = False, description: str = "continuation log-probs",
) -> list[np.ndarray]:
    """`continuation_logprobs` (one (len(continuation),) float64 array per pair) with every distinct
    token position computed once: identical pairs are scored once, and the continuations of one context
    that share a start go into one trie (`prefix_groups`, `forest_logprobs`): the two sentences of a
    CrowS pair, StereoSet's candidates, several responses to one prompt. Equal to the plain path within
    fp32 summation order (1e-4 on a sentence's sum in the tests). A hosted model (remote / served engine)
    takes the plain path, with `batch_size`; the tries are batched by a token budget."""
    if any(len(c) == 0 or len(x) == 0 for c, x in pairs):
        raise ValueError("shared_prefix_logprobs needs a non-empty context and continuation for every pair")
    keys = [(tuple(int(t) for t in c), tuple(int(t) for t in x)) for c, x in pairs]
    unique = list(dict.fromkeys(keys))
    if lm.engine.describe() is not None:
        got = continuation_logprobs(lm, [(list(c), list(x)) for c, x in unique], batch_size, progress, description)
    else:
        groups = prefix_groups(unique)
        scored = forest_logprobs(lm, [TreePlan.build(list(ctx), [list(unique[i][1]) for i in members])
                                      for ctx, members in groups], progress=progress, description=description)
        got = [np.zeros(0)] * len(unique)
        for (_, members), arrays in zip(groups, scored):
            for i, a in zip(members, arrays):
                got[i] = a
    where = {k: i for i, k in enumerate(unique)}
    return [got[where[k]] for k in keys]


def split_continuations(tokenizer: PreTrainedTokenizerBase, prompt: str, suffixes: Sequence[str]
                        ) -> tuple[list[int], list[list[int]]]:
    """Canonical tokenisation of prompt + suffix for every suffix, split into a shared context and
    per-suffix continuations: context = the longest common prefix of encode(prompt) and every
    encode(prompt + suffix) (BOS rule of `encode`), continuation = the rest. When the prompt's own
    tokens are a prefix of every full encoding (digits after "is "), the context is encode(prompt).

    Speed: a tokenizer splits its text at special tokens before anything else, so with a chat prompt
    only the text after its last special token (e.g. "My favorite number is ") is tokenised again with
    each suffix: encode(prompt + s) = encode(head) + encode(tail + s). The identity is checked on the
    prompt and on 16 suffixes spread over the list, each against a full encoding; if one differs, every
    suffix is tokenised in full."""
    ctx = encode(tokenizer, [prompt])[0]
    fast = _fast_full(tokenizer, prompt, suffixes, ctx)
    full, start = (encode(tokenizer, [prompt + s for s in suffixes]), 0) if fast is None else fast
    k = len(ctx)
    for f in full:  # the first `start` tokens (the head) are shared by construction
        m = start
        while m < min(k, len(f)) and f[m] == ctx[m]:
            m += 1
        k = m
    if k == 0:
        raise ValueError("prompt and continuations share no tokens")
    conts = [f[k:] for f in full]
    if any(len(c) == 0 for c in conts):
        raise ValueError("a suffix adds no tokens to the prompt")
    return ctx[:k], conts


def _fast_full(tokenizer: PreTrainedTokenizerBase, prompt: str, suffixes: Sequence[str], ctx: list[int]
               ) -> tuple[list[list[int]], int] | None:
    """(encode(prompt + s) for every suffix as encode(head) + encode(tail + s), len(encode(head))), split
    after the prompt's last special token (`split_continuations`); None when the prompt has none or a
    check fails."""
    specials = [t for t in tokenizer.all_special_tokens if t]
    cut = max((prompt.rfind(t) + len(t) for t in specials if t in prompt), default=-1)
    if cut <= 0 or cut >= len(prompt) or len(suffixes) < 32:
        return None
    head, tail = prompt[:cut], prompt[cut:]
    head_ids = encode(tokenizer, [head])[0]
    texts = [tail] + [tail + s for s in suffixes]
    backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: no per-text Python wrapper
    tails = ([e.ids for e in backend.encode_batch(texts, add_special_tokens=False)] if backend is not None
             else tokenizer(texts, add_special_tokens=False)["input_ids"])
    if head_ids + list(tails[0]) != ctx:
        return None
    full = [head_ids + list(t) for t in tails[1:]]
    probe = sorted({round(i * (len(suffixes) - 1) / 15) for i in range(16)})
    if encode(tokenizer, [prompt + suffixes[i] for i in probe]) != [full[i] for i in probe]:
        return None
    return full, len(head_ids)


def digit_trie_logprobs(
    lm: LoadedModel, prompt: str, digits: int, max_nodes: int | None = None, progress: bool = False,
) -> tuple[list[str], np.ndarray]:
    """All 10**digits zero-padded numbers and log P(number | prompt) over their canonical tokens
    (prompt + number tokenised as one text), via `trie_logprobs`: ([numbers], (10**digits,) float64)."""
    numbers = [str(i).zfill(digits) for i in range(10**digits)]
    ctx, conts = split_continuations(lm.tokenizer, prompt, numbers)
    return numbers, trie_logprobs(lm, ctx, conts, max_nodes, progress, description=f"trie ({digits} digits)")
