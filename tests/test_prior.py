"""Offline priors (issue 16): the ridge fit and the Gaussian prior on hand-computed numbers,
the file's checks, the refusals, recovery from a wrong prior, and `laser-fit-prior` feeding
`laser-train bandit_prior=...` end to end on the smoke world."""

import json

import numpy as np
import pytest

from laser.bandits import (
    ArmPrior,
    LinTS,
    LinUCB,
    NormalizedBandit,
    PercentileNormalizer,
    RandomArm,
    apply_prior,
    fit_prior_means,
)
from laser.bandits.prior import describe_featurizer


class Feat:
    """A stand-in featurizer: only its identity matters to apply_prior."""

    def __init__(self, dim=2, seed=0):
        self.dim, self.seed = dim, seed


def prior(names=("a", "b"), means=((1.0, 0.0), (0.0, 1.0)), featurizer=None):
    featurizer = featurizer or Feat(len(means[0]))
    return ArmPrior(
        names=list(names),
        means=[list(m) for m in means],
        featurizer=describe_featurizer(featurizer),
        pairs=10,
        domains=["d"],
        pair_accuracy={n: 0.5 for n in names},
    )


def test_ridge_fit_matches_hand_computation():
    # (X^T X + I) = [[3, 1], [1, 3]], X^T y = [2, 1] -> theta = [5, 1] / 8
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    means = fit_prior_means(X, y, l2=1.0)
    assert np.allclose(means[0], [0.625, 0.125])
    assert np.allclose(means[1], [0.125, 0.625])  # the mirror image
    with pytest.raises(ValueError, match="finite"):
        fit_prior_means(np.array([[np.nan, 0.0]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        fit_prior_means(X, y[:2])


def test_centring_keeps_the_order_and_puts_the_pool_mean_at_zero():
    from laser.bandits.prior import center_prior_means

    means = np.array([[0.9, 0.1], [0.7, 0.5], [0.2, 0.0]])  # 3 RMs, d = 2
    centred = center_prior_means(means)
    # column means 0.6 and 0.2 subtracted, by hand
    assert np.allclose(centred, [[0.3, -0.1], [0.1, 0.3], [-0.4, -0.2]])
    x = np.array([1.0, 0.5])
    assert np.argsort(centred @ x).tolist() == np.argsort(means @ x).tolist()
    assert np.isclose((centred @ x).mean(), 0.0)


def test_prior_mean_is_the_gaussian_posterior():
    lam, mu = 2.0, np.array([0.5, -0.25])
    bandit = LinUCB(2, 2, alpha=0.0, l2_lambda=lam)
    bandit.estimator.set_prior_mean(1, mu)
    assert np.allclose(bandit.theta(1), mu) and np.allclose(bandit.theta(0), 0.0)
    x, r = np.array([1.0, 2.0]), 1.0
    bandit.update(1, x, r)
    # posterior mean (lam I + x x^T)^-1 (lam mu + r x), by hand with numpy
    expected = np.linalg.solve(lam * np.eye(2) + np.outer(x, x), lam * mu + r * x)
    assert np.allclose(bandit.theta(1), expected)
    with pytest.raises(ValueError, match="fresh"):
        bandit.estimator.set_prior_mean(1, mu)  # the arm has data now
    with pytest.raises(ValueError, match="fresh"):
        LinUCB(2, 2, gamma=0.9).estimator.set_prior_mean(0, mu)  # discounting
    with pytest.raises(ValueError, match="finite"):
        LinUCB(2, 2).estimator.set_prior_mean(0, [np.nan, 0.0])


def test_apply_prior_matches_names_and_refuses_mismatches():
    feat = Feat(2)
    bandit = NormalizedBandit(LinUCB(3, 2, alpha=0.0), PercentileNormalizer())
    # the pool lists the RMs in another order, and has one the prior does not know
    got = apply_prior(bandit, prior(("a", "b")), ["b", "new", "a"], feat)
    assert got == ["b", "a"]
    assert bandit.select(np.array([1.0, 0.0])) == 2  # "a" is reliable on this context
    assert bandit.select(np.array([0.0, 1.0])) == 0  # "b" on this one
    assert np.allclose(bandit.bandit.theta(1), 0.0)  # "new" starts cold
    with pytest.raises(ValueError, match="featurizer"):
        apply_prior(LinUCB(2, 2), prior(), ["a", "b"], Feat(2, seed=1))
    with pytest.raises(ValueError, match="dim"):
        apply_prior(LinUCB(2, 3), prior(featurizer=Feat(3)), ["a", "b"], Feat(3))
    with pytest.raises(ValueError, match="none of the pool"):
        apply_prior(LinUCB(2, 2), prior(), ["x", "y"], feat)
    with pytest.raises(ValueError, match="linear selector"):
        apply_prior(RandomArm(2), prior(), ["a", "b"], feat)
    with pytest.raises(ValueError, match="prior_reward"):  # a prior of r, not of r - m
        apply_prior(LinUCB(2, 2, prior_reward=0.5), prior(), ["a", "b"], feat)
    ts = LinTS(2, 2, v=1e-6, seed=0)
    apply_prior(ts, prior(), ["a", "b"], feat)
    assert ts.select(np.array([0.0, 1.0])) == 1


def test_prior_file_round_trip_and_corruption(tmp_path):
    path = prior().save(tmp_path / "p.json")
    assert ArmPrior.load(path) == prior()
    body = json.loads(path.read_text())
    body["means"][0][0] = 9.0  # an edit the checksum catches
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="checksum"):
        ArmPrior.load(path)
    path.write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        ArmPrior.load(path)
    with pytest.raises(FileNotFoundError, match="laser-fit-prior"):
        ArmPrior.load(tmp_path / "missing.json")


def test_online_updates_recover_from_a_wrong_prior():
    """The prior says arm 0 is reliable everywhere; in truth arm 1 is better on context B.
    LinUCB must move off the prior's choice on B within a few hundred rounds."""
    rng = np.random.default_rng(0)
    contexts = {"A": np.array([1.0, 0.0]), "B": np.array([0.0, 1.0])}
    truth = {("A", 0): 0.8, ("A", 1): 0.3, ("B", 0): 0.2, ("B", 1): 0.9}
    bandit = LinUCB(2, 2, alpha=0.5, seed=0)
    apply_prior(bandit, prior(means=((0.9, 0.9), (0.0, 0.0))), ["a", "b"], Feat(2))
    assert bandit.select(contexts["B"]) == 0  # the prior's (wrong) choice
    picks = []
    for t in range(400):
        name = "AB"[t % 2]
        arm = bandit.select(contexts[name])
        bandit.update(arm, contexts[name], float(rng.random() < truth[(name, arm)]))
        if name == "B":
            picks.append(arm)
    assert np.mean(picks[:10]) < 0.5  # it starts where the prior points
    assert np.mean(picks[-50:]) > 0.9  # and ends on the arm that is really better on B
    assert bandit.select(contexts["A"]) == 0


def test_fit_prior_cli_feeds_a_run(tmp_path, capsys):
    """laser-fit-prior on the smoke world, then a run with bandit_prior: the selector starts
    from the fitted means; a prior fitted with another seed's featurizer is refused."""
    from laser.build import build_loop
    from laser.cli import compose_train
    from laser.fit_prior import main
    from laser.logging import NullLogger

    common = ["experiment=smoke", f"cache_dir={tmp_path / 'cache'}", "progress=false"]
    main(["--out", str(tmp_path / "p.json"), "--pairs-per-domain", "20", *common])
    assert "label-free check skipped: it needs >= 3 RMs" in capsys.readouterr().out  # 2 RMs
    fitted = ArmPrior.load(tmp_path / "p.json")
    assert fitted.pairs == 20 * len(fitted.domains) and len(fitted.names) >= 2
    assert fitted.centered and np.allclose(np.mean(fitted.means, axis=0), 0.0)
    overrides = [*common, f"bandit_prior={tmp_path / 'p.json'}", f"output_dir={tmp_path / 'r'}"]
    loop = build_loop(compose_train(overrides), NullLogger())
    linear, names = loop.router.selector, list(loop.router.arms.rms)
    for k, name in enumerate(fitted.names):
        assert np.allclose(linear.theta(names.index(name)), fitted.means[k])
    loop.run(progress=False)  # and it trains
    with pytest.raises(ValueError, match="featurizer"):
        build_loop(compose_train([*overrides, "loop.seed=1"]), NullLogger())


def _signs(rng, p, n):
    """+1 with probability p (the RM orders the pair as its label does), else -1."""
    return np.where(rng.random(n) < p, 1.0, -1.0)


def test_label_free_check_recovers_independent_accuracies_and_flags_a_shared_flaw():
    """Independent errors: spectral_agreement's estimate of each RM's accuracy is the labelled
    one (Parisi et al. 2014's identity, here on 4,000 pairs). Three RMs sharing one error
    pattern (p = 0.6) beside an independent expert (p = 0.9): the fit sees the trio agree
    perfectly and rates them near 1, the expert near 0.5 + 0.8 * 0.2 / 2 = 0.58: the check's
    best RMs differ and check_lines warns."""
    import torch

    from laser.fit_prior import check_lines
    from laser.spectral import label_free_check

    rng = np.random.default_rng(0)
    n, accuracy = 4000, [0.9, 0.8, 0.7, 0.6]
    independent = np.stack([_signs(rng, p, n) for p in accuracy])
    check = label_free_check(torch.from_numpy(independent))
    assert np.allclose(check["labelled"].numpy(), accuracy, atol=0.02)
    assert np.allclose(check["label_free"].numpy(), check["labelled"].numpy(), atol=0.03)
    names, domains = ["expert", "a", "b", "c"], ["d"] * n
    assert "WARNING" not in "\n".join(check_lines(independent.T, names, domains))

    shared = _signs(rng, 0.6, n)
    flawed = np.stack([_signs(rng, 0.9, n), shared, shared, shared])
    check = label_free_check(torch.from_numpy(flawed))
    assert check["labelled"].numpy().argmax() == 0
    assert check["label_free"][0] == pytest.approx(0.58, abs=0.03)
    assert check["label_free"][1:].min() > 0.95
    lines = "\n".join(check_lines(flawed.T, names, domains))
    assert "WARNING" in lines and "all (labels: expert 0.9" in lines
    # per domain: the flaw only on domain y is named there, not on x
    mixed = np.concatenate([independent, flawed], axis=1).T
    lines = check_lines(mixed, names, ["x"] * n + ["y"] * n)
    assert lines[-1].startswith("WARNING") and "y (labels: expert" in lines[-1]
    assert "x (labels" not in lines[-1]
    assert label_free_check(torch.from_numpy(independent[:2])) is None  # K = 2: not identified


def test_preference_file_domains_group_the_label_free_check(tmp_path):
    """A ``domain`` column in the user's pairs file is kept (the check groups by it); without
    one every pair is in one group."""
    from laser.fit_prior import file_pairs

    rows = [{"prompt": "p", "chosen": "a", "rejected": "b", "domain": d} for d in ("x", "y")]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [e.domain for e in file_pairs(str(path))[0]] == ["x", "y"]
    path.write_text(
        "".join(json.dumps({k: r[k] for k in ("chosen", "rejected")}) + "\n" for r in rows)
    )
    assert [e.domain for e in file_pairs(str(path))[0]] == ["data", "data"]
