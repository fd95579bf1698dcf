"""The batched multi-seed trainer of reweighting.train against the plain per-model loop, and its
devices."""

import importlib.util
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fake_device import DeviceMixError, fake_accelerator
from torch import nn

from reweighting import losses as L
from reweighting import train

ROOT = Path(__file__).resolve().parent.parent


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
    recipe = train.Recipe(epochs=4, batch_size=32, lr=0.01, optimizer=optimizer,
                          weight_decay=1e-4)
    ensemble = train.train_batched(make_model, losses, x, y, [0, 7, 42], recipe, progress=False)
    assert ensemble.shape == (2, 3) and ensemble.history["loss"].shape == (4, 2, 3)
    for name, loss in losses.items():
        for seed in (0, 42):
            model = train.train_one(make_model, loss, x, y, seed, recipe)
            assert_same_weights(ensemble, name, seed, model, atol=1e-5)
    # and the logits of the stacked models are those of the plain model
    torch.testing.assert_close(ensemble.logits(x)[1, 2], model(x).detach(), atol=1e-5, rtol=0)


def test_batched_trainer_matches_plain_loop_on_binary_losses():
    x, y = toy_multiclass(seed=1)
    y = (y == 0).float()
    losses = {"f1w": L.f1_weighted_bce, "dice": lambda z, t: 1 - L.smooth_f1(z, t)}
    recipe = train.Recipe(epochs=3, batch_size=25, lr=0.01)
    ensemble = train.train_batched(make_binary_model, losses, x, y, [3, 4], recipe,
                                   progress=False)
    assert ensemble.logits(x).shape == (2, 2, len(x))
    for name, loss in losses.items():
        model = train.train_one(make_binary_model, loss, x, y, 4, recipe)
        assert_same_weights(ensemble, name, 4, model, atol=1e-5)


@pytest.mark.parametrize("binary", [False, True])
def test_each_seed_trains_on_its_own_data(binary):
    # seed s's models, for every loss, equal train_one on seed s's own training set
    sets = [toy_multiclass(n=90, seed=10 + s) for s in range(3)]
    x = torch.stack([xs for xs, _ in sets])
    y = torch.stack([ys for _, ys in sets])
    if binary:
        y, build = (y == 0).float(), make_binary_model
        losses = {"bce": F.binary_cross_entropy_with_logits, "f1w": L.f1_weighted_bce}
    else:
        build, losses = make_model, {"ce": F.cross_entropy, "acc": L.smooth_accuracy_loss}
    recipe = train.Recipe(epochs=3, batch_size=20, lr=0.01)
    seeds = [5, 6, 7]
    ensemble = train.train_batched(build, losses, x, y, seeds, recipe, progress=False)
    for name, loss in losses.items():
        for s, seed in enumerate(seeds):
            model = train.train_one(build, loss, x[s], y[s], seed, recipe)
            assert_same_weights(ensemble, name, seed, model, atol=1e-5)
    # per-seed inputs: seed s's models see x[s]; shared inputs: every model sees the same x
    per_seed = ensemble.logits(x)
    torch.testing.assert_close(per_seed[1, 2], model(x[2]).detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(ensemble.logits(x[0])[1, 2], model(x[0]).detach(), atol=1e-5,
                               rtol=0)


def test_same_seed_gives_identical_models_on_cpu():
    x, y = toy_multiclass()
    recipe = train.Recipe(epochs=3, batch_size=16, lr=0.01)
    runs = [train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [5, 6], recipe,
                                device="cpu", progress=False) for _ in range(2)]
    for name in runs[0].params:
        assert torch.equal(runs[0].params[name], runs[1].params[name])
    # different seeds give different models
    assert not torch.equal(runs[0].params["0.weight"][0], runs[0].params["0.weight"][1])


def test_callback_sees_every_epoch():
    x, y = toy_multiclass()
    seen = []
    train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [0],
                        train.Recipe(epochs=3, batch_size=64, lr=0.01), progress=False,
                        callback=lambda epoch, ens: seen.append((epoch, ens.logits(x).shape)))
    assert seen == [(e, torch.Size([1, 1, len(x), 3])) for e in (1, 2, 3)]


def test_trainer_rejects_bad_arguments():
    x, y = toy_multiclass()
    recipe = train.Recipe(epochs=1, batch_size=8, lr=0.01)
    ce = {"ce": F.cross_entropy}

    def batched(*args, **kwargs):
        return train.train_batched(*args, progress=False, **kwargs)

    with pytest.raises(ValueError, match="y must lie in"):
        batched(make_model, ce, x, y + 5, [0], recipe)
    with pytest.raises(ValueError, match="y must contain only 0 and 1"):
        batched(make_binary_model, {"f1": L.f1_weighted_bce}, x, y.float(), [0], recipe)
    with pytest.raises(ValueError, match="seeds must be"):
        batched(make_model, ce, x, y, [1, 1], recipe)
    with pytest.raises(ValueError, match="losses must map"):
        batched(make_model, {}, x, y, [0], recipe)
    with pytest.raises(ValueError, match="recipe must be a reweighting.train.Recipe"):
        batched(make_model, ce, x, y, [0], {"epochs": 1})
    with pytest.raises(ValueError, match=r"x must have shape \(N, ...\)"):
        batched(make_model, ce, x[:-1], y, [0], recipe)
    with pytest.raises(ValueError, match=r"per-seed training sets need y of shape \(S, N\)"):
        batched(make_model, ce, x.expand(3, -1, -1), y.expand(3, -1), [0, 1], recipe)
    with pytest.raises(ValueError, match=r"y must have shape \(N,\)"):
        batched(make_model, ce, x, y[None, None], [0], recipe)
    with pytest.raises(ValueError, match="train_one takes one training set"):
        train.train_one(make_model, F.cross_entropy, x[None], y[None], 0, recipe)
    ensemble = batched(make_model, ce, x, y, [0, 1], recipe)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 6\) or \(2, N, 6\)"):
        ensemble.logits(x[:, :5])
    with pytest.raises(ValueError, match="no model for loss 'acc'"):
        ensemble.state_dict_of("acc", 0)


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, r"epochs must be an integer in \[1, inf\), got 0"),
    ("batch_size", 2.5, r"batch_size must be an integer in \[1, inf\), got 2.5"),
    ("lr", 0.0, r"lr must be a finite real number in \(0, inf\), got 0.0"),
    ("optimizer", "lbfgs", "optimizer must be 'adam' or 'sgd'"),
    ("momentum", 1.0, r"momentum must be a finite real number in \[0, 1\), got 1.0"),
    ("weight_decay", -1e-4, r"weight_decay must be a finite real number in \[0, inf\)"),
    ("fused", "yes", "fused must be None, True or False"),
])
def test_recipe_rejects_bad_settings(field, value, message):
    settings = dict(epochs=1, batch_size=8, lr=0.01) | {field: value}
    with pytest.raises(ValueError, match=message):
        train.Recipe(**settings)


def test_book_scale(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "full")
    assert train.book_scale() == "full" and train.by_scale(1, 2) == 2
    monkeypatch.setenv("BOOK_SCALE", "Quick")
    assert train.book_scale() == "quick" and train.by_scale(1, 2) == 1
    monkeypatch.delenv("BOOK_SCALE")
    assert train.book_scale() == "full"  # the book's own run, on any machine
    monkeypatch.setenv("BOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="BOOK_SCALE must be one of"):
        train.book_scale()
    with pytest.raises(ValueError, match="scale must be one of"):
        train.by_scale(1, 2, scale="medium")


def test_book_seeds_follow_the_scale_and_the_offset(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "quick")
    monkeypatch.delenv("BOOK_SEED_OFFSET", raising=False)
    assert train.book_seeds(3, 20) == [0, 1, 2]
    monkeypatch.setenv("BOOK_SEED_OFFSET", "100")
    assert train.book_seeds(3, 20) == [100, 101, 102]
    assert train.book_seeds(3, 20, scale="full") == list(range(100, 120))
    monkeypatch.setenv("BOOK_SEED_OFFSET", "-1")
    with pytest.raises(ValueError, match="BOOK_SEED_OFFSET must be a non-negative integer"):
        train.book_seeds(3, 20)


def test_mlp_output_shapes():
    assert train.mlp(4, [8], 1)(torch.zeros(5, 4)).shape == (5,)
    assert train.mlp(4, [8, 8], 10)(torch.zeros(5, 4)).shape == (5, 10)


def test_fused_optimizer_matches_the_fused_plain_loop():
    x, y = toy_multiclass()
    recipe = train.Recipe(epochs=3, batch_size=32, lr=0.01, fused=True)
    ensemble = train.train_batched(make_model, {"ce": F.cross_entropy}, x, y, [2, 3], recipe,
                                   progress=False)
    model = train.train_one(make_model, F.cross_entropy, x, y, 3, recipe)
    assert_same_weights(ensemble, "ce", 3, model, atol=1e-5)


# --- devices -----------------------------------------------------------------------------------
# tests/fake_device.py lets PyTorch's meta device play a GPU: any operation mixing two devices
# fails, and device-to-CPU transfers are simulated. The trainer must train there from CPU data
# and hand back CPU tensors, as it must on CUDA.

MULTICLASS_LOSSES = {
    "cross-entropy": F.cross_entropy,
    "-ACC": L.smooth_accuracy_loss,
    "GCE": lambda z, t: L.generalized_cross_entropy(z, t, 0.7),
    "LA": lambda z, t: L.logit_adjusted_cross_entropy(z, t, torch.tensor([0.5, 0.3, 0.2])),
    "weighted": lambda z, t: L.class_weighted_cross_entropy(z, t, torch.tensor([1.0, 2.0, 3.0])),
    "focal": lambda z, t: L.focal_loss(z, t, gamma=2.0, alpha=torch.tensor([1.0, 2.0, 3.0])),
    "LDAM": lambda z, t: L.ldam_loss(z, t, [50, 30, 20]),
}
BINARY_LOSSES = {
    "BCE": F.binary_cross_entropy_with_logits,
    "-ACC": L.smooth_accuracy_loss,
    "F1-weighted": L.f1_weighted_bce,
    "Dice": lambda z, t: 1 - L.smooth_f1(z, t),
    "class weights": lambda z, t: L.class_weighted_bce(z, t, 3.0),
    "focal": lambda z, t: L.focal_loss(z, t, gamma=2.0, alpha=0.25),
}


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("per_seed", [False, True])
def test_trainer_never_mixes_devices(binary, per_seed):
    x, y = toy_multiclass(n=40)
    build, losses = (make_binary_model, BINARY_LOSSES) if binary else (make_model,
                                                                      MULTICLASS_LOSSES)
    if binary:
        y = (y == 0).float()
    seeds = [0, 1]
    if per_seed:
        x, y = x.expand(2, -1, -1), y.expand(2, -1)
    seen = []

    def callback(epoch, ensemble):  # what the chapters do: CPU logits against CPU labels
        logits = ensemble.logits(x)
        assert logits.device.type == "cpu"
        predicted = (logits > 0).float() if binary else logits.argmax(-1)
        seen.append((predicted == y).double().mean(-1).numpy().shape)

    recipe = train.Recipe(epochs=2, batch_size=16, lr=0.01)
    with fake_accelerator():
        ensemble = train.train_batched(build, losses, x, y, seeds, recipe, device="meta",
                                       callback=callback, progress=False)
        assert ensemble.device.type == "meta"
        assert ensemble.history["loss"].device.type == "cpu"
        assert all(t.device.type == "cpu" for t in ensemble.state_dict_of("-ACC", 1).values())
        model = train.train_one(build, next(iter(losses.values())), x[0] if per_seed else x,
                                y[0] if per_seed else y, 0, recipe, device="meta")
    assert seen == [(len(losses), 2)] * 2
    assert next(model.parameters()).device.type == "meta"


def test_the_device_check_catches_the_bugs_it_exists_for():
    x, y = toy_multiclass(n=40)
    with fake_accelerator():
        with pytest.raises(DeviceMixError, match="linear mixes tensors"):
            make_model()(x.to("meta"))  # a CPU model on device data
        with pytest.raises(DeviceMixError, match="gather mixes tensors"):
            torch.zeros(40, 3, device="meta").gather(1, y[:, None])  # device logits, CPU labels
        with pytest.raises(TypeError, match="meta"):
            torch.zeros(40, device="meta").numpy()  # .numpy() on a device tensor


def test_benchmark_script_runs_and_checks_equivalence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    path = ROOT / "benchmarks" / "trainer.py"
    spec = importlib.util.spec_from_file_location("trainer_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    code = benchmark.main(["--device", "cpu", "--models", "3", "--plain-models", "1",
                           "--samples", "1000", "--n-max", "60", "--ratio", "10",
                           "--epochs", "2", "--batch-size", "32", "--repeats", "1",
                           "--peak-size", "256"])
    out = capsys.readouterr().out
    assert code == 0, out
    for row in ("matrix-multiply peak", "same-shape bmm", "plain", "vmap+fused",
                "stacked+foreach", "stacked+fused", "plain vs stacked", "fused vs foreach"):
        assert row in out


def test_parameter_gives_every_model_on_the_cpu():
    x, y = toy_multiclass()
    losses = {"ce": F.cross_entropy, "acc": L.smooth_accuracy_loss}
    ensemble = train.train_batched(make_model, losses, x, y, [0, 1, 2],
                                   train.Recipe(epochs=1, batch_size=32, lr=0.01), progress=False)
    weight = ensemble.parameter("0.weight")
    assert weight.shape == (2, 3, 16, 6) and weight.device.type == "cpu"
    torch.testing.assert_close(weight[1, 2], ensemble.state_dict_of("acc", 2)["0.weight"])
    with pytest.raises(ValueError, match="name must be one of the model's parameters"):
        ensemble.parameter("weight")


# --- the stacked-MLP path ----------------------------------------------------------------------
# train_batched runs the book's MLPs as stacked matrices (baddbmm) and evaluates the losses on all
# models' logits at once (reweighting.losses.over_models). It must train the same models as the
# generic
# vmap path and as the plain loop, through every loss of reweighting.losses.

PRIOR3 = torch.tensor([0.5, 0.3, 0.2])
EVERY_MULTICLASS_LOSS = {
    "F.cross_entropy": F.cross_entropy,
    "smooth_accuracy_loss": L.smooth_accuracy_loss,
    "generalized_cross_entropy": partial(L.generalized_cross_entropy, q=0.7),
    "logit_adjusted_cross_entropy": partial(L.logit_adjusted_cross_entropy, prior=PRIOR3),
    "prior_margin_cross_entropy": partial(L.prior_margin_cross_entropy, prior=PRIOR3),
    "class_weighted_cross_entropy": partial(L.class_weighted_cross_entropy,
                                            weights=L.class_balanced_weights([50, 30, 20], 1.0)),
    "focal_loss": lambda z, t: L.focal_loss(z, t, gamma=2.0, alpha=torch.tensor([1.0, 2.0, 3.0])),
    "ldam_loss": partial(L.ldam_loss, counts=[50, 30, 20], max_margin=0.5),
}
EVERY_BINARY_LOSS = {
    "F.binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
    "smooth_accuracy_loss": L.smooth_accuracy_loss,
    "generalized_cross_entropy": partial(L.generalized_cross_entropy, q=0.5),
    "smooth_f1_loss": L.smooth_f1_loss,
    "f1_weighted_bce": L.f1_weighted_bce,
    "class_weighted_bce": partial(L.class_weighted_bce, positive_weight=3.0),
    "focal_loss": partial(L.focal_loss, gamma=2.0, alpha=0.25),
}


def test_every_loss_of_the_library_is_in_the_equivalence_test():
    trained = {name for name in L.__all__ if name.endswith(("_loss", "_cross_entropy", "_bce"))}
    assert trained <= set(EVERY_MULTICLASS_LOSS) | set(EVERY_BINARY_LOSS)


def relative_logit_difference(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("per_seed", [False, True], ids=["shared data", "per-seed data"])
@pytest.mark.parametrize("binary", [False, True], ids=["multi-class", "binary"])
def test_stacked_path_matches_generic_path_and_plain_loop(binary, per_seed, optimizer):
    seeds = [3, 4]
    sets = [toy_multiclass(n=100, seed=20 + s) for s in range(len(seeds))]
    x, y = sets[0]
    if per_seed:
        x, y = torch.stack([xs for xs, _ in sets]), torch.stack([ys for _, ys in sets])
    if binary:
        y, build, losses = (y == 0).float(), make_binary_model, EVERY_BINARY_LOSS
    else:
        build, losses = make_model, EVERY_MULTICLASS_LOSS
    recipe = train.Recipe(epochs=1, batch_size=16, lr=0.05 if optimizer == "sgd" else 0.01,
                          optimizer=optimizer)
    fast = train.train_batched(build, losses, x, y, seeds, recipe, progress=False)
    generic = train.train_batched(build, losses, x, y, seeds, recipe, progress=False,
                                  stacked=False)
    assert fast.stacked and not generic.stacked
    x_eval = x if per_seed else x[:50]
    fast_logits, generic_logits = fast.logits(x_eval), generic.logits(x_eval)
    assert relative_logit_difference(fast_logits, generic_logits) <= 1e-5
    torch.testing.assert_close(fast.history["loss"], generic.history["loss"], rtol=1e-5,
                               atol=1e-6)
    s = 1  # and against the plain loop, seed 4, every loss
    for k, (name, loss) in enumerate(losses.items()):
        model = train.train_one(build, loss, x[s] if per_seed else x, y[s] if per_seed else y,
                                seeds[s], recipe)
        plain = model(x_eval[s] if per_seed else x_eval).detach()
        assert relative_logit_difference(fast_logits[k, s], plain) <= 1e-5, name


@pytest.mark.parametrize("binary", [False, True])
def test_every_library_loss_is_evaluated_without_vmap(binary):
    losses = EVERY_BINARY_LOSS if binary else EVERY_MULTICLASS_LOSS
    g = torch.Generator().manual_seed(0)
    logits = torch.randn((4, 16) if binary else (4, 16, 3), generator=g)
    targets = (torch.rand(4, 16, generator=g) < 0.3).float() if binary else torch.randint(
        0, 3, (4, 16), generator=g)
    for name, loss in losses.items():
        with L.skip_value_checks():  # as in the trainer: vmap cannot run the value checks
            chosen = train._loss_over_models(loss, logits, targets)
            assert chosen.__name__ in ("over_models", "_cross_entropy_over_models",
                                   "_bce_over_models"), name
            torch.testing.assert_close(chosen(logits, targets),
                                       torch.func.vmap(loss)(logits, targets))


def test_a_loss_that_mixes_models_keeps_vmap_and_still_trains_right():
    x, y = toy_multiclass()
    # a whole-tensor mean: inside over_models it would average over all models at once
    pooled = {"pooled": lambda z, t: -F.log_softmax(z, -1).gather(-1, t[..., None]).mean()}
    recipe = train.Recipe(epochs=1, batch_size=32, lr=0.01)
    fast = train.train_batched(make_model, pooled, x, y, [0, 1], recipe, progress=False)
    with L.skip_value_checks():
        chosen = train._loss_over_models(pooled["pooled"], torch.randn(2, 8, 3),
                                         torch.zeros(2, 8, dtype=torch.long))
    assert fast.stacked and chosen.__name__ != "over_models"
    model = train.train_one(make_model, pooled["pooled"], x, y, 1, recipe)
    assert relative_logit_difference(fast.logits(x)[0, 1], model(x).detach()) <= 1e-5


def test_models_the_stacked_path_cannot_run_take_the_generic_path():
    x, y = toy_multiclass()
    recipe = train.Recipe(epochs=1, batch_size=32, lr=0.01)
    ce = {"ce": F.cross_entropy}
    tanh = lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))  # noqa: E731
    assert not train.train_batched(tanh, ce, x, y, [0], recipe, progress=False).stacked
    linear = train.train_batched(lambda: nn.Linear(6, 3), ce, x, y, [0], recipe, progress=False)
    assert linear.stacked
    with pytest.raises(ValueError, match="stacked=True needs an nn.Sequential"):
        train.train_batched(tanh, ce, x, y, [0], recipe, progress=False, stacked=True)
    with pytest.raises(ValueError, match="stacked must be None, True or False"):
        train.train_batched(make_model, ce, x, y, [0], recipe, progress=False, stacked="yes")


def test_non_finite_inputs_are_rejected_before_training():
    x, y = toy_multiclass()
    recipe = train.Recipe(epochs=1, batch_size=32, lr=0.01)
    bad = x.clone()
    bad[3, 2], bad[7, 0] = float("nan"), float("inf")
    with pytest.raises(ValueError, match="x must be finite: it holds 1 NaN and 1 infinite"):
        train.train_batched(make_model, {"ce": F.cross_entropy}, bad, y, [0], recipe,
                            progress=False)
    with pytest.raises(ValueError, match="x must be finite"):
        train.train_one(make_model, F.cross_entropy, bad, y, 0, recipe)
    labels = (y == 0).float()
    labels[5] = float("nan")
    with pytest.raises(ValueError, match="y must contain only 0 and 1"):
        train.train_batched(make_binary_model, {"bce": F.binary_cross_entropy_with_logits}, x,
                            labels, [0], recipe, progress=False)


@pytest.mark.parametrize("stacked", [None, False], ids=["stacked path", "generic path"])
def test_a_loss_that_turns_non_finite_stops_training(stacked):
    x, y = toy_multiclass()
    recipe = train.Recipe(epochs=3, batch_size=32, lr=0.01)
    # cross-entropy plus an infinite constant: the history of every epoch would be inf
    blows_up = lambda z, t: F.cross_entropy(z, t) - torch.log(torch.zeros(()))  # noqa: E731
    with pytest.raises(FloatingPointError,
                       match=r"the training loss 'blows up' became inf in epoch 1 for seed 5"):
        train.train_batched(make_model, {"ce": F.cross_entropy, "blows up": blows_up}, x, y,
                            [5, 6], recipe, progress=False, stacked=stacked)
    with pytest.raises(FloatingPointError, match="in epoch 1 for seed 5"):
        train.train_one(make_model, blows_up, x, y, 5, recipe)
