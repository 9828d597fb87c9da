"""Which stragglers get a backup: the pure decision."""

from segenc.distributed.backups import BACKUP_FACTOR, BACKUP_MARGIN, Running, choose
from segenc.layout import staged


def test_a_task_far_behind_a_fresh_copy_gets_a_backup_when_a_worker_is_idle():
    rates = [1e-9] * 5  # a fresh copy of cost 2e9 takes 2 s
    slow = Running("s0003", elapsed=6.0, progress=0.2, cost=2e9, worker="w1")  # 24 s left
    fine = Running("s0004", elapsed=1.5, progress=0.6, cost=2e9, worker="w2")  # 1 s left
    assert [n for n, _ in choose([slow, fine], rates, idle=3, budget=5)] == ["s0003"]
    assert choose([slow], rates, idle=0, budget=5) == []  # no idle worker
    assert choose([slow], rates, idle=2, budget=0) == []  # the job's share is used up
    assert choose([slow], [], idle=2, budget=1) == []  # nothing finished yet: no rate to compare with


def test_no_progress_counts_only_after_a_fresh_copy_would_long_be_done():
    rates = [1e-9]
    limit = BACKUP_FACTOR * 2 + BACKUP_MARGIN
    assert choose([Running("a", elapsed=limit - 0.1, progress=0.0, cost=2e9)], rates, 1, 1) == []
    (name, why), = choose([Running("a", elapsed=limit + 0.1, progress=0.0, cost=2e9)], rates, 1, 1)
    assert name == "a" and "unknown left" in why


def test_backups_go_to_the_worst_first_and_never_exceed_idle_workers():
    rates = [1e-9]
    tasks = [Running(f"t{i}", elapsed=10.0, progress=p, cost=1e9) for i, p in enumerate((0.5, 0.1, 0.3))]
    assert [n for n, _ in choose(tasks, rates, idle=2, budget=10)] == ["t1", "t2"]


def test_an_attempt_writes_beside_the_final_path_under_a_hidden_name():
    assert staged("work/j/chunks/720p/s0003.ts", "ab12") == "work/j/chunks/720p/.ab12.s0003.ts"
