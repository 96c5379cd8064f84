"""The chained run's meeting point (dlbridge.trainer.epoch_board) and its EPOCH frames, without Spark.

Workers are threads calling the board as the server's connection threads do; the driver's side
(wait_epoch, decide) runs on the test's thread.
"""
from __future__ import annotations

import threading

import pytest

from dlbridge.trainer import protocol as p
from dlbridge.trainer.client import ServerConnection
from dlbridge.trainer.epoch_board import BoardClosed, EpochBoard, EpochReport
from trainer_helpers import assert_no_leaks, small_model


def _report(partition: int, epoch: int, missing: bool = False) -> EpochReport:
    return EpochReport(partition, epoch, samples=10, loss_sum=5.0, pushes=1, correct=0, missing=missing,
                       state=b"")


def _ask(board: EpochBoard, partition: int, finished: EpochReport | None, attempt: int | None = None,
         attempt_number: int = 0) -> tuple[threading.Thread, dict]:
    """``board.next_epoch`` on a thread of its own (it blocks until the driver decides); attempt 100 + partition."""
    out: dict = {}

    def call() -> None:
        try:
            out["epoch"] = board.next_epoch(partition, 100 + partition if attempt is None else attempt, finished,
                                            attempt_number)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            out["error"] = e

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, out


def _answer(thread: threading.Thread, out: dict) -> int:
    thread.join(5)
    assert not thread.is_alive(), "next_epoch did not return"
    if "error" in out:
        raise out["error"]
    return out["epoch"]


def test_workers_wait_at_each_epoch_end_until_the_driver_decides() -> None:
    board = EpochBoard(2, 3, partitions=2)
    assert board.next_epoch(0, 100, None) == board.next_epoch(1, 101, None) == 2
    first, first_out = _ask(board, 0, _report(0, 2))
    first.join(0.2)
    assert first.is_alive(), "a worker that reported must wait for the driver"
    second, second_out = _ask(board, 1, _report(1, 2))
    assert sorted(r.partition for r in board.wait_epoch(2, patience=5)) == [0, 1]
    board.decide(2, go_on=True)
    assert _answer(first, first_out) == _answer(second, second_out) == 3
    # after the last epoch, going on means stopping
    done = [_ask(board, n, _report(n, 3)) for n in (0, 1)]
    assert len(board.wait_epoch(3, patience=5)) == 2
    board.decide(3, go_on=True)
    assert [_answer(*d) for d in done] == [0, 0]


def test_a_retried_attempt_trains_the_current_epoch_unless_its_partition_reported_it() -> None:
    board = EpochBoard(2, 4, partitions=2)
    assert board.next_epoch(0, 100, None) == board.next_epoch(1, 101, None) == 2
    board.detach(0, 100)  # the first attempt of partition 0 died mid-epoch (its connection dropped)
    assert board.next_epoch(0, 200, None) == 2  # its retry trains epoch 2 again
    assert board.next_epoch(0, 100, _report(0, 2)) == 0  # a report of the replaced attempt is not counted
    waiting, out = _ask(board, 1, _report(1, 2))
    waiting.join(0.2)
    board.detach(1, 101)  # partition 1 reported epoch 2, then its task was lost while waiting
    retry, retry_out = _ask(board, 1, None, attempt=201)
    retry.join(0.2)
    assert retry.is_alive(), "a retry of a partition that reported the epoch waits for the decision"
    finished, finished_out = _ask(board, 0, _report(0, 2), attempt=200)
    assert sorted(r.partition for r in board.wait_epoch(2, patience=5)) == [0, 1]
    board.decide(2, go_on=True)
    assert _answer(retry, retry_out) == _answer(finished, finished_out) == 3
    assert _answer(waiting, out) == 0  # the lost attempt's thread is answered too: it was replaced
    assert board.next_epoch(0, 200, _report(0, 2)) == 0  # a report of an epoch the run moved past


def test_a_second_attempt_stands_by_while_the_first_is_connected_and_takes_over_if_it_drops() -> None:
    board = EpochBoard(2, 3, partitions=1)
    assert board.next_epoch(0, 100, None) == 2
    copy, copy_out = _ask(board, 0, None, attempt=300, attempt_number=1)  # a speculative copy of the task
    copy.join(0.2)
    assert copy.is_alive(), "the copy must not train while the first attempt is connected"
    board.detach(0, 100)  # the first attempt's connection dropped in the middle of epoch 2
    assert _answer(copy, copy_out) == 2  # the copy trains epoch 2 from its start
    assert board.next_epoch(0, 100, _report(0, 2)) == 0  # the replaced attempt is stopped
    done, done_out = _ask(board, 0, _report(0, 2), attempt=300)
    assert len(board.wait_epoch(2, patience=5)) == 1
    board.decide(2, go_on=True)
    assert _answer(done, done_out) == 3


def test_a_first_attempt_of_a_newer_stage_attempt_ends_at_once_while_the_older_ones_task_trains_on() -> None:
    board = EpochBoard(2, 3, partitions=2)
    assert board.next_epoch(0, 100, None) == board.next_epoch(1, 101, None) == 2
    # partition 1's executor died; Spark resubmits the stage (attempt 1), whose task of partition 0 must not
    # hold a task slot while partition 0's first task trains on
    assert board.next_epoch(0, 200, None, attempt_number=0) == 0
    board.detach(1, 101)
    assert board.next_epoch(1, 201, None, attempt_number=0) == 2  # the lost partition's new task trains


def test_in_sync_mode_a_new_attempt_restarts_the_epoch_for_every_partition() -> None:
    board = EpochBoard(2, 3, partitions=2, whole_stage_retries=True)
    assert board.next_epoch(0, 100, None) == board.next_epoch(1, 101, None) == 2
    waiting, out = _ask(board, 0, _report(0, 2))  # partition 0 finished epoch 2, partition 1 died before reporting
    waiting.join(0.2)
    assert board.next_epoch(1, 201, None) == 2  # Spark retries the barrier stage: its tasks ask again
    assert board.reports(2) == []
    assert board.next_epoch(0, 200, None) == 2  # partition 0 trains epoch 2 again too
    assert _answer(waiting, out) == 0  # the old attempt of partition 0 stops
    retry, retry_out = _ask(board, 0, _report(0, 2), attempt=200)
    board.close("test over")
    with pytest.raises(BoardClosed, match="test over"):
        _answer(retry, retry_out)


def test_a_missing_partition_or_a_late_report_ends_the_run_and_keeps_what_arrived() -> None:
    board = EpochBoard(2, 5, partitions=3)
    assert [board.next_epoch(n, 100 + n, None) for n in range(3)] == [2, 2, 2]
    waiting, out = _ask(board, 0, _report(0, 2))
    missing, missing_out = _ask(board, 1, _report(1, 2, missing=True))
    got = board.wait_epoch(2, patience=0.3)  # partition 2 never reports
    assert sorted((r.partition, r.missing) for r in got) == [(0, False), (1, True)]
    board.stop()
    assert _answer(waiting, out) == _answer(missing, missing_out) == 0
    assert board.next_epoch(2, 102, None) == 0  # a task that starts after the stop trains nothing
    assert board.next_epoch(2, 102, _report(2, 2)) == 0  # a late report is kept
    assert sorted(r.partition for r in board.reports(2)) == [0, 1, 2]


def test_the_driver_stops_waiting_when_the_job_ends() -> None:
    board = EpochBoard(2, 3, partitions=2)
    ended = threading.Timer(0.2, board.job_ended)
    ended.start()
    assert board.wait_epoch(2, patience=60) == []
    ended.join()


def test_the_server_refuses_epoch_frames_outside_a_chained_run_and_serves_them_inside() -> None:
    from dlbridge.trainer.server import ParameterServer
    from dlbridge.trainer.store import WeightStore
    import keras

    model = small_model()
    store = WeightStore(model, keras.optimizers.SGD(0.1))
    secret = p.new_secret()
    server = ParameterServer(store, secret, "async", 2, "127.0.0.1", 5.0)
    try:
        with ServerConnection("127.0.0.1", server.port, secret, store.num_params, 5.0) as conn:
            with pytest.raises(p.ProtocolError, match="EPOCH frame outside a chained run"):
                conn.next_epoch({"partition": 0})
        server.board = EpochBoard(2, 2, partitions=2)
        with ServerConnection("127.0.0.1", server.port, secret, store.num_params, 5.0) as conn:
            assert conn.next_epoch({"partition": 1, "task_attempt_id": 7}) == 2
            with pytest.raises(p.ProtocolError, match="integer fields epoch"):
                conn.next_epoch({"partition": 1, "task_attempt_id": 7, "finished": {"samples": 3}})
        with ServerConnection("127.0.0.1", server.port, secret, store.num_params, 5.0) as conn:
            # partition 1's attempt 7 dropped with its connection; attempt 8 takes over (at once, or once the
            # server has seen the drop)
            assert conn.next_epoch({"partition": 1, "task_attempt_id": 8}) == 2
            finished = {"epoch": 2, "samples": 3, "loss_sum": 1.5, "pushes": 1, "correct": 0, "missing": False}
            waiting = threading.Timer(0.3, lambda: server.board.decide(2, go_on=True))
            waiting.start()
            assert conn.next_epoch({"partition": 1, "task_attempt_id": 8, "finished": finished},
                                   b"\x00\x00\x80\x3f") == 0
            waiting.join()
        (report,) = server.board.reports(2)
        assert (report.partition, report.samples, report.loss_sum, report.state) == (1, 3, 1.5, b"\x00\x00\x80\x3f")
    finally:
        server.close()
    assert_no_leaks(server.port)
