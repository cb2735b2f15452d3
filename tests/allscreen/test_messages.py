"""The batch message: what the producer sends is exactly what the worker reads, and anything
else is refused with BadMessage before a worker acts on it."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest

from allscreen.errors import BadMessage
from allscreen.messages import MESSAGE_VERSION, Batch, ImageItem

PAYLOAD = b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01\x02\xfe\xff\xd9"
SHARED_PATH = "/mnt/archive/secret-patient-folder/WBC-Malignant-Pre-741.jpg"


def sha(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def bytes_batch() -> Batch:
    """A batch carrying image bytes."""
    return Batch(
        run_id=7,
        queued_at=1_700_000_000.25,
        images=(
            ImageItem(11, sha(PAYLOAD), data=PAYLOAD),
            ImageItem(12, sha(b""), data=b""),
            ImageItem(19, sha(bytes(range(256))), data=bytes(range(256))),
        ),
        model_sha256="ab" * 32,
    )


def path_batch() -> Batch:
    """A batch carrying shared-mount paths."""
    return Batch(run_id=3, queued_at=5.0, images=(ImageItem(40, "0" * 64, path=SHARED_PATH),))


def over_json(msg: dict[str, Any]) -> object:
    """`msg` after the broker's JSON round trip."""
    return json.loads(json.dumps(msg))


def valid_message() -> dict[str, Any]:
    """A fresh valid message to break one field of."""
    return bytes_batch().to_message()


def refused(msg: object) -> str:
    """The reason `from_message` gives for refusing `msg` (fails if it is accepted)."""
    with pytest.raises(BadMessage) as caught:
        Batch.from_message(msg)
    return str(caught.value)


# --- round trips --------------------------------------------------------------------------------


def test_a_batch_with_bytes_survives_the_json_round_trip_unchanged() -> None:
    batch = bytes_batch()
    assert Batch.from_message(over_json(batch.to_message())) == batch


def test_a_batch_with_paths_survives_the_json_round_trip_unchanged() -> None:
    batch = path_batch()
    assert Batch.from_message(over_json(batch.to_message())) == batch


def test_image_bytes_travel_as_base64_and_paths_as_text() -> None:
    msg = valid_message()
    assert msg["v"] == MESSAGE_VERSION
    first = msg["images"][0]
    assert set(first) == {"id", "sha256", "data"}
    assert base64.b64decode(first["data"]) == PAYLOAD
    (item,) = path_batch().to_message()["images"]
    assert item == {"id": 40, "sha256": "0" * 64, "path": SHARED_PATH}


def test_a_batch_naming_redis_keys_survives_the_json_round_trip_unchanged() -> None:
    batch = Batch(7, 1.5, (ImageItem(3, "a" * 64, blob="allscreen:blob:q:7:3"),), "b" * 64)
    msg = batch.to_message()
    assert msg["images"] == [{"id": 3, "sha256": "a" * 64, "blob": "allscreen:blob:q:7:3"}]
    assert Batch.from_message(over_json(msg)) == batch


@pytest.mark.parametrize("blob", ["", 5, ["k"]], ids=repr)
def test_a_blob_that_is_not_a_key_is_refused(blob: object) -> None:
    msg = valid_message()
    del msg["images"][0]["data"]
    msg["images"][0]["blob"] = blob
    assert "blob must be a Redis key" in refused(msg)


def test_a_batch_without_a_model_pin_round_trips_with_none() -> None:
    batch = Batch(run_id=1, queued_at=0.0, images=(ImageItem(1, "f" * 64, data=b"x"),))
    parsed = Batch.from_message(over_json(batch.to_message()))
    assert parsed.model_sha256 is None
    assert parsed == batch


def test_an_integer_queued_at_is_read_as_a_float() -> None:
    msg = valid_message()
    msg["queued_at"] = 1_700_000_000
    parsed = Batch.from_message(msg)
    assert parsed.queued_at == 1_700_000_000.0
    assert isinstance(parsed.queued_at, float)


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("msg", [None, [], "a batch", 7, b"{}"], ids=repr)
def test_a_message_that_is_not_an_object_is_refused(msg: object) -> None:
    assert "must be an object" in refused(msg)


def test_an_unknown_top_level_field_is_refused_by_name() -> None:
    msg = valid_message()
    msg["priority"] = "high"
    reason = refused(msg)
    assert "unknown fields" in reason and "priority" in reason


def test_an_unknown_image_field_is_refused_by_name() -> None:
    msg = valid_message()
    msg["images"][1]["label"] = "Pre"
    reason = refused(msg)
    assert "unknown fields" in reason and "label" in reason


@pytest.mark.parametrize("version", [MESSAGE_VERSION + 1, 0, "1", 1.0, True, None])
def test_a_message_of_another_version_is_refused(version: object) -> None:
    msg = valid_message()
    msg["v"] = version
    assert "unsupported message version" in refused(msg)


def test_a_message_without_a_version_is_refused() -> None:
    msg = valid_message()
    del msg["v"]
    assert "unsupported message version" in refused(msg)


@pytest.mark.parametrize("run_id", [True, False, "7", 7.0, None])
def test_a_run_id_that_is_not_a_plain_integer_is_refused(run_id: object) -> None:
    msg = valid_message()
    msg["run_id"] = run_id
    assert "integer run_id" in refused(msg)


@pytest.mark.parametrize("queued_at", [True, "yesterday", None, float("inf"), float("nan")])
def test_a_queued_at_that_is_not_a_finite_number_is_refused(queued_at: object) -> None:
    msg = valid_message()
    msg["queued_at"] = queued_at
    assert "queued_at" in refused(msg)


def test_a_model_pin_that_is_not_text_is_refused() -> None:
    msg = valid_message()
    msg["model_sha256"] = 1234
    assert "model_sha256" in refused(msg)


@pytest.mark.parametrize("image_id", [True, "11", None])
def test_an_image_id_that_is_not_a_plain_integer_is_refused(image_id: object) -> None:
    msg = valid_message()
    msg["images"][0]["id"] = image_id
    assert "integer id" in refused(msg)


def test_an_image_that_is_not_an_object_is_refused() -> None:
    msg = valid_message()
    msg["images"][0] = "WBC-Benign-001.jpg"
    assert "each image must be an object" in refused(msg)


@pytest.mark.parametrize("bad", ["not base64!!", "YW Jj", "YWJjZA", "\u00e9t\u00e9", 42])
def test_image_data_that_is_not_valid_base64_text_is_refused(bad: object) -> None:
    msg = valid_message()
    msg["images"][0]["data"] = bad
    reason = refused(msg)
    assert "image 11" in reason and "base64" in reason


def test_an_image_without_a_sha256_is_refused() -> None:
    msg = valid_message()
    del msg["images"][2]["sha256"]
    reason = refused(msg)
    assert "image 19" in reason and "sha256" in reason


@pytest.mark.parametrize("digest", ["", "ab" * 31, "ab" * 33, 12345])
def test_an_image_sha256_of_the_wrong_shape_is_refused(digest: object) -> None:
    msg = valid_message()
    msg["images"][0]["sha256"] = digest
    assert "sha256" in refused(msg)


def test_an_image_with_both_data_and_path_is_refused() -> None:
    msg = valid_message()
    msg["images"][0]["path"] = SHARED_PATH
    reason = refused(msg)
    assert "exactly one of data, path or blob" in reason
    assert SHARED_PATH not in reason


def test_an_image_with_neither_data_nor_path_is_refused() -> None:
    msg = valid_message()
    del msg["images"][0]["data"]
    assert "exactly one of data, path or blob" in refused(msg)


def test_a_path_that_is_not_text_is_refused() -> None:
    msg = path_batch().to_message()
    msg["images"][0]["path"] = ["/mnt", "x.jpg"]
    assert "path must be text" in refused(msg)


@pytest.mark.parametrize("images", [[], None, {}, "none"], ids=repr)
def test_a_batch_without_images_is_refused(images: object) -> None:
    msg = valid_message()
    msg["images"] = images
    assert "non-empty images list" in refused(msg)


def test_parsing_leaves_the_message_untouched() -> None:
    msg = valid_message()
    before = copy.deepcopy(msg)
    Batch.from_message(msg)
    assert msg == before


# --- describe -----------------------------------------------------------------------------------


def test_describe_names_the_run_the_count_and_the_id_span() -> None:
    text = bytes_batch().describe()
    assert "run=7" in text and "images=3" in text and "11..19" in text


def test_describe_never_shows_image_bytes_or_their_base64() -> None:
    batch = bytes_batch()
    text = batch.describe()
    for item in batch.to_message()["images"]:
        if item["data"]:
            assert item["data"] not in text
    assert "PAYLOAD" not in text and repr(PAYLOAD) not in text
    assert "not really a jpeg" not in text
    assert sha(PAYLOAD) not in text


def test_describe_never_shows_a_path() -> None:
    text = path_batch().describe()
    assert "run=3" in text and "images=1" in text and "40" in text
    assert "/" not in text and "patient" not in text and ".jpg" not in text
