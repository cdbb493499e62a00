"""`speed: auto | off` and the `speed_options:` block replace the flat speed toggles of earlier versions."""

import pytest

from tunecard.config import SpeedOptions, build_config
from tunecard.errors import ConfigError


def test_speed_defaults_to_auto_with_every_lever_on():
    config = build_config(None, {"train": "x.conll"})
    assert config.speed == "auto"
    assert all(getattr(config.speed_options, name) for name in SpeedOptions.model_fields)


def test_speed_off_and_single_levers_from_yaml_flags_and_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: x.conll\nspeed: off\nspeed_options:\n  fuse_qkv: false\n", encoding="utf-8")
    config = build_config(path)
    assert config.speed == "off" and config.speed_options.fuse_qkv is False and config.speed_options.packing is True
    config = build_config(path, {"speed": "auto"}, ["speed_options.packing=false"])
    assert config.speed == "auto" and config.speed_options.packing is False
    assert config.speed_options.fuse_qkv is False  # the file's value stays where --set does not touch it


@pytest.mark.parametrize("old", ["packing", "padding_free", "fast_dropout", "fuse_qkv", "sparse_embedding"])
def test_old_flat_keys_name_their_new_place(tmp_path, old):
    path = tmp_path / "c.yaml"
    path.write_text(f"train: x.conll\n{old}: false\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build_config(path)
    assert caught.value.code == "E209"
    assert f"speed_options: {{{old}: false}}" in str(caught.value) and "speed: off" in str(caught.value)


def test_a_removed_lever_says_so():
    with pytest.raises(ConfigError, match="bf16_weights no longer exists"):
        build_config(None, {"train": "x.conll"}, ["bf16_weights=true"])
    for flags in (["keep_freed_memory=false"], ["speed_options.keep_freed_memory=true"]):
        with pytest.raises(ConfigError, match="keep_freed_memory no longer exists") as caught:
            build_config(None, {"train": "x.conll"}, flags)
        assert caught.value.code == "E209"


def test_speed_options_reject_unknown_levers_and_non_booleans():
    with pytest.raises(ConfigError, match="speed_options"):
        build_config(None, {"train": "x.conll", "speed_options": {"packing_typo": False}})
    with pytest.raises(ConfigError, match="speed"):
        build_config(None, {"train": "x.conll", "speed": "fast"})
