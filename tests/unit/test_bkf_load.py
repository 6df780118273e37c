"""bkf/load.py: the reference `bkf load` pushes to and pulls from, and its refusals (all at once)."""

from __future__ import annotations

import pytest

from bkf.errors import UserError
from bkf.load import staging_ref


@pytest.mark.parametrize(("image", "via", "ref"), [
    ("app:dev", "10.0.0.5:5000", "10.0.0.5:5000/app:dev"),
    ("app", "registry.internal", "registry.internal/app:latest"),
    ("team/app:v1.2", "[fd00::5]:5000", "[fd00::5]:5000/team/app:v1.2"),
    # a registry host in the name is dropped: the image travels through `via`
    ("registry.example.com/team/app:dev", "10.0.0.5:5000", "10.0.0.5:5000/team/app:dev"),
    ("localhost/app", "10.0.0.5:5000", "10.0.0.5:5000/app:latest"),
    ("localhost:5000/app:x", "10.0.0.5:5000", "10.0.0.5:5000/app:x"),
])
def test_the_image_goes_through_the_registry_under_its_own_path_and_tag(image: str, via: str, ref: str) -> None:
    assert staging_ref(image, via) == ref


@pytest.mark.parametrize(("image", "via", "message"), [
    ("app:dev", None, "--via: no registry given (or set BKF_LOAD_REGISTRY): the registry beside the farm, host[:port]"),
    ("app:dev", "https://reg:5000", "--via: 'https://reg:5000' is not a registry host like registry.example.com or "
                                    "10.0.0.5:5000 (host[:port], no scheme or path)"),
    ("app@sha256:" + "a" * 64, "reg:5000", f"IMAGE: 'app@sha256:{'a' * 64}' is not an image name like app:dev or "
                                           "team/app (lower-case path, optional :tag, no digest)"),
    ("App:dev", "reg:5000", "IMAGE: 'App:dev' is not an image name like app:dev or team/app (lower-case path, "
                            "optional :tag, no digest)"),
])
def test_a_bad_name_or_registry_is_refused_naming_what_is_allowed(image: str, via: str | None, message: str) -> None:
    with pytest.raises(UserError) as e:
        staging_ref(image, via)
    assert str(e.value) == message


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(UserError) as e:
        staging_ref("App", "reg:99999")
    assert str(e.value).startswith("--via: 'reg:99999' is not a registry host")
    assert "; IMAGE: 'App' is not an image name" in str(e.value)
