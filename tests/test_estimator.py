"""BayesianGMM: scikit-learn compatibility and the answers it gives on well separated data.

Short collapsed-Gibbs runs (2 chains x 200 draws) on 90-150 points with three clear groups.
"""

from __future__ import annotations

import re
from html import escape

import numpy as np
import pandas as pd
import pytest
from conftest import three_clusters_1d
from scipy import stats
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bayesmix.estimator import EXPECTED_FAILED_CHECKS, BayesianGMM
from bayesmix.notebook import fit_html

FAST = dict(engine="collapsed", chains=2, draws=200, tune=100)
CENTRES_2D = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
PER_CLUSTER_2D = 50


def round_clusters_2d(seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Three round 2-D clusters (sd 1) of 50 points at CENTRES_2D; returns (x, labels)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), PER_CLUSTER_2D)
    return CENTRES_2D[labels] + rng.standard_normal((len(labels), 2)), labels


@pytest.fixture(scope="module")
def data_1d() -> tuple[np.ndarray, np.ndarray]:
    x = three_clusters_1d(90)[:, None]
    return x, np.repeat(np.arange(3), 30)


@pytest.fixture(scope="module")
def gmm_1d(data_1d) -> BayesianGMM:
    return BayesianGMM("sparse_finite", random_state=3, **FAST).fit(data_1d[0])


@pytest.fixture(scope="module")
def frame_2d() -> tuple[pd.DataFrame, np.ndarray]:
    x, labels = round_clusters_2d()
    return pd.DataFrame(x, columns=["height", "width"]), labels


@pytest.fixture(scope="module")
def gmm_2d(frame_2d) -> BayesianGMM:
    return BayesianGMM("sparse_finite", random_state=5, **FAST).fit(frame_2d[0])


# --------------------------------------------------------------------------- parameters


def test_clone_gives_an_unfitted_copy_with_equal_params(gmm_1d):
    copy = clone(gmm_1d)
    assert copy.get_params() == gmm_1d.get_params()
    assert not hasattr(copy, "idata_") and not hasattr(copy, "labels_")
    est = BayesianGMM(model="finite", n_components=4, covariance_type="diag", random_state=7)
    assert clone(est).get_params() == est.get_params()


def test_set_params_maps_onto_the_spec(frame_2d):
    est = BayesianGMM(random_state=0, **FAST)
    assert est.set_params(model="finite", n_components=4, covariance_type="diag") is est
    assert est.get_params()["n_components"] == 4
    est.fit(frame_2d[0])
    spec = est.summary_["spec"]
    assert spec["mixing"]["type"] == "finite" and spec["mixing"]["n_components"] == 4
    assert spec["kernel"]["covariance"] == "diag"
    assert est.idata_["posterior"].sizes["cluster"] == 4
    off = est.covariances_[:, 0, 1]
    assert np.all(off == 0.0), off  # diagonal kernel: no correlation in any draw


@pytest.mark.parametrize(
    "params, match",
    [
        ({"covariance_type": "sphere"}, "covariance_type"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"engine": "bogus"}, "engine"),
        ({"chains": 0}, "chains"),
        ({"tune": -1}, "tune"),
        ({"max_predictive_draws": 0}, "max_predictive_draws"),
        ({"model": 3}, "model"),
        ({"model": "no_such_model"}, "unknown model"),
        ({"random_state": "seed"}, "random_state"),
        ({"progress": "yes"}, "progress"),
    ],
)
def test_invalid_params_raise_in_fit_not_in_init(params, match, data_1d):
    est = BayesianGMM(**params)  # stored unchanged
    assert all(est.get_params()[k] == v for k, v in params.items())
    with pytest.raises(ValueError, match=match):
        est.fit(data_1d[0])


def test_bad_data_raise_value_error(data_1d):
    est = BayesianGMM(random_state=0, **FAST)
    with pytest.raises(ValueError, match="minimum of 5"):
        est.fit(data_1d[0][:4])
    with pytest.raises(ValueError, match="constant"):
        est.fit(np.column_stack([data_1d[0][:, 0], np.ones(90)]))
    with pytest.raises(ValueError, match="NaN"):
        est.fit(np.vstack([data_1d[0], [[np.nan]]]))
    with pytest.raises(ValueError, match="2D array"):
        est.fit(data_1d[0][:, 0])


def test_random_state_int_reproduces_none_draws_fresh_seeds(data_1d, gmm_1d):
    x = data_1d[0]
    again = BayesianGMM("sparse_finite", random_state=3, **FAST).fit(x)
    assert again.seed_ == gmm_1d.seed_ == 3
    np.testing.assert_array_equal(again.weights_, gmm_1d.weights_)
    np.testing.assert_array_equal(again.means_, gmm_1d.means_)
    quick = dict(engine="collapsed", chains=1, draws=20, tune=10)
    seeds = [BayesianGMM(random_state=None, **quick).fit(x).seed_ for _ in range(2)]
    assert seeds[0] != seeds[1]  # P(equal) = 1 / (2**31 - 1)
    rs = BayesianGMM(random_state=np.random.RandomState(11), **quick).fit(x).seed_
    assert rs == np.random.RandomState(11).randint(2**31 - 1)


# --------------------------------------------------------------------------- answers


def test_1d_attributes_and_centres(gmm_1d, data_1d):
    x, truth = data_1d
    est = gmm_1d
    assert est.n_clusters_ == 3
    assert est.n_features_in_ == 1 and not hasattr(est, "feature_names_in_")
    assert sum(est.n_clusters_pmf_.values()) == pytest.approx(1.0)
    assert max(est.n_clusters_pmf_, key=est.n_clusters_pmf_.get) == 3
    assert est.weights_.shape == (3,) and np.all(np.diff(est.weights_) <= 0)  # heaviest first
    assert est.means_.shape == (3, 1) and est.covariances_.shape == (3, 1, 1)
    assert est.membership_.shape == (90, 3) and est.labels_.shape == (90,)
    assert est.partition_.shape == (90,)
    assert adjusted_rand_score(est.labels_, truth) > 0.95
    assert adjusted_rand_score(est.partition_, truth) > 0.95
    # means within 4 standard errors (sd 1 / sqrt(30) per cluster) of the true centres
    se = 1.0 / np.sqrt(30)
    np.testing.assert_allclose(np.sort(est.means_[:, 0]), [-6.0, 0.0, 6.0], atol=4 * se)
    np.testing.assert_allclose(est.weights_, 1 / 3, atol=0.15)
    np.testing.assert_allclose(np.sqrt(est.covariances_[:, 0, 0]), 1.0, atol=0.4)


def test_2d_predict_proba_at_centres_and_labels(gmm_2d, frame_2d):
    frame, truth = frame_2d
    est = gmm_2d
    assert list(est.feature_names_in_) == ["height", "width"]
    assert est.summary_["data"]["columns"] == ["height", "width"]
    assert est.n_clusters_ == 3
    centres = pd.DataFrame(CENTRES_2D, columns=frame.columns)
    proba = est.predict_proba(centres)
    at = proba.argmax(axis=1)
    assert len(set(at)) == 3, proba.round(3)  # a different cluster at each centre
    assert np.all(proba[np.arange(3), at] > 0.99), proba.round(4)
    pred = est.predict(frame)
    assert adjusted_rand_score(pred, truth) > 0.95
    assert np.mean(pred == est.labels_) > 0.97  # predictive vs sampled memberships
    # means within 4 standard errors (sd 1 / sqrt(50) per coordinate) of the true centres
    se = 1.0 / np.sqrt(PER_CLUSTER_2D)
    np.testing.assert_allclose(est.means_[at], CENTRES_2D, atol=4 * se)
    np.testing.assert_allclose(est.covariances_[at], np.tile(np.eye(2), (3, 1, 1)), atol=0.5)


def test_predict_proba_interval_brackets_the_mean(gmm_2d, frame_2d):
    x = frame_2d[0].iloc[::10]
    mean, lo, hi = gmm_2d.predict_proba(x, return_interval=True)
    assert mean.shape == lo.shape == hi.shape == (len(x), 3)
    # (a skewed posterior can put the mean outside its own 90% interval: not checked)
    assert np.all((0 <= lo) & (lo <= hi) & (hi <= 1)) and np.all((0 <= mean) & (mean <= 1))
    np.testing.assert_allclose(mean.sum(axis=1), 1.0)
    # a point half-way between two centres is uncertain: wide interval, no near-certain cluster
    middle = pd.DataFrame([CENTRES_2D[[0, 2]].mean(axis=0)], columns=x.columns)
    m, lo, hi = gmm_2d.predict_proba(middle, return_interval=True)
    assert m.max() < 0.99 and np.max(hi - lo) > 0.1, (m, lo, hi)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_reordered_or_missing_columns_raise(gmm_2d, frame_2d):
    frame = frame_2d[0]
    with pytest.raises(ValueError, match="feature names"):
        gmm_2d.predict(frame[["width", "height"]])
    with pytest.raises(ValueError, match="feature names"):
        gmm_2d.score_samples(frame.rename(columns={"width": "depth"}))
    with pytest.raises(ValueError, match="features"):
        gmm_2d.predict_proba(frame.to_numpy()[:, :1])
    with pytest.raises(ValueError, match="2D array"):
        gmm_2d.predict(frame.to_numpy()[0])
    with pytest.warns(UserWarning, match="feature names"):
        gmm_2d.predict(frame.to_numpy()[:3])  # names lost: scikit-learn warns


def test_score_samples_is_the_posterior_predictive_over_all_draws(gmm_1d, data_1d):
    x = np.array([[-6.0], [0.3], [5.0], [30.0]])
    post = gmm_1d.idata_["posterior"]
    k = post.sizes["cluster"]
    w = post["w"].values.reshape(-1, k)  # 400 draws <= max_predictive_draws: all kept
    mu = post["mu"].values.reshape(-1, k)
    sd = post["sigma"].values.reshape(-1, k)
    with np.errstate(divide="ignore"):
        lj = np.log(w)[:, None, :] + stats.norm.logpdf(x[None, :, :], mu[:, None], sd[:, None])
    want = logsumexp(logsumexp(lj, axis=-1), axis=0) - np.log(len(w))
    got = gmm_1d.score_samples(x)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # far from every cluster (the empty components, drawn from the prior, keep it finite)
    assert np.isfinite(got[3]) and got[3] < got[:3].min() - 5
    assert gmm_1d.score(data_1d[0]) == pytest.approx(np.mean(gmm_1d.score_samples(data_1d[0])))


def test_2d_predictions_match_the_draws(gmm_2d, frame_2d):
    from bayesmix.posterior.allocations import log_joint_draws

    rows = frame_2d[0].iloc[::7]
    x = rows.to_numpy()
    rel = gmm_2d.idata_["relabelled"]
    lj = log_joint_draws(x, rel["w"].values, rel["mu"].values, rel["cov"].values)
    want = np.exp(lj - logsumexp(lj, axis=-1, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose(gmm_2d.predict_proba(rows), want, rtol=1e-9, atol=1e-12)
    post = gmm_2d.idata_["posterior"]
    k = post.sizes["cluster"]
    w = post["w"].values.reshape(-1, k)
    lj = log_joint_draws(
        x, w, post["mu"].values.reshape(len(w), k, 2), post["cov"].values.reshape(len(w), k, 2, 2)
    )
    want = logsumexp(logsumexp(lj, axis=-1), axis=0) - np.log(len(w))
    np.testing.assert_allclose(gmm_2d.score_samples(rows), want, rtol=1e-10)


def test_density_integrates_to_one_and_sample(gmm_1d):
    grid = np.linspace(-15, 15, 3001)
    mean, lo, hi = gmm_1d.density(grid)  # a 1-D grid is accepted for 1 feature
    assert mean.shape == lo.shape == hi.shape == (3001,)
    assert np.all(lo <= hi)
    assert np.trapezoid(mean, grid) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(mean, np.exp(gmm_1d.score_samples(grid[:, None])), rtol=1e-9)
    xs, comp = gmm_1d.sample(3000, random_state=0)
    assert xs.shape == (3000, 1) and comp.shape == (3000,)
    # three groups at -6, 0, 6 (overall sd about 5): sample mean within 4 SE of 0
    assert abs(xs.mean()) < 4 * 5 / np.sqrt(3000)
    again, _ = gmm_1d.sample(3000, random_state=0)
    np.testing.assert_array_equal(xs, again)


# --------------------------------------------------------------------------- scikit-learn


def test_fit_predict_is_labels(data_1d):
    est = BayesianGMM("sparse_finite", random_state=3, **FAST)
    labels = est.fit_predict(data_1d[0])
    np.testing.assert_array_equal(labels, est.labels_)
    assert labels.dtype == np.int64


def test_pipeline_fit_predict_fit_predict_score(frame_2d):
    frame, truth = frame_2d
    pipe = Pipeline(
        [("scale", StandardScaler()), ("gmm", BayesianGMM("sparse_finite", random_state=1, **FAST))]
    )
    assert pipe.fit(frame) is pipe
    gmm = pipe.named_steps["gmm"]
    pred = pipe.predict(frame)
    assert adjusted_rand_score(pred, truth) > 0.95
    assert np.mean(pred == gmm.labels_) > 0.97
    score = pipe.score(frame)
    scaled = pipe.named_steps["scale"].transform(frame)
    assert np.isfinite(score) and score == pytest.approx(gmm.score(scaled))
    labels = pipe.fit_predict(frame)
    np.testing.assert_array_equal(labels, pipe.named_steps["gmm"].labels_)
    assert adjusted_rand_score(labels, truth) > 0.95


def test_grid_search_over_models(data_1d):
    est = BayesianGMM(engine="collapsed", chains=1, draws=100, tune=50, random_state=0)
    search = GridSearchCV(est, {"model": ["dp", "sparse_finite"]}, cv=2).fit(data_1d[0])
    assert search.best_params_["model"] in ("dp", "sparse_finite")
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.n_clusters_ == 3


def test_from_fit_matches_fit(frame_2d):
    from bayesmix.fit import fit

    x = frame_2d[0].to_numpy()
    result = fit(x, "sparse_finite", seed=8, progress=False, classical=False, **FAST)
    est = BayesianGMM.from_fit(result)
    assert est.seed_ == 8 and est.n_features_in_ == 2 and not hasattr(est, "feature_names_in_")
    direct = BayesianGMM("sparse_finite", random_state=8, **FAST).fit(x)
    np.testing.assert_array_equal(est.weights_, direct.weights_)
    np.testing.assert_array_equal(est.labels_, direct.labels_)
    np.testing.assert_allclose(est.score_samples(x[:5]), direct.score_samples(x[:5]))
    named = BayesianGMM.from_fit(
        fit(frame_2d[0], "sparse_finite", seed=8, progress=False, classical=False, **FAST)
    )
    assert list(named.feature_names_in_) == ["height", "width"]
    with pytest.raises(ValueError, match="feature names"):
        named.predict(frame_2d[0][["width", "height"]])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_check_estimator():
    from sklearn.utils.estimator_checks import (
        check_dataframe_column_names_consistency,
        check_estimator,
    )

    est = BayesianGMM(engine="collapsed", chains=1, draws=50, tune=20, random_state=0)
    check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS)
    check_dataframe_column_names_consistency("BayesianGMM", est)


# --------------------------------------------------------------------------- notebooks


def test_repr_html_unfitted_and_fitted(data_1d):
    from bayesmix.posterior.answer import answer_sentence

    est = BayesianGMM("sparse_finite", random_state=2, **FAST)
    html = est._repr_html_()
    assert "not fitted" in html and "n_components" in html and "sparse_finite" in html
    frame = pd.DataFrame({"<script>alert(1)</script>": data_1d[0][:, 0]})
    est.fit(frame)
    html = est._repr_html_()
    assert html == fit_html(est.summary_)
    assert est._repr_mimebundle_()["text/html"] == html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert escape(answer_sentence(est.summary_)) in html
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', html)
    assert re.search(r"Diagnostics: (all diagnostics pass|some diagnostics)", html)
    bare = fit_html({"model": "<m>"})  # a summary without the answer: no light to show
    assert "&lt;m&gt;" in bare and "<img" not in bare and "none available" in bare
