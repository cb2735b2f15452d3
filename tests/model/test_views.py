"""Test-time views: the same logits in torch and in the exported graph, for any batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")
pytest.importorskip("onnx", reason="needs the train extra (onnx)")

from model.evaluate import make_session  # noqa: E402
from model.export import export_onnx  # noqa: E402
from model.net import DEFAULT_ARCH, ServedModel, TinyCNN  # noqa: E402
from model.views import MirrorAverage, with_views  # noqa: E402


def _net() -> TinyCNN:
    torch.manual_seed(0)
    net = TinyCNN(DEFAULT_ARCH, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2])
    return net.eval()


def test_views_average_the_logits_of_the_mirrors() -> None:
    net = _net()
    x = torch.rand(3, 3, 96, 96)
    with torch.no_grad():
        mirrors = [x, x.flip(3), x.flip(2), x.flip(2).flip(3)]
        expected = {k: torch.stack([net(m) for m in mirrors[:k]]).mean(0) for k in (1, 2, 4)}
        for k, want in expected.items():
            got = with_views(net, k)(x)
            assert torch.allclose(got, want, atol=1e-5), k
    assert with_views(net, 1) is net


def test_views_of_a_mirrored_image_match_for_four_views() -> None:
    net = _net()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        four = MirrorAverage(net, 4)
        assert torch.allclose(four(x), four(x.flip(3)), atol=1e-5)


def test_unknown_view_count_is_refused() -> None:
    with pytest.raises(ValueError, match="views must be one of"):
        MirrorAverage(_net(), 3)


def test_exported_graph_with_views_matches_torch_for_any_batch(tmp_path: Path) -> None:
    served = ServedModel(with_views(_net(), 2), temperature=1.5).eval()
    out = tmp_path / "views2.onnx"
    export_onnx(served, out, {})
    session = make_session(out)
    for n in (1, 5):
        x = np.random.default_rng(n).random((n, 96, 96, 3), dtype=np.float32)
        got = session.run(["probs", "logits"], {"image": x})
        with torch.no_grad():
            want = served(torch.from_numpy(x))
        assert np.allclose(got[0], want[0].numpy(), atol=1e-5)
        assert np.allclose(got[1], want[1].numpy(), atol=1e-4)
