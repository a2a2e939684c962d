"""Downloads from a loopback HTTP server: resuming an interrupted transfer, checksums (pinned, the publisher's,
recorded on first download), mirrors, archives extracted safely, and `bench data download` end to end."""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from helpers.http_server import serving
from helpers.video_fixtures import make_kth

from vpbench.errors import UserError
from vpbench.fetch import MIRROR_ENV, Remote, fetch, mirror_from
from vpbench.fetch.archives import extract
from vpbench.fetch.catalogue import DataEntry, DataFile, data_entries, metric_weights, openstl_checkpoints
from vpbench.fetch.entries import fetch_entry
from vpbench.fetch.manifest import FILE as MANIFEST

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


@pytest.fixture
def http_files(tmp_path):
    with serving(tmp_path / "served") as server:
        yield server


def serve(server, name: str = "weights.pth", data: bytes = PAYLOAD) -> Remote:
    """``data`` served as ``name``; the Remote of its official address (never reached: the tests use the mirror)."""
    (server.root / name).write_bytes(data)
    return Remote(f"https://example.org/releases/{name}", name)


def test_an_interrupted_download_keeps_its_part_and_the_next_run_resumes_it(http_files, tmp_path):
    remote = serve(http_files)
    http_files.behaviour.drop_after["weights.pth"] = len(PAYLOAD) // 2
    out = tmp_path / "out"
    with pytest.raises(UserError, match="interrupted .* run the same command again to resume") as err:
        fetch(remote, out, mirror=http_files.url, retries=0, progress=False)
    assert "\n" not in str(err.value)
    part = out / "weights.pth.part"
    assert part.read_bytes() == PAYLOAD[:len(PAYLOAD) // 2] and not (out / "weights.pth").exists()

    path = fetch(remote, out, mirror=http_files.url, retries=0, progress=False)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert http_files.behaviour.requests == [("weights.pth", None), ("weights.pth", f"bytes={len(PAYLOAD) // 2}-")]
    recorded = json.loads((out / MANIFEST).read_text())["files"]["weights.pth"]
    assert recorded["sha256"] == hashlib.sha256(PAYLOAD).hexdigest() and recorded["checksum"] == "recorded"
    assert recorded["url"] == remote.url and recorded["bytes"] == len(PAYLOAD)


def test_an_interruption_is_resumed_within_one_run(http_files, tmp_path):
    remote = serve(http_files)
    http_files.behaviour.drop_after["weights.pth"] = 1000
    path = fetch(remote, tmp_path, mirror=http_files.url, retries=1, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [r for _, r in http_files.behaviour.requests] == [None, "bytes=1000-"]


def test_a_server_without_ranges_sends_the_whole_file_again(http_files, tmp_path):
    remote = serve(http_files)
    http_files.behaviour.ranges = False
    (tmp_path / "weights.pth.part").write_bytes(b"stale bytes of another file")
    assert fetch(remote, tmp_path, mirror=http_files.url, progress=False).read_bytes() == PAYLOAD


def test_a_checksum_mismatch_is_one_line_and_leaves_no_file(http_files, tmp_path):
    remote = serve(http_files)
    wrong = "0" * 64
    with pytest.raises(UserError, match="SHA-256 .* is not the one given with --sha256 .* the download was removed"):
        fetch(remote, tmp_path, mirror=http_files.url, sha256=wrong, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]
    publisher = Remote(remote.url, remote.path, md5="0" * 32)
    with pytest.raises(UserError, match="MD5 .* is not the publisher's"):
        fetch(publisher, tmp_path / "out", mirror=http_files.url, progress=False)
    assert not any((tmp_path / "out").glob("weights.pth*"))


def test_the_checksums_given_by_the_publisher_are_checked(http_files, tmp_path):
    digest, md5 = hashlib.sha256(PAYLOAD).hexdigest(), hashlib.md5(PAYLOAD).hexdigest()
    serve(http_files)
    remote = Remote("https://example.org/weights.pth", "weights.pth", sha256=digest, sha256_prefix=digest[:8], md5=md5)
    fetch(remote, tmp_path, mirror=http_files.url, progress=False)
    assert json.loads((tmp_path / MANIFEST).read_text())["files"]["weights.pth"]["checksum"] == "publisher"
    serve(http_files, "other.pth")
    with pytest.raises(UserError, match="does not start with the publisher's 00000000"):
        fetch(Remote("https://example.org/other.pth", "other.pth", sha256_prefix="00000000"), tmp_path,
              mirror=http_files.url, progress=False)


def test_the_recorded_checksum_is_checked_on_later_runs(http_files, tmp_path):
    remote = serve(http_files)
    fetch(remote, tmp_path, mirror=http_files.url, progress=False)
    fetch(remote, tmp_path, mirror=http_files.url, progress=False)  # complete: checked, not downloaded again
    assert len(http_files.behaviour.requests) == 1
    (tmp_path / "weights.pth").write_bytes(b"tampered")
    with pytest.raises(UserError, match="not the one recorded when it was first downloaded .* delete it"):
        fetch(remote, tmp_path, mirror=http_files.url, progress=False)
    assert (tmp_path / "weights.pth").read_bytes() == b"tampered"  # the user's file is never deleted
    (tmp_path / "weights.pth").unlink()
    serve(http_files, data=PAYLOAD[::-1])  # the publisher changed the file
    with pytest.raises(UserError, match="not the one recorded"):
        fetch(remote, tmp_path, mirror=http_files.url, progress=False)
    assert not any(tmp_path.glob("weights.pth*"))


def test_mirror_replaces_scheme_host_and_path_keeping_the_file_name(http_files, tmp_path, monkeypatch):
    serve(http_files, name="2m_temperature_5.625deg.zip", data=PAYLOAD)
    remote = Remote("https://dataserv.ub.tum.de/s/m1524895/download?path=%2F5.625deg%2F2m_temperature&files="
                    "2m_temperature_5.625deg.zip", "2m_temperature_5.625deg.zip")
    monkeypatch.setenv(MIRROR_ENV, http_files.url + "/")
    assert fetch(remote, tmp_path, mirror=mirror_from(None), progress=False).read_bytes() == PAYLOAD
    assert http_files.behaviour.requests == [("2m_temperature_5.625deg.zip", None)]
    with pytest.raises(UserError, match="--mirror 'proxy:3128'"):
        mirror_from("proxy:3128")


def test_unreachable_and_missing_files_are_one_line_errors(http_files, tmp_path):
    with pytest.raises(UserError, match="HTTP 404 Not Found; check the address"):
        fetch(Remote("https://example.org/missing.npy", "missing.npy"), tmp_path, mirror=http_files.url,
              progress=False)
    with pytest.raises(UserError, match="cannot connect"):
        fetch(Remote("http://127.0.0.1:9/x.npy", "x.npy"), tmp_path, progress=False)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_archives_are_extracted_once_and_paths_outside_are_refused(http_files, tmp_path):
    serve(http_files, "set.zip", zipped({"set/a.txt": b"a", "set/b/c.txt": b"c"}))
    entry = DataEntry("set", "a set", None, None, (DataFile(Remote("https://example.org/set.zip", "set.zip"),
                                                             extract_to="inside"),))
    lines: list[str] = []
    fetch_entry(entry, tmp_path / "out", mirror=http_files.url, log=lines.append, progress=False)
    assert (tmp_path / "out" / "inside" / "set" / "b" / "c.txt").read_bytes() == b"c"
    assert any("extracted set into" in line for line in lines)
    (tmp_path / "out" / "inside" / "set" / "a.txt").unlink()
    fetch_entry(entry, tmp_path / "out", mirror=http_files.url, log=lines.append, progress=False)
    assert not (tmp_path / "out" / "inside" / "set" / "a.txt").exists()  # recorded as extracted: not again

    evil = tmp_path / "evil.zip"
    evil.write_bytes(zipped({"ok.txt": b"ok", "../escaped.txt": b"x"}))
    with pytest.raises(UserError, match="'../escaped.txt' would be written outside the folder"):
        extract(evil, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "dest" / "ok.txt").exists()


def test_files_listed_in_a_catalogue_csv_are_fetched(http_files, tmp_path):
    serve(http_files, "CATALOG.csv", b"id,file_name,img_type\n1,vil/a.h5,vil\n2,ir/b.h5,ir069\n3,vil/a.h5,vil\n")
    serve(http_files, "a.h5", b"radar")
    entry = data_entries()["sevir"]
    fetch_entry(entry, tmp_path, mirror=http_files.url, log=lambda line: None, progress=False)
    assert (tmp_path / "data" / "vil" / "a.h5").read_bytes() == b"radar"
    assert [name for name, _ in http_files.behaviour.requests] == ["CATALOG.csv", "a.h5"]


def test_bench_data_download_extracts_and_checks_kth(bench, http_files, tmp_path):
    """OpenSTL's kth_action.zip (frame folders) through the mirror, extracted, then `bench data check`."""
    frames = make_kth(tmp_path / "kth", layout="frames")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(frames.rglob("*.png")):
            zf.write(path, Path("kth_action") / path.relative_to(frames))
    serve(http_files, "kth_action.zip", buffer.getvalue())
    out = tmp_path / "data"
    code, stdout, err = bench("data", "download", "kth-frames", "--to", out, "--mirror", http_files.url,
                              "--preset", "tiny")
    assert code == 0, err
    assert (out / "kth_action" / "boxing" / "person01_boxing_d1_uncomp" / "image_0001.png").is_file()
    assert "kth_action.zip: extracted kth_action into" in stdout
    assert "bench data check --dataset kth" in stdout and "unreadable: none" in stdout
    assert f"done: --dataset kth --data-dir {out}" in stdout
    code, _, err = bench("data", "download", "kth-frames", "--to", out, "--mirror", http_files.url,
                         "--sha256", "f" * 64)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "the file changed since" in err


def test_bench_data_download_lists_and_gives_instructions(bench):
    code, out, _ = bench("data", "download")
    assert code == 0 and "mmnist" in out and "human36m" in out and "instructions only (licence)" in out
    code, out, _ = bench("data", "download", "human36m")
    assert code == 0 and "not downloaded" in out and "vision.imar.ro" in out
    code, _, err = bench("data", "download", "mnist")
    assert code == 2 and "no published data set 'mnist'" in err


def test_catalogues_hold_official_addresses():
    """Every address is the publisher's (https or http, no mirror), each file name once per data set."""
    for entry in data_entries().values():
        names = [f.remote.path for f in entry.files]
        assert len(names) == len(set(names)), entry.name
        assert all(f.remote.url.startswith(("http://", "https://")) for f in entry.files)
    assert data_entries()["mmnist"].files[0].remote.url == \
        "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"
    assert metric_weights()["lpips-alexnet"].remote.sha256_prefix == "7be5be79"
    zoo = openstl_checkpoints()
    assert len(zoo) == len(set(zoo)) > 200
    assert "https://github.com/chengtan9907/OpenSTL/releases/download/mmnist-weights/mmnist_convlstm_one_ep200.pth" in zoo
    assert all(os.path.basename(url).endswith(".pth") for url in zoo)
