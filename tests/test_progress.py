"""Progress lines when stderr is not a terminal (issue 32): a line at the start, every further 10 %
or 30 s, and at the end; never one per item. A fake clock drives the time rule."""

from __future__ import annotations

from interp import progress as P


def lines_for(total: int, steps: list[tuple[int, float]]) -> list[str]:
    """Run advance(n) at each fake time t of `steps`; return the printed lines."""
    now, out = [0.0], []
    advance = P._log_lines(total, "work", clock=lambda: now[0], say=out.append)
    for n, t in steps:
        now[0] = t
        advance(n)
    return out


def test_start_every_tenth_and_end_without_a_line_per_item():
    out = lines_for(1000, [(1, i * 0.001) for i in range(1, 1001)])  # 1,000 items in 1 s
    assert out[0] == "work: 0/1000 (0%) 0 s elapsed"
    assert [ln.split()[1] for ln in out] == [f"{k}/1000" for k in range(0, 1001, 100)]  # start, 10 %, ..., end
    assert out[-1] == "work: 1000/1000 (100%) 1 s elapsed, ~0 s left"


def test_a_slow_job_logs_every_30_s_between_the_tenths():
    # 1,000 items, one per second: 10 % takes 100 s, so the 30 s rule adds lines in between
    out = lines_for(1000, [(1, float(i)) for i in range(1, 1001)])
    done = [int(ln.split()[1].split("/")[0]) for ln in out]
    assert done[:6] == [0, 30, 60, 90, 120, 150]  # the time rule; a tenth is never more than 30 s away here
    assert done[-1] == 1000 and len(out) <= 10 + 2 + 1000 // 30
    assert out[1] == "work: 30/1000 (3%) 30 s elapsed, ~970 s left"


def test_tenths_with_totals_not_divisible_by_ten_and_big_batches():
    out = lines_for(30, [(1, 0.0)] * 30)
    assert [ln.split()[1] for ln in out] == [f"{k}/30" for k in range(0, 31, 3)]  # 3 is 10 % of 30 (no float rounding)
    out = lines_for(7, [(5, 0.0), (2, 0.0)])
    assert [ln.split()[1] for ln in out] == ["0/7", "5/7", "7/7"]
    out = lines_for(0, [(1, 0.0)] * 5)  # an empty total: the start line, the end once, no line per item
    assert [ln.split()[1] for ln in out] == ["0/0", "1/0"]


def test_the_log_path_is_taken_off_a_terminal(monkeypatch):
    out = []
    monkeypatch.setattr(P._console, "print", lambda text, **kw: out.append(text))
    monkeypatch.setattr(type(P._console), "is_terminal", property(lambda self: False))
    with P.progress_bar(total=4, description="scoring") as advance:
        assert out == ["scoring: 0/4 (0%) 0 s elapsed"]  # before any work is done
        for _ in range(4):
            advance(1)
    assert [ln.split()[1] for ln in out] == ["0/4", "1/4", "2/4", "3/4", "4/4"]
