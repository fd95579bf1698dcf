"""The batched multi-seed trainer of lib.train against the plain per-model loop."""

import pytest
import torch
import torch.nn.functional as F

from lib import losses as L
from lib import train


def toy_multiclass(n=120, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :classes].argmax(1) + (torch.rand(n, generator=g) < 0.1).long()) % classes
    return x, y


def make_model():
    return train.mlp(6, [16, 16], 3)


def make_binary_model():
    return train.mlp(6, [16], 1)


def assert_same_weights(ensemble, loss_name, seed, model, atol):
    expected = ensemble.state_dict_of(loss_name, seed)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(expected[name], tensor, atol=atol, rtol=0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batched_trainer_matches_plain_loop(optimizer):
    x, y = toy_multiclass()
    losses = {"ce": F.cross_entropy, "acc": L.smooth_accuracy_loss}
    kwargs = dict(epochs=4, batch_size=32, lr=0.01, optimizer=optimizer, weight_decay=1e-4)
    ensemble = train.train_batched(make_model, losses, x, y, [0, 7, 42], progress=False, **kwargs)
    assert ensemble.shape == (2, 3) and ensemble.history["loss"].shape == (4, 2, 3)
    for name, loss in losses.items():
        for seed in (0, 42):
            model = train.train_one(make_model, loss, x, y, seed, **kwargs)
            assert_same_weights(ensemble, name, seed, model, atol=1e-5)
    # and the logits of the stacked models are those of the plain model
    torch.testing.assert_close(ensemble.logits(x)[1, 2], model(x).detach(), atol=1e-5, rtol=0)


def test_batched_trainer_matches_plain_loop_on_binary_losses():
    x, y = toy_multiclass(seed=1)
    y = (y == 0).float()
    losses = {"f1w": L.f1_weighted_bce, "dice": lambda z, t: 1 - L.smooth_f1(z, t)}
    kwargs = dict(epochs=3, batch_size=25, lr=0.01)
    ensemble = train.train_batched(make_binary_model, losses, x, y, [3, 4], progress=False,
                                   **kwargs)
    assert ensemble.logits(x).shape == (2, 2, len(x))
    for name, loss in losses.items():
        model = train.train_one(make_binary_model, loss, x, y, 4, **kwargs)
        assert_same_weights(ensemble, name, 4, model, atol=1e-5)


def test_same_seed_gives_identical_models_on_cpu():
    x, y = toy_multiclass()
    runs = [
        train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [5, 6], epochs=3,
                            batch_size=16, lr=0.01, device="cpu", progress=False)
        for _ in range(2)
    ]
    for name in runs[0].params:
        assert torch.equal(runs[0].params[name], runs[1].params[name])
    # different seeds give different models
    assert not torch.equal(runs[0].params["0.weight"][0], runs[0].params["0.weight"][1])


def test_callback_sees_every_epoch():
    x, y = toy_multiclass()
    seen = []
    train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [0], epochs=3, batch_size=64,
                        lr=0.01, progress=False,
                        callback=lambda epoch, ens: seen.append((epoch, ens.logits(x).shape)))
    assert seen == [(e, torch.Size([1, 1, len(x), 3])) for e in (1, 2, 3)]


def test_trainer_rejects_bad_arguments():
    x, y = toy_multiclass()
    common = dict(epochs=1, batch_size=8, lr=0.01, progress=False)
    with pytest.raises(ValueError, match="y must lie in"):
        train.train_batched(make_model, {"ce": F.cross_entropy}, x, y + 5, [0], **common)
    with pytest.raises(ValueError, match="y must contain only 0 and 1"):
        train.train_batched(make_binary_model, {"f1": L.f1_weighted_bce}, x, y.float(), [0],
                            **common)
    with pytest.raises(ValueError, match="seeds must be"):
        train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [1, 1], **common)
    with pytest.raises(ValueError, match="losses must map"):
        train.train_batched(make_model, {}, x, y, [0], **common)
    with pytest.raises(ValueError, match="optimizer must be"):
        train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [0], optimizer="lbfgs",
                            **common)
    with pytest.raises(ValueError, match="epochs must be"):
        train.train_one(make_model, F.cross_entropy, x, y, 0, epochs=0, batch_size=8, lr=0.1)
    with pytest.raises(ValueError, match="same positive number of samples"):
        train.train_one(make_model, F.cross_entropy, x, y[:-1], 0, epochs=1, batch_size=8,
                        lr=0.1)


def test_book_scale(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "full")
    assert train.book_scale() == "full" and train.by_scale(1, 2) == 2
    monkeypatch.setenv("BOOK_SCALE", "Quick")
    assert train.book_scale() == "quick" and train.by_scale(1, 2) == 1
    monkeypatch.delenv("BOOK_SCALE")
    assert train.book_scale() == ("full" if torch.cuda.is_available() else "quick")
    monkeypatch.setenv("BOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="BOOK_SCALE must be one of"):
        train.book_scale()
    with pytest.raises(ValueError, match="scale must be one of"):
        train.by_scale(1, 2, scale="medium")


def test_mlp_output_shapes():
    assert train.mlp(4, [8], 1)(torch.zeros(5, 4)).shape == (5,)
    assert train.mlp(4, [8, 8], 10)(torch.zeros(5, 4)).shape == (5, 10)


def test_fused_optimizer_matches_the_fused_plain_loop():
    x, y = toy_multiclass()
    kwargs = dict(epochs=3, batch_size=32, lr=0.01)
    ensemble = train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [2, 3],
                                   fused=True, progress=False, **kwargs)
    model = train.train_one(make_model, F.cross_entropy, x, y, 3, fused=True, **kwargs)
    assert_same_weights(ensemble, "ce", 3, model, atol=1e-5)


def test_benchmark_script_runs_and_checks_equivalence(tmp_path, monkeypatch, capsys):
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "trainer.py"
    spec = importlib.util.spec_from_file_location("trainer_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    code = benchmark.main(["--device", "cpu", "--models", "3", "--plain-models", "1",
                           "--samples", "1000", "--n-max", "60", "--ratio", "10",
                           "--epochs", "1", "--batch-size", "32"])
    out = capsys.readouterr().out
    assert code == 0, out
    for row in ("plain", "batched", "batched+fused", "largest parameter difference"):
        assert row in out
