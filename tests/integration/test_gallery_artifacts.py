"""Artifacts through pyarrow.fs: atomic, content-addressed publication, verification, and the PyTorch and
DeepSpeed flavors (a real tiny torch module; a DeepSpeed-shaped checkpoint directory, no DeepSpeed needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ma_ray.gallery import ArtifactStore, ChecksumMismatchError, CorruptArtifactError, Gallery, InProcessAliasBus
from ma_ray.gallery.flavors.deepspeed import DeepSpeedCheckpoint
from ma_ray.gallery.store.sqlite import SqliteGalleryStore

torch = pytest.importorskip("torch")


class TinyNet(torch.nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, width)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.linear(x)


def make_tiny(width: int = 4) -> TinyNet:
    return TinyNet(width)


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    store = SqliteGalleryStore(tmp_path / "gallery.sqlite")
    return Gallery(store, ArtifactStore(str(tmp_path / "artifacts")), InProcessAliasBus(), user="ci")


def test_publish_is_content_addressed_and_leaves_no_staging(tmp_path: Path) -> None:
    artifacts = ArtifactStore(str(tmp_path / "root"))
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.bin").write_bytes(b"a" * 10)
    (tmp_path / "src" / "sub" / "b.bin").write_bytes(b"b" * 5)
    first = artifacts.publish("eta", tmp_path / "src", "other", {"k": "v"})
    again = artifacts.publish("eta", tmp_path / "src", "other", {"k": "v"})
    assert first == again
    assert first.size_bytes == 15
    assert first.uri.endswith(first.checksum.removeprefix("sha256:"))
    assert sorted(p.name for p in Path(first.uri).rglob("*")) == ["MANIFEST.json", "a.bin", "b.bin", "sub"]
    assert not list((tmp_path / "root" / ".staging").iterdir())
    manifest = ArtifactStore.fetch(first.uri, first.checksum, tmp_path / "out")
    assert manifest.metadata == {"k": "v"}
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == b"b" * 5


def test_wrong_checksum_missing_file_and_tampered_manifest_are_refused(tmp_path: Path) -> None:
    artifacts = ArtifactStore(str(tmp_path / "root"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "w.bin").write_bytes(b"w" * 10)
    published = artifacts.publish("eta", tmp_path / "src", "other")
    with pytest.raises(ChecksumMismatchError):
        ArtifactStore.verify(published.uri, "sha256:" + "1" * 64)
    (Path(published.uri) / "w.bin").unlink()
    with pytest.raises(CorruptArtifactError, match="could not be read"):
        ArtifactStore.fetch(published.uri, published.checksum, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-fetched is left behind


def test_pytorch_round_trip_through_a_factory_reference(gallery: Gallery) -> None:
    gallery.register_model(name="tiny", owner="ci", tier=3, framework="pytorch")
    net = TinyNet(width=5)
    version = gallery.log_model("tiny", net, factory=f"{__name__}:make_tiny", factory_kwargs={"width": 5})
    loaded = gallery.load("tiny", version.version)
    x = torch.ones(2, 3)
    assert torch.equal(loaded(x), net(x))
    assert not loaded.training


def test_pytorch_needs_an_importable_factory(gallery: Gallery) -> None:
    gallery.register_model(name="tiny", owner="ci", tier=3, framework="pytorch")
    with pytest.raises(ValueError, match="factory="):
        gallery.log_model("tiny", TinyNet())
    with pytest.raises(ValueError, match="refused"):
        gallery.log_model("tiny", TinyNet(), factory="os:system")
    assert gallery.versions("tiny") == []


def test_deepspeed_checkpoint_directory_round_trip(gallery: Gallery, tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    (checkpoint / "global_step10").mkdir(parents=True)
    (checkpoint / "latest").write_text("global_step10")
    (checkpoint / "global_step10" / "mp_rank_00_model_states.pt").write_bytes(b"m" * 64)
    (checkpoint / "global_step10" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"o" * 32)
    gallery.register_model(name="big", owner="ci", tier=2, framework="deepspeed")
    version = gallery.log_model("big", checkpoint)
    loaded = gallery.load("big", version.version, dest=tmp_path / "restored")
    assert isinstance(loaded, DeepSpeedCheckpoint)
    assert loaded.tag == "global_step10"
    assert (loaded.tag_dir / "mp_rank_00_model_states.pt").read_bytes() == b"m" * 64
    assert version.size_bytes == 64 + 32 + len("global_step10")
