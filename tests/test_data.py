"""mlearn data: reading, the shipped copies, and the embedded / mirror / download / checksum
logic of ``fetch_mlearn``.

No test touches the network: the downloader is always replaced by a fake one, and an autouse
fixture makes any socket connection fail loudly.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from milad import data as mdata
from milad.data import (
    MLEARN_COMMIT,
    MLEARN_ELEMENTS,
    MLEARN_EMBEDDED_DIR,
    MLEARN_SHA256,
    MLEARN_SPLITS,
    ChecksumError,
    DataUnavailableError,
    fetch_mlearn,
    fetch_mlearn_all,
    mlearn_url,
    read_mlearn,
)

SHARED_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


# every test here fails if it tries to use the network (fixture in conftest.py)
pytestmark = pytest.mark.usefixtures("no_network")


def _record(n_atoms: int = 2, energy: float = -10.0, group: str = "Elastic") -> dict:
    """One mlearn record in the pymatgen Structure dictionary layout."""
    rng = np.random.default_rng(n_atoms)
    return {
        "structure": {
            "lattice": {"matrix": (4.0 * np.eye(3)).tolist()},
            "sites": [
                {"xyz": rng.uniform(0, 4, 3).tolist(), "species": [{"element": "Si", "occu": 1}]}
                for _ in range(n_atoms)
            ],
        },
        "outputs": {"energy": energy, "forces": rng.normal(size=(n_atoms, 3)).tolist(),
                    "virial_stress": [0.0] * 6},
        "group": group,
        "description": "synthetic",
        "num_atoms": n_atoms,
        "tag": "test",
    }


def _write_json(path: Path, records) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pinned(monkeypatch, tmp_path):
    """Pin digests for synthetic files: ``pinned(element, split, digest)``; the shipped copies
    (which cannot match such a pin) are replaced by the empty folder ``tmp_path/embedded``."""
    (tmp_path / "embedded").mkdir()
    monkeypatch.setattr(mdata, "MLEARN_EMBEDDED_DIR", tmp_path / "embedded")

    def pin(element, split, digest):
        monkeypatch.setitem(MLEARN_SHA256, (element, split), digest)

    return pin


def _no_download(url, destination):
    raise AssertionError(f"should not download {url}")


def test_read_mlearn_builds_periodic_atoms_with_labels(tmp_path):
    path = tmp_path / "Si" / "training.json"
    _write_json(path, [_record(2, -10.0), _record(3, -15.5, "Surface")])
    frames = read_mlearn(path)
    assert [len(a) for a in frames] == [2, 3]
    assert all(a.pbc.all() for a in frames)
    assert frames[1].get_potential_energy() == -15.5
    assert frames[1].get_forces().shape == (3, 3)
    assert frames[1].info["group"] == "Surface"
    np.testing.assert_allclose(frames[0].cell[:], 4.0 * np.eye(3))


def test_url_is_the_raw_github_file_at_the_pinned_commit():
    assert mlearn_url("Si", "test") == (
        "https://raw.githubusercontent.com/materialsvirtuallab/mlearn/"
        f"{MLEARN_COMMIT}/data/Si/test.json"
    )
    assert MLEARN_COMMIT == "10c427a5480c6281c15c64efaf869b03be04818f"
    with pytest.raises(ValueError, match="split"):
        mlearn_url("Si", "train")
    assert set(MLEARN_SHA256) == {(e, s) for e in MLEARN_ELEMENTS for s in MLEARN_SPLITS}


def test_mirror_copy_is_verified_and_copied(tmp_path, pinned):
    digest = _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record()])
    pinned("Si", "test", digest)
    fetched = fetch_mlearn("Si", "test", tmp_path / "out" / "test.json",
                           mirror=tmp_path / "mirror", download=False)
    assert fetched.source == "mirror" and fetched.verified and fetched.sha256 == digest
    assert (tmp_path / "out" / "test.json").read_bytes() == (
        tmp_path / "mirror" / "Si" / "test.json").read_bytes()


def test_corrupt_mirror_file_is_detected(tmp_path, pinned):
    digest = _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record()])
    pinned("Si", "test", digest)
    with open(tmp_path / "mirror" / "Si" / "test.json", "ab") as handle:
        handle.write(b" ")  # one byte more: same JSON, different file
    with pytest.raises(ChecksumError, match="sha256 mismatch") as error:
        fetch_mlearn("Si", "test", tmp_path / "out" / "test.json", mirror=tmp_path / "mirror",
                     download=False)
    assert "mirror" in str(error.value) and "Si/test.json" in str(error.value)
    assert not (tmp_path / "out" / "test.json").exists()


def test_corrupt_mirror_falls_back_to_a_verified_download(tmp_path, pinned):
    good = [_record()]
    digest = _write_json(tmp_path / "good.json", good)
    pinned("Si", "test", digest)
    _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record(5)])
    urls = []

    def fake_download(url, destination):
        urls.append(url)
        Path(destination).write_bytes((tmp_path / "good.json").read_bytes())

    fetched = fetch_mlearn("Si", "test", tmp_path / "out" / "test.json",
                           mirror=tmp_path / "mirror", downloader=fake_download)
    assert fetched.source == "download" and fetched.sha256 == digest
    assert urls == [mlearn_url("Si", "test")]


def test_corrupt_download_is_rejected_and_not_kept(tmp_path, pinned):
    pinned("Mo", "training", "0" * 64)

    def fake_download(url, destination):
        Path(destination).write_text("[]")

    with pytest.raises(ChecksumError, match="download"):
        fetch_mlearn("Mo", "training", tmp_path / "out" / "training.json",
                     downloader=fake_download)
    assert list((tmp_path / "out").iterdir()) == []


def test_download_gets_the_final_name_only_once_verified(tmp_path, pinned):
    """The downloader fills a temporary file beside the destination; a corrupt or interrupted
    download is removed and never replaces the file there, a verified one does."""
    good = tmp_path / "good.json"
    pinned("Mo", "training", _write_json(good, [_record()]))
    destination = tmp_path / "out" / "training.json"
    _write_json(destination, [_record(3)])  # not the pinned file: replaced by a good download
    old = destination.read_bytes()
    content = {"corrupt": b"[]", "interrupted": good.read_bytes()[:10], "good": good.read_bytes()}

    def download(kind):
        def fake_download(url, temporary):
            temporary = Path(temporary)
            assert temporary.parent == destination.parent and temporary.name != destination.name
            assert destination.read_bytes() == old
            temporary.write_bytes(content[kind])
            if kind == "interrupted":
                raise ConnectionResetError("connection reset by peer")
        return fake_download

    with pytest.raises(ChecksumError, match="the download from .* is corrupt"):
        fetch_mlearn("Mo", "training", destination, downloader=download("corrupt"))
    with pytest.raises(DataUnavailableError, match="connection reset by peer"):
        fetch_mlearn("Mo", "training", destination, downloader=download("interrupted"))
    assert [p.name for p in destination.parent.iterdir()] == ["training.json"]
    assert destination.read_bytes() == old
    fetched = fetch_mlearn("Mo", "training", destination, downloader=download("good"))
    assert fetched.source == "download" and destination.read_bytes() == good.read_bytes()
    assert [p.name for p in destination.parent.iterdir()] == ["training.json"]


def test_verified_file_at_destination_is_reused_without_download(tmp_path, pinned):
    digest = _write_json(tmp_path / "out" / "test.json", [_record()])
    pinned("Ge", "test", digest)

    def fail(url, destination):
        raise AssertionError("should not download")

    fetched = fetch_mlearn("Ge", "test", tmp_path / "out" / "test.json", downloader=fail)
    assert fetched.source == "cache"


def test_unpinned_download_warns_and_records_the_digest(tmp_path):
    def fake_download(url, destination):
        Path(destination).write_text(json.dumps([_record()]))

    assert MLEARN_SHA256[("Ni", "training")] is None
    with pytest.warns(UserWarning, match="no pinned sha256"):
        fetched = fetch_mlearn("Ni", "training", tmp_path / "training.json",
                               downloader=fake_download)
    assert not fetched.verified
    assert fetched.sha256 == hashlib.sha256((tmp_path / "training.json").read_bytes()).hexdigest()
    # an explicit pin is enforced
    with pytest.raises(ChecksumError):
        fetch_mlearn("Ni", "training", tmp_path / "again.json", expected_sha256="1" * 64,
                     downloader=fake_download)


def test_missing_files_give_one_clear_error_per_file(tmp_path):
    """Empty mirror, offline: every file fails once, with a message naming it and why."""
    (tmp_path / "mirror").mkdir()
    calls = []

    def offline(url, destination):
        calls.append(url)
        raise urllib.error.URLError("no route to host")

    fetched, errors = fetch_mlearn_all(tmp_path / "out", elements=("Ni", "Cu"), embedded=None,
                                       mirror=tmp_path / "mirror", downloader=offline)
    assert fetched == {}
    assert set(errors) == {("Ni", "training"), ("Ni", "test"), ("Cu", "training"), ("Cu", "test")}
    for (element, split), message in errors.items():
        assert message.count(f"mlearn {element}/{split}.json is unavailable") == 1
        assert "not in the mirror" in message and "no route to host" in message
    assert len(calls) == 4
    with pytest.raises(DataUnavailableError, match="downloads are disabled"):
        fetch_mlearn("Cu", "training", tmp_path / "x.json", mirror=tmp_path / "mirror",
                     download=False)


def test_some_files_missing_do_not_stop_the_others(tmp_path, pinned):
    digest = _write_json(tmp_path / "mirror" / "Si" / "test.json", [_record()])
    pinned("Si", "test", digest)
    fetched, errors = fetch_mlearn_all(tmp_path / "out", elements=("Si",),
                                       mirror=tmp_path / "mirror", download=False)
    assert list(fetched) == [("Si", "test")]
    assert list(errors) == [("Si", "training")]


def test_shipped_copies_verify_against_the_pins():
    """Every pinned file but Ni and Cu training ships, xz-compressed; decompressed, each equals
    its pin, and SHA256SUMS lists exactly those digests."""
    shipped = {(e, s) for e in MLEARN_ELEMENTS for s in MLEARN_SPLITS
               if mdata.mlearn_embedded_path(e, s) is not None}
    assert shipped == {key for key, digest in MLEARN_SHA256.items() if digest is not None}
    assert ("Ni", "training") not in shipped and ("Li", "training") in shipped
    for element, split in shipped:
        raw = lzma.decompress(mdata.mlearn_embedded_path(element, split).read_bytes())
        assert hashlib.sha256(raw).hexdigest() == MLEARN_SHA256[(element, split)], (element, split)
    listed = {}
    for line in (MLEARN_EMBEDDED_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[(Path(name).parent.name, Path(name).stem)] = digest
    assert listed == {key: MLEARN_SHA256[key] for key in shipped}
    assert "BSD 3-Clause" in (MLEARN_EMBEDDED_DIR / "LICENSE").read_text()


def test_package_data_ships_every_data_file():
    """pyproject.toml's package-data patterns cover every file under milad/data/, so that a
    non-editable install (a wheel) has the mlearn copies, their licence and digests."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(mdata.__file__).resolve().parent
    pyproject = tomllib.loads((root.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["milad"]
    covered = {path for pattern in patterns for path in root.glob(pattern)}
    files = {p for p in (root / "data").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files - covered == set()
    assert {"LICENSE", "SHA256SUMS", "README.md"} <= {p.name for p in covered}


def test_shipped_copy_is_read_and_fetched_offline(tmp_path):
    frames = read_mlearn(MLEARN_EMBEDDED_DIR / "Si" / "test.json.xz")
    assert len(frames) == 25 and set(frames[0].get_chemical_symbols()) == {"Si"}
    assert np.all(frames[0].pbc) and frames[0].get_forces().shape == (len(frames[0]), 3)
    fetched = fetch_mlearn("Si", "test", tmp_path / "test.json", mirror=tmp_path / "none",
                           downloader=_no_download)
    assert fetched.source == "embedded" and fetched.verified
    assert fetched.sha256 == MLEARN_SHA256[("Si", "test")]
    assert len(read_mlearn(fetched.path)) == 25


def _write_xz(path: Path, records) -> str:
    """A synthetic shipped copy; returns the sha256 of its decompressed bytes."""
    raw = json.dumps(records).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(raw))
    return hashlib.sha256(raw).hexdigest()


def test_order_is_embedded_then_mirror_then_download(tmp_path, pinned):
    digest = _write_xz(tmp_path / "embedded" / "Mo" / "test.json.xz", [_record()])
    _write_json(tmp_path / "mirror" / "Mo" / "test.json", [_record()])
    pinned("Mo", "test", digest)
    urls = []

    def fake_download(url, destination):
        urls.append(url)
        Path(destination).write_text(json.dumps([_record()]))

    def fetch():
        target = tmp_path / "out" / "test.json"
        target.unlink(missing_ok=True)
        return fetch_mlearn("Mo", "test", target, mirror=tmp_path / "mirror",
                            downloader=fake_download).source

    assert fetch() == "embedded" and urls == []
    (tmp_path / "embedded" / "Mo" / "test.json.xz").unlink()
    assert fetch() == "mirror" and urls == []
    (tmp_path / "mirror" / "Mo" / "test.json").unlink()
    assert fetch() == "download" and urls == [mlearn_url("Mo", "test")]


def test_corrupt_shipped_copy_falls_back_with_a_warning(tmp_path, pinned):
    digest = _write_json(tmp_path / "mirror" / "Li" / "test.json", [_record()])
    pinned("Li", "test", digest)
    _write_xz(tmp_path / "embedded" / "Li" / "test.json.xz", [_record(3)])
    with pytest.warns(UserWarning, match="embedded copy .* is corrupt.*taken from the mirror"):
        fetched = fetch_mlearn("Li", "test", tmp_path / "out" / "test.json",
                               mirror=tmp_path / "mirror", downloader=_no_download)
    assert fetched.source == "mirror"


@pytest.mark.parametrize("content", [b"not xz at all", None])
def test_corrupt_shipped_copy_alone_is_a_clear_error(tmp_path, pinned, content):
    """A damaged xz stream or wrong content, with no mirror and no download: a ChecksumError
    naming the shipped file, and nothing left at the destination."""
    path = tmp_path / "embedded" / "Ge" / "training.json.xz"
    _write_xz(path, [_record()])
    if content is not None:
        path.write_bytes(content)
    pinned("Ge", "training", "0" * 64)
    with pytest.raises(ChecksumError, match=r"unavailable: the embedded copy .*Ge/training.json.xz "
                                            r"is corrupt.*downloads are disabled"):
        fetch_mlearn("Ge", "training", tmp_path / "out" / "training.json", download=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_unshipped_file_says_so(tmp_path):
    with pytest.raises(DataUnavailableError, match="Cu/training.json is unavailable: not shipped "
                                                   "with milad; .*downloads are disabled"):
        fetch_mlearn("Cu", "training", tmp_path / "training.json", mirror=tmp_path / "none",
                     download=False)


def test_missing_data_summary_names_each_missing_file(tmp_path):
    for element, split, available in (("Ni", "training", False), ("Ni", "test", True),
                                      ("Cu", "test", False)):
        folder = tmp_path / element / split
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps(
            {"element": element, "split": split, "available": available, "reason": "why"}))
    lines = mdata.missing_data_summary(
        sorted(tmp_path.glob("*/*/manifest.json")) + [tmp_path / "Li" / "training" / "x.json"])
    assert lines == [
        f"Cu test data MISSING ({tmp_path / 'Cu' / 'test'}): why -> Cu is not evaluated on its "
        "test set",
        f"Ni training data MISSING ({tmp_path / 'Ni' / 'training'}): why -> no Ni potential is "
        "trained: its rows and figures say 'missing'",
    ]


@pytest.mark.skipif(not SHARED_MIRROR.is_dir(), reason="no shared mlearn mirror on this machine")
def test_pinned_digests_match_the_shared_mirror():
    """Every file of the shared mirror verifies against milad's pins (and SHA256SUMS)."""
    listed = {}
    for line in (SHARED_MIRROR / "SHA256SUMS").read_text().split("\n"):
        if line.strip():
            digest, name = line.split()
            element, split = Path(name).parent.name, Path(name).stem
            listed[(element, split)] = digest
    assert listed, "SHA256SUMS is empty"
    for key, digest in listed.items():
        assert MLEARN_SHA256[key] == digest, key
    present = {(e, s) for e in MLEARN_ELEMENTS for s in MLEARN_SPLITS
               if (SHARED_MIRROR / e / f"{s}.json").is_file()}
    assert present == set(listed)


def test_qm9_table_without_coordinates_is_named(tmp_path):
    """qm9pack also ships tables without coordinates (e.g. polarizabilities): reading one as a
    coordinate table names the file and the missing columns."""
    table = tmp_path / "qm9_polarizability.csv"
    table.write_text('XYZ_file,A_xx\n"dsgdb9nsd_000001.xyz",13.211\n')
    with pytest.raises(ValueError, match=r"qm9_polarizability.csv is not a qm9pack coordinate table.*Elements"):
        mdata.extract_qm9_subset([table])
