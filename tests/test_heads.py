"""The last layers of reweighting.heads and the ensemble's features and last layer (chapter 6)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.class_weight import compute_sample_weight

from reweighting import heads, metrics, train


@pytest.fixture(scope="module")
def ensemble():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=gen)
    y = (x[:, 0] + 0.5 * torch.randn(300, generator=gen) > 0.8).long() + (x[:, 1] > 1).long()
    losses = {"ce": F.cross_entropy, "double": lambda z, t: 2 * F.cross_entropy(z, t)}
    ens = train.train_batched(lambda: train.mlp(6, [16, 8], 3), losses, x, y, [1, 2],
                              train.Recipe(3, 64, lr=1e-2), progress=False)
    return ens, x, y


def test_features_through_the_last_layer_are_the_logits(ensemble):
    ens, x, _ = ensemble
    features, (weight, bias) = ens.features(x), ens.last_layer()
    assert features.shape == (2, 2, 300, 8) and weight.shape == (2, 2, 3, 8)
    logits = features @ weight.transpose(-1, -2) + bias[..., None, :]
    torch.testing.assert_close(logits, ens.logits(x), rtol=1e-5, atol=1e-5)
    per_seed = torch.stack([x, x.flip(0)])
    torch.testing.assert_close(ens.features(per_seed)[:, 1], ens.features(x.flip(0))[:, 1])


def test_select_keeps_the_chosen_losses_models(ensemble):
    ens, x, _ = ensemble
    chosen = ens.select(["double"])
    assert chosen.shape == (1, 2)
    torch.testing.assert_close(chosen.logits(x)[0], ens.logits(x)[1])
    with pytest.raises(ValueError, match="loss_names"):
        ens.select(["focal"])


def test_features_need_a_stacked_mlp():
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    ens = train.train_batched(lambda: train.mlp(3, [4], 2), {"ce": F.cross_entropy}, x, y, [0],
                              train.Recipe(1, 20, lr=1e-2), progress=False, stacked=False)
    with pytest.raises(ValueError, match="stacked MLPs"):
        ens.features(x)


def test_inverse_frequency_weights_are_sklearns_balanced_weights():
    labels = torch.tensor([[0, 0, 0, 1, 2, 2], [1, 1, 0, 2, 2, 2]])
    weights = heads.inverse_frequency_weights(labels, 3)
    for row, w in zip(labels, weights):
        np.testing.assert_allclose(w.numpy(), compute_sample_weight("balanced", row.numpy()))
    with pytest.raises(ValueError, match="every one of the 3 classes"):
        heads.inverse_frequency_weights(torch.tensor([0, 0, 1]), 3)
    with pytest.raises(ValueError, match="labels must lie"):
        heads.inverse_frequency_weights(torch.tensor([0, 1, 3]), 3)


def test_class_balanced_resample_draws_each_class_equally_often():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    counts = heads.class_balanced_resample(labels, 3, seed=4)
    assert counts.sum() == 99
    assert [float(counts[labels == c].sum()) for c in range(3)] == [33.0, 33.0, 33.0]
    torch.testing.assert_close(counts, heads.class_balanced_resample(labels, 3, seed=4))
    assert not torch.equal(counts, heads.class_balanced_resample(labels, 3, seed=5))


def test_standardise_uses_the_training_statistics_and_keeps_dead_units_at_zero():
    train_f = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    test_f = torch.tensor([[3.0, 7.0]])
    tr, te = heads.standardise(train_f, test_f)
    torch.testing.assert_close(tr[:, 0], torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(te, torch.tensor([[0.0, 2.0]], dtype=torch.float64))


def test_refit_broadcasts_labels_and_weights_over_losses(ensemble):
    pytest.importorskip("reweighting.solvers")
    ens, x, y = ensemble
    (features,) = heads.standardise(ens.features(x))
    fit = heads.refit(features, y, 3, sample_weight=heads.inverse_frequency_weights(y, 3),
                      l2=1e-2)
    assert fit.weight.shape == (4, 8, 3) and bool(fit.converged.all())
    logits = fit.logits(features.flatten(0, 1)).unflatten(0, (2, 2))
    alone = heads.refit(features[1, 0], y, 3, sample_weight=heads.inverse_frequency_weights(y, 3),
                        l2=1e-2)
    torch.testing.assert_close(logits[1, 0], alone.logits(features[1, 0])[0], rtol=1e-6,
                               atol=1e-6)


def test_posthoc_adjustment_subtracts_tau_log_prior():
    logits = torch.randn(4, 3)
    prior = torch.tensor([0.7, 0.2, 0.1])
    torch.testing.assert_close(heads.posthoc_adjusted_logits(logits, prior, 0.5),
                               logits - 0.5 * prior.log())
    with pytest.raises(ValueError, match="prior must"):
        heads.posthoc_adjusted_logits(logits, torch.tensor([0.5, 0.5]))


def test_tau_normalisation_divides_each_class_vector_by_its_norm():
    features = torch.randn(2, 5, 4, dtype=torch.float64)
    weight = torch.randn(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(heads.tau_normalised_logits(features, weight, 0.0),
                               features @ weight.transpose(-1, -2))
    unit = weight / weight.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(heads.tau_normalised_logits(features, weight, 1.0),
                               features @ unit.transpose(-1, -2))
    per_model = heads.tau_normalised_logits(features, weight, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(per_model[1], (features @ unit.transpose(-1, -2))[1])
    with pytest.raises(ValueError, match="tau"):
        heads.tau_normalised_logits(features, weight, -1.0)


def test_best_tau_picks_the_validation_best():
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(3).repeat(100)
    features = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    # class 0 has a huge weight norm: its scores dominate unless normalised
    weight = torch.tensor([[20.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    features = features + 2 * weight[labels] / weight[labels].norm(dim=-1, keepdim=True)
    tau = heads.best_tau(features, labels, weight, [0.0, 0.5, 1.0], metrics.balanced_accuracy)
    assert float(tau) > 0
    chosen = metrics.balanced_accuracy(heads.tau_normalised_logits(features, weight, tau), labels)
    plain = metrics.balanced_accuracy(features @ weight.T, labels)
    assert chosen > plain


def test_balanced_accuracy_matches_sklearn():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 50, 4, generator=gen)
    labels = torch.randint(0, 4, (3, 50), generator=gen)
    scores = metrics.balanced_accuracy(logits, labels)
    for k in range(2):
        for s in range(3):
            assert scores[k, s] == pytest.approx(
                balanced_accuracy_score(labels[s], logits[k, s].argmax(-1)))


def test_tuned_threshold_is_the_best_cut_of_the_validation_scores():
    rng = np.random.default_rng(3)
    y = (rng.random((2, 400)) < 0.05).astype(float)
    z = rng.normal(size=(3, 2, 400)) + 2.5 * y - 4.0  # a shifted head: thresholds far from 0
    thresholds = metrics.tuned_thresholds(z, y)
    for k in range(3):
        for s in range(2):
            cuts = np.r_[np.sort(z[k, s]) - 1e-9, z[k, s].max() + 1]
            best = max(metrics.binary_scores(y[s], torch.from_numpy(z[k, s] > c))["F1"]
                       for c in cuts)
            at = metrics.binary_scores(y[s], torch.from_numpy(z[k, s] > thresholds[k, s]))
            assert at["F1"] == pytest.approx(best)
    f1 = metrics.f1_at_tuned_threshold(z, y, z, y)
    assert f1.shape == (3, 2) and (f1 > 0).all()
    with pytest.raises(ValueError, match="at least one positive"):
        metrics.tuned_thresholds(z[0], np.zeros(400))
