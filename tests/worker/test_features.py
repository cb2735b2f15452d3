"""`features_from_rgb` against the Edge Impulse SDK: the same features, value for value; and
`features_from_bgr` (what the worker uses, skipping a conversion) equal to both."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from edge_impulse_linux.image import get_features_from_image_with_studio_mode

from tests.support.images import DATA, split_rows
from worker.features import Features, features_from_bgr, features_from_rgb

MODES = ("squash", "fit-shortest", "fit-longest")
REAL_IMAGES = 50  #: test-split images compared per mode: every class, a few seconds in all
SHAPES = ((224, 224), (200, 300), (300, 200), (161, 97), (97, 161), (80, 120), (13, 500))
TARGETS = ((96, 96), (120, 80), (80, 120))  #: (width, height) of the model input
EXACT_LIMIT = 2**24  #: float32 holds every integer below this exactly

Pixels = npt.NDArray[np.uint8]


def sdk_features(img: Pixels, mode: str, width: int, height: int, grayscale: bool) -> Features:
    """The SDK's features (a list of ints) as float32, checking the ints survive the cast."""
    ints = np.asarray(
        get_features_from_image_with_studio_mode(img, mode, width, height, grayscale)[0],
        dtype=np.int64,
    )
    assert ints.shape == (width * height,)
    assert ints.min() >= 0 and ints.max() < EXACT_LIMIT
    as_float = ints.astype(np.float32)
    assert np.array_equal(as_float.astype(np.int64), ints)
    return as_float


def assert_same_features(img: Pixels, mode: str, width: int, height: int, grayscale: bool) -> None:
    """`features_from_rgb` equals the SDK exactly and holds exact integers below 2**24, and
    `features_from_bgr` of the same image in BGR order equals it bit for bit."""
    ours = features_from_rgb(img, mode=mode, width=width, height=height, grayscale=grayscale)
    bgr = np.ascontiguousarray(img[..., ::-1])
    from_bgr = features_from_bgr(bgr, mode=mode, width=width, height=height, grayscale=grayscale)
    assert from_bgr.dtype == np.float32 and np.array_equal(from_bgr, ours)
    assert ours.dtype == np.float32
    assert ours.shape == (width * height,)
    assert np.array_equal(ours, np.trunc(ours))
    assert float(ours.min()) >= 0 and float(ours.max()) < EXACT_LIMIT
    expected = sdk_features(img, mode, width, height, grayscale)
    mismatched = int(np.count_nonzero(ours != expected))
    assert mismatched == 0, (
        f"{mismatched} of {ours.size} features differ ({mode}, {width}x{height})"
    )


@pytest.fixture(scope="module")
def real_images() -> list[tuple[str, Pixels]]:
    """~50 decoded RGB images from the shared test split, spread over the classes."""
    if not (DATA / "split.csv").exists():
        pytest.skip(f"the shared ALL image set is not at {DATA} (see /work/shared/data/README.md)")
    rows = split_rows("test")
    step = max(1, len(rows) // REAL_IMAGES)
    picked: list[tuple[str, Pixels]] = []
    for path, _label in rows[::step][:REAL_IMAGES]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, f"cannot read {path}"
        picked.append((Path(path).name, np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
    return picked


def random_image(rows: int, cols: int, seed: int) -> Pixels:
    """A deterministic random RGB image, rows x cols."""
    return np.random.default_rng(seed).integers(0, 256, (rows, cols, 3), dtype=np.uint8)


@pytest.mark.parametrize("grayscale", [False, True], ids=["colour", "grayscale"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", [(96, 96), (120, 80)], ids=["96x96", "120x80"])
def test_features_of_real_smears_equal_the_sdks_exactly(
    real_images: list[tuple[str, Pixels]], mode: str, grayscale: bool, target: tuple[int, int]
) -> None:
    width, height = target
    assert len(real_images) >= REAL_IMAGES * 0.9
    for name, img in real_images:
        try:
            assert_same_features(img, mode, width, height, grayscale)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


@pytest.mark.parametrize("grayscale", [False, True], ids=["colour", "grayscale"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", TARGETS, ids=[f"{w}x{h}" for w, h in TARGETS])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{c}" for r, c in SHAPES])
def test_features_of_random_non_square_images_equal_the_sdks_exactly(
    shape: tuple[int, int], target: tuple[int, int], mode: str, grayscale: bool
) -> None:
    rows, cols = shape
    img = random_image(rows, cols, seed=rows * 1000 + cols)
    assert_same_features(img, mode, target[0], target[1], grayscale)


def test_colour_features_pack_red_green_blue_in_that_order() -> None:
    img = np.zeros((96, 96, 3), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 0x12, 0x34, 0x56
    feats = features_from_rgb(img, mode="squash", width=96, height=96, grayscale=False)
    assert set(feats.tolist()) == {float(0x123456)}


def test_the_brightest_pixel_packs_to_just_below_two_to_the_24() -> None:
    img = np.full((50, 70, 3), 255, dtype=np.uint8)
    for grayscale in (False, True):
        feats = features_from_rgb(
            img, mode="fit-shortest", width=96, height=96, grayscale=grayscale
        )
        assert float(feats.max()) == EXACT_LIMIT - 1
        assert int(feats.astype(np.int64).max()) == 0xFFFFFF


def test_an_unknown_resize_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported resize mode"):
        features_from_rgb(random_image(8, 8, 0), mode="stretch", width=4, height=4, grayscale=False)
