"""The data sets of reweighting.data: long-tailed counts, subsets, MNIST-1D caching, Gaussian
mixtures."""

import random

import numpy as np
import pytest
import torch

from reweighting import data


def test_long_tailed_counts_match_cifar_lt():
    # CIFAR-10-LT and CIFAR-100-LT at imbalance ratio 100 (Cao et al. 2019; Menon et al. 2020)
    assert sum(data.long_tailed_counts(5000, 10, 100)) == 12406
    assert sum(data.long_tailed_counts(500, 100, 100)) == 10847
    counts = data.long_tailed_counts(5000, 10, 100)
    assert counts[0] == 5000 and counts[-1] == 50
    assert counts == sorted(counts, reverse=True)


def test_long_tailed_counts_profiles_and_errors():
    assert data.long_tailed_counts(100, 4, 10, profile="step") == [100, 100, 10, 10]
    assert data.long_tailed_counts(100, 3, 1) == [100, 100, 100]
    with pytest.raises(ValueError, match=r"^ratio must be a finite real number in \[1, inf\)"):
        data.long_tailed_counts(100, 10, 0.5)
    with pytest.raises(ValueError, match=r"^num_classes must be an integer in \[2, inf\)"):
        data.long_tailed_counts(100, 1, 10)
    with pytest.raises(ValueError, match=r"^n_max must be an integer in \[1, inf\), got 0"):
        data.long_tailed_counts(0, 10, 10)
    with pytest.raises(ValueError, match=r"^n_max must be an integer .*, got 100.0"):
        data.long_tailed_counts(100.0, 10, 10)
    with pytest.raises(ValueError, match="profile"):
        data.long_tailed_counts(100, 10, 10, profile="linear")


def test_long_tailed_indices_take_the_requested_counts():
    labels = torch.arange(5).repeat(20)
    counts = [20, 9, 4, 2, 1]
    idx = data.long_tailed_indices(labels, counts, seed=3)
    assert torch.bincount(labels[idx], minlength=5).tolist() == counts
    assert len(set(idx.tolist())) == len(idx)
    assert torch.equal(idx, data.long_tailed_indices(labels, counts, seed=3))
    with pytest.raises(ValueError, match=r"counts\[0\] = 21 but class 0 has only 20"):
        data.long_tailed_indices(labels, [21, 1, 1, 1, 1])


def test_one_vs_rest_has_the_requested_positive_rate():
    labels = torch.arange(10).repeat(100)
    x = torch.randn(1000, 3)
    xb, yb = data.one_vs_rest(x, labels, positive_class=3, positive_rate=0.02, seed=0)
    assert yb.dtype == torch.float32 and set(yb.unique().tolist()) == {0.0, 1.0}
    assert int(yb.sum()) == round(0.02 / 0.98 * 900)
    assert len(yb) == 900 + int(yb.sum())
    with pytest.raises(ValueError, match=r"^positive_rate must be a finite real number in \("):
        data.one_vs_rest(x, labels, 3, 1.5)
    with pytest.raises(ValueError, match="needs 900 positives"):
        data.one_vs_rest(x, labels, 3, 0.5)
    with pytest.raises(ValueError, match="does not occur"):
        data.one_vs_rest(x, labels, 11, 0.1)


def test_load_mnist1d_caches_and_leaves_global_rngs_alone(tmp_path):
    random.seed(1)
    np.random.seed(1)
    before = (random.random(), np.random.rand())
    random.seed(1)
    np.random.seed(1)
    split = data.load_mnist1d(num_samples=200, directory=tmp_path)
    assert (random.random(), np.random.rand()) == before
    assert split.x_train.shape == (160, 40) and split.x_test.shape == (40, 40)
    assert split.x_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    assert set(split.y_train.tolist()) <= set(range(10))
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = data.load_mnist1d(num_samples=200, directory=tmp_path)  # from the cache
    assert torch.equal(split.x_train, again.x_train)
    with pytest.raises(ValueError, match="num_samples must be a positive multiple of 10"):
        data.load_mnist1d(num_samples=105, directory=tmp_path)
    with pytest.raises(ValueError, match=r"^train_split must be a finite real number in \(0, 1"):
        data.load_mnist1d(num_samples=200, train_split=1.0, directory=tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "missing_array"])
def test_load_mnist1d_regenerates_an_unreadable_cache(tmp_path, capsys, damage):
    first = data.load_mnist1d(num_samples=100, directory=tmp_path)
    capsys.readouterr()
    (path,) = tmp_path.glob("*.npz")
    intact = path.read_bytes()
    if damage == "truncate":  # e.g. a full disk
        path.write_bytes(intact[: len(intact) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    else:
        np.savez(path, x=np.zeros((2, 40)))  # a readable file without y, x_test, y_test
    again = data.load_mnist1d(num_samples=100, directory=tmp_path)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert str(path) in lines[0] and "unreadable" in lines[0] and "regenerating" in lines[0]
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    # healed: the file is whole again, the next call reads it silently, no leftovers
    with np.load(path) as healed:
        assert healed["x"].shape == (80, 40) and healed["y_test"].shape == (20,)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    data.load_mnist1d(num_samples=100, directory=tmp_path)
    assert capsys.readouterr().err == ""


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.delenv("BOOK_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "reweighting-book"


def test_gaussian_mixture_bayes_rules():
    mix = data.GaussianMixture(means=[[1.0, 1.0], [-1.0, -1.0]], priors=[0.05, 0.95])
    x, y = mix.sample(20000, seed=0)
    assert abs(float((y == 0).double().mean()) - 0.05) < 0.01
    # with means ±mu and identity covariance the balanced rule is the sign of mu·x
    balanced = mix.bayes_predict(x, balanced=True)
    assert torch.equal(balanced, (x.sum(1) < 0).long())
    # the error-optimal rule predicts the rare class 0 only when 2 mu·x > log(0.95 / 0.05)
    standard = mix.bayes_predict(x)
    assert torch.equal(standard, (2 * x.sum(1) <= np.log(0.95 / 0.05)).long())
    assert float((standard == y).double().mean()) > float((balanced == y).double().mean())
    with pytest.raises(ValueError, match="priors must be positive and sum to 1"):
        data.GaussianMixture(means=[[1.0], [-1.0]], priors=[0.5, 0.6])
    with pytest.raises(ValueError, match=r"means must have shape \(C, d\)"):
        data.GaussianMixture(means=[1.0, -1.0], priors=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"^sigma must be a finite real number in \(0, inf\)"):
        data.GaussianMixture(means=[[1.0], [-1.0]], priors=[0.5, 0.5], sigma=0.0)
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, inf\), got 0"):
        mix.sample(0)


def test_with_label_noise_replaces_the_requested_fraction():
    labels = torch.arange(10).repeat(2000)
    noisy = data.with_label_noise(labels, 0.3, 10, seed=1)
    changed = float((noisy != labels).double().mean())
    assert abs(changed - 0.3 * 0.9) < 0.01  # a replaced label keeps its class 1 time in 10
    assert torch.equal(data.with_label_noise(labels, 0.0, 10), labels)
    assert torch.equal(noisy, data.with_label_noise(labels, 0.3, 10, seed=1))
    with pytest.raises(ValueError, match=r"^rate must be a finite real number in \[0, 1\]"):
        data.with_label_noise(labels, 1.2, 10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        data.with_label_noise(labels, 0.1, 5)


def test_load_digits_split_is_stratified_standardised_and_checked():
    split = data.load_digits_split()
    assert split.x_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    assert split.x_train.shape[1] == 64 and len(split.y_train) + len(split.y_test) == 1797
    counts_train, counts_test = torch.bincount(split.y_train), torch.bincount(split.y_test)
    assert (counts_train - counts_test).abs().max() <= 1  # stratified halves
    mean, std = split.x_train.mean(0), split.x_train.std(0, unbiased=False)
    assert mean.abs().max() < 1e-5  # standardised with the training part's statistics
    assert ((std - 1).abs() < 1e-4).sum() + (std == 0).sum() == 64  # constant pixels stay 0
    again = data.load_digits_split()
    assert torch.equal(split.x_test, again.x_test) and torch.equal(split.y_test, again.y_test)
    with pytest.raises(ValueError, match="test_size"):
        data.load_digits_split(test_size=1.0)


def test_one_vs_rest_with_a_size_keeps_exactly_that_many():
    labels = torch.arange(1000) % 10
    x = torch.arange(1000.0)[:, None]
    xb, yb = data.one_vs_rest(x, labels, positive_class=3, positive_rate=0.05, seed=1, size=400)
    assert len(yb) == 400 and int(yb.sum()) == 20
    assert (labels[xb[:, 0].long()] == 3).float().equal(yb)
    with pytest.raises(ValueError, match="negatives"):
        data.one_vs_rest(x, labels, 3, 0.05, size=990)


def test_per_seed_stacks_each_seeds_draw_and_checks_shapes():
    x, y = data.per_seed(lambda s: (torch.full((3, 2), float(s)), torch.full((3,), s)), [4, 7])
    assert x.shape == (2, 3, 2) and y.tolist() == [[4, 4, 4], [7, 7, 7]]
    assert data.per_seed(lambda s: torch.tensor([s]), [1, 2]).tolist() == [[1], [2]]
    with pytest.raises(ValueError, match="same shapes"):
        data.per_seed(lambda s: torch.zeros(s), [1, 2])
    with pytest.raises(ValueError, match="at least one seed"):
        data.per_seed(lambda s: torch.zeros(1), [])


def test_mnist1d_sample_is_balanced_and_differs_by_seed(tmp_path):
    x0, y0 = data.mnist1d_sample(100, seed=7, directory=tmp_path)
    x1, _ = data.mnist1d_sample(100, seed=8, directory=tmp_path)
    assert x0.shape == (100, 40) and torch.bincount(y0).tolist() == [10] * 10
    assert not torch.equal(x0, x1)
    assert torch.equal(data.mnist1d_sample(100, seed=7, directory=tmp_path)[0], x0)  # cached


def test_the_mnist1d_cache_is_keyed_by_every_generator_setting(tmp_path, monkeypatch):
    """A cache made with other generator settings (or another mnist1d) is never read as this
    one: the file name carries a hash of the version and every argument."""
    import mnist1d.data

    first = data.load_mnist1d(num_samples=100, directory=tmp_path)
    defaults = mnist1d.data.get_dataset_args

    def noisier():
        args = defaults()
        args.iid_noise_scale = 0.5
        return args

    monkeypatch.setattr(mnist1d.data, "get_dataset_args", noisier)
    other = data.load_mnist1d(num_samples=100, directory=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert not torch.equal(first.x_train, other.x_train)
    monkeypatch.setattr(mnist1d.data, "get_dataset_args", defaults)
    assert torch.equal(data.load_mnist1d(num_samples=100, directory=tmp_path).x_train,
                       first.x_train)
