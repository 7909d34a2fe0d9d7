"""Writes that cannot lose work, one run per output folder, remote schedulers without workers."""

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from matterflow.core.errors import ComputeError, InputError, StorageError
from matterflow.core.outdir import LOCK_NAME, RunLock, check_out_dir
from matterflow.core.store import atomic_h5, write_outputs


def test_full_disk_is_a_storage_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import matterflow.core.store as store

    real = store._GuardedFile.write

    def full(self, data):
        if self.pos > 4096:
            self.error = self.error or OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(store._GuardedFile, "write", full)
    with pytest.raises(StorageError, match="disk is full.*rerun"):
        with atomic_h5(tmp_path / "r.h5") as f:
            write_outputs(f.create_group("s"), {"a": np.arange(50000.0)}, {})
    assert list(tmp_path.iterdir()) == []


def test_write_into_a_folder_path_is_a_storage_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(StorageError, match="folder"):
        with atomic_h5(tmp_path / "d"):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_an_input_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(InputError, match="cannot write"):
        check_out_dir(ro)


def test_out_without_room_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="free"):
        check_out_dir(tmp_path, need_bytes=1 << 62)


def test_second_run_on_one_folder_stops_and_stale_lock_is_taken_over(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(InputError, match="another run is writing"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import json
    import socket
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(dead), "host": socket.gethostname()}))
    with RunLock(tmp_path) as lock:
        assert lock.held


def test_scheduler_without_workers_times_out_with_a_message():
    from distributed import Client, LocalCluster

    from matterflow.core.execute import wait_for_workers

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(ComputeError, match="0 of the 1 worker"):
            wait_for_workers(client, 1, 1.0, where=cluster.scheduler_address)
