"""Distillation: the student's target mixes the teachers' mean softmax with the label."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

from model.distill import Teachers, load_net, save_net  # noqa: E402
from model.net import DEFAULT_ARCH, TinyCNN  # noqa: E402


def _net(seed: int) -> TinyCNN:
    torch.manual_seed(seed)
    return TinyCNN(DEFAULT_ARCH, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2]).eval()


def test_the_target_is_the_teachers_mean_softmax_mixed_with_the_smoothed_label() -> None:
    nets = [_net(0), _net(1)]
    teachers = Teachers(nets, alpha=0.5)
    x = torch.rand(3, 3, 96, 96)
    y = torch.tensor([0, 2, 3])
    with torch.no_grad():
        mean = torch.stack([torch.softmax(n(x), dim=1) for n in nets]).mean(0)
    hard = torch.full((3, 4), 0.05 / 4)
    hard[torch.arange(3), y] += 0.95
    target = teachers.target(x, y, smoothing=0.05)
    assert torch.allclose(target, 0.5 * mean + 0.5 * hard)
    assert torch.allclose(target.sum(1), torch.ones(3))


def test_a_saved_network_loads_with_the_same_outputs(tmp_path: Path) -> None:
    net = _net(3)
    save_net(net, tmp_path / "t.pt")
    loaded = load_net(tmp_path / "t.pt", DEFAULT_ARCH)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))


def test_teachers_refuse_a_missing_network_or_a_share_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no saved network"):
        Teachers.from_paths([tmp_path / "absent.pt"], DEFAULT_ARCH, 0.5)
    with pytest.raises(ValueError, match="share"):
        Teachers([_net(0)], alpha=0.0)
    with pytest.raises(ValueError, match="at least one teacher"):
        Teachers([], alpha=0.5)
