"""DirectoryProfileManager on real tmp dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from p2p.controller.profiles import (
    DirectoryProfileManager,
    ProfileError,
    ProfileManager,
    ProfileNotFoundError,
    sanitise_name,
)


def test_round_trip(tmp_path: Path) -> None:
    pm = DirectoryProfileManager(tmp_path / "profiles")
    assert isinstance(pm, ProfileManager)
    profile = {"id": "xmr-main", "name": "Main pool", "config": {"pool": "p:3333"}}
    assert pm.save_profile(profile) == "xmr-main"
    assert pm.get_profile("xmr-main") == profile
    on_disk = json.loads((tmp_path / "profiles" / "xmr-main.json").read_text())
    assert on_disk == profile
    assert pm.list_profiles() == ["xmr-main"]
    profile["config"] = {"pool": "q:1"}
    pm.save_profile(profile)
    assert pm.get_profile("xmr-main")["config"] == {"pool": "q:1"}
    # No temp files left behind by the atomic writes.
    assert sorted(p.name for p in (tmp_path / "profiles").iterdir()) == ["xmr-main.json"]
    pm.delete_profile("xmr-main")
    with pytest.raises(ProfileNotFoundError, match="profile not found: xmr-main"):
        pm.get_profile("xmr-main")


def test_missing_id_gets_uuid(tmp_path: Path) -> None:
    pm = DirectoryProfileManager(tmp_path)
    pid = pm.save_profile({"name": "no id"})
    assert len(pid) == 36
    assert pm.get_profile(pid) == {"name": "no id", "id": pid}


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", ".hidden", "x" * 200, "a\x00b"])
def test_unsafe_ids_rejected(tmp_path: Path, bad: str) -> None:
    pm = DirectoryProfileManager(tmp_path / "p")
    with pytest.raises(ProfileError):
        pm.save_profile({"id": bad})
    with pytest.raises(ProfileNotFoundError):
        pm.get_profile(bad)
    with pytest.raises(ProfileError):
        sanitise_name(bad)
    assert list((tmp_path / "p").iterdir()) == []
    assert list(tmp_path.iterdir()) == [tmp_path / "p"]


def test_empty_name_rejected() -> None:
    with pytest.raises(ProfileError):
        sanitise_name("")


def test_non_object_and_bad_files(tmp_path: Path) -> None:
    pm = DirectoryProfileManager(tmp_path)
    with pytest.raises(ProfileError, match="JSON object"):
        pm.save_profile([1, 2])
    with pytest.raises(ProfileError, match="string"):
        pm.save_profile({"id": 5})
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(ProfileError, match="not valid JSON"):
        pm.get_profile("broken")
    (tmp_path / "huge.json").write_bytes(b" " * (1 << 20 + 1))
    with pytest.raises(ProfileError, match="too large"):
        pm.get_profile("huge")
