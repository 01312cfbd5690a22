"""Customer clustering: planted blobs are recovered, k by silhouette, metric rules, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from crmlens.errors import ConfigError, InsufficientDataError
from crmlens.models import clustering
from crmlens.models.clustering import NOISE, CustomerClusters, knee, scale


def blobs(n_per: int = 60, centres=((6.0, 0.0), (0.0, 6.0), (-6.0, -6.0)), seed: int = 0):
    """Well-separated 2-D blobs: the frame to cluster and the planted labels."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(centres)), n_per)
    points = np.asarray(centres)[truth] + rng.normal(size=(len(truth), 2))
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(len(truth))],
            "x": points[:, 0],
            "y": points[:, 1],
        }
    )
    return frame, truth


def rfm_groups(seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers from two planted groups: recent big frequent spenders, and lapsed small ones."""
    rng = np.random.default_rng(seed)
    n = 150
    vip = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 30, n),
            "frequency": rng.integers(20, 40, n),
            "monetary": rng.lognormal(8.0, 0.3, n),
        }
    )
    lapsed = pd.DataFrame(
        {
            "recency_days": rng.integers(300, 700, 2 * n),
            "frequency": rng.integers(1, 3, 2 * n),
            "monetary": rng.lognormal(3.5, 0.3, 2 * n),
        }
    )
    frame = pd.concat([vip, lapsed], ignore_index=True)
    frame.insert(0, "customer_id", [f"m{i:04d}" for i in range(len(frame))])
    return frame, np.repeat([1, 0], [n, 2 * n])


def agreement(model: CustomerClusters, frame: pd.DataFrame, truth: np.ndarray) -> float:
    """Adjusted Rand index against the planted groups, over the customers not marked noise.

    DBSCAN with the knee radius leaves the thin edges of Gaussian blobs unclustered; the tests
    bound that share separately.
    """
    labels = model.labels_.reindex(frame["customer_id"]).to_numpy()
    clustered = labels != NOISE
    return adjusted_rand_score(truth[clustered], labels[clustered])


def noise_share(model: CustomerClusters) -> float:
    return float((model.labels_ == NOISE).mean())


@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "kmeans"},
        {"algorithm": "hierarchical"},
        {"algorithm": "hierarchical", "metric": "manhattan"},
        {"algorithm": "hierarchical", "metric": "cosine"},
        {"algorithm": "dbscan"},
        {"algorithm": "dbscan", "metric": "manhattan"},
    ],
)
def test_recovers_planted_blobs(params: dict) -> None:
    frame, truth = blobs()
    model = CustomerClusters(features=("x", "y"), **params).fit(frame)
    assert model.n_clusters_ == 3
    assert agreement(model, frame, truth) > 0.95
    assert model.silhouette_ > 0.6
    assert noise_share(model) <= 0.1
    assert model.profile_["customers"].sum() == len(frame)


def test_k_chosen_by_silhouette() -> None:
    frame, truth = blobs(centres=((8, 0), (0, 8), (-8, 0), (0, -8)))
    model = CustomerClusters(features=("x", "y")).fit(frame)
    assert model.n_clusters_ == 4
    assert sorted(model.silhouette_by_k_) == list(range(2, 9))
    assert max(model.silhouette_by_k_, key=model.silhouette_by_k_.get) == 4
    assert agreement(model, frame, truth) > 0.95
    fixed = CustomerClusters(features=("x", "y"), n_clusters=2).fit(frame)
    assert fixed.n_clusters_ == 2 and fixed.silhouette_by_k_ == {}


def test_rfm_clusters_get_labels_and_log_scaling() -> None:
    frame, truth = rfm_groups()
    model = CustomerClusters(n_clusters=2).fit(frame)
    assert agreement(model, frame, truth) == 1.0
    profile = model.profile_
    assert list(profile.index) == [0, 1] and profile["customers"].tolist() == [300, 150]
    assert profile.loc[1, "label_zh"] == "高价值高频近期活跃"
    assert profile.loc[1, "label_en"] == "high value, frequent, recent"
    assert profile.loc[0, "label_zh"] == "低价值低频久未购买"
    assert profile.loc[1, "mean_monetary"] == pytest.approx(frame["monetary"][:150].mean())
    assert profile["revenue_share"].sum() == pytest.approx(1.0)
    projection = model.projection_
    assert list(projection.columns) == ["customer_id", "pc1", "pc2", "cluster"]
    assert len(projection) == len(frame)


def test_scale() -> None:
    raw = pd.DataFrame({"monetary": [-5.0, 0.0, 9.0, 99.0], "recency_days": [1, 2, 3, 4]})
    scaled = scale(raw)
    logged = np.log1p([0.0, 0.0, 9.0, 99.0])  # the net refund is clipped to 0 before log1p
    np.testing.assert_allclose(scaled[:, 0], (logged - logged.mean()) / logged.std())
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scale(pd.DataFrame({"a": [3.0, 3.0]})), 0.0)


@pytest.mark.parametrize("metric", ["manhattan", "cosine"])
def test_kmeans_is_euclidean_only(metric: str) -> None:
    frame, _ = blobs()
    with pytest.raises(ConfigError, match="k-means minimises squared Euclidean"):
        CustomerClusters(metric=metric, features=("x", "y")).fit(frame)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"algorithm": "spectral"}, "algorithm must be"),
        ({"metric": "chebyshev"}, "metric must be"),
        ({"algorithm": "dbscan", "n_clusters": 3}, "leave n_clusters=None"),
        ({"n_clusters": 1}, "n_clusters must be"),
        ({"algorithm": "dbscan", "eps": -1.0}, "eps must be"),
        ({"features": ("x", "missing")}, "missing columns"),
    ],
)
def test_bad_configuration(params: dict, message: str) -> None:
    frame, _ = blobs()
    params = {"features": ("x", "y"), **params}
    with pytest.raises(ConfigError, match=message):
        CustomerClusters(**params).fit(frame)


def test_too_few_customers() -> None:
    frame, _ = blobs()
    with pytest.raises(InsufficientDataError):
        CustomerClusters(features=("x", "y")).fit(frame.head(2))


@pytest.mark.parametrize("algorithm", ["kmeans", "hierarchical", "dbscan"])
def test_deterministic_with_seed_and_row_order(algorithm: str) -> None:
    frame, _ = blobs(n_per=40)
    params = {"algorithm": algorithm, "features": ("x", "y"), "random_state": 7}
    a = CustomerClusters(**params).fit(frame)
    b = CustomerClusters(**params).fit(frame.sample(frac=1.0, random_state=1))
    pd.testing.assert_series_equal(a.labels_, b.labels_)
    pd.testing.assert_frame_equal(a.profile_, b.profile_)
    np.testing.assert_allclose(a.projection_[["pc1", "pc2"]], b.projection_[["pc1", "pc2"]])


def test_large_inputs_are_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    frame, truth = blobs(n_per=100)
    unsampled = CustomerClusters(features=("x", "y")).fit(frame)
    # shrink the sampling limits so the sampled paths run on a small frame
    monkeypatch.setattr(clustering, "HIERARCHICAL_MAX_ROWS", 50)
    monkeypatch.setattr(clustering, "SILHOUETTE_MAX_ROWS", 60)
    monkeypatch.setattr(clustering, "KMEANS_SEARCH_MAX_ROWS", 120)
    monkeypatch.setattr(clustering, "KNEE_MAX_ROWS", 60)
    for algorithm in ("hierarchical", "kmeans", "dbscan"):
        first = CustomerClusters(algorithm=algorithm, features=("x", "y")).fit(frame)
        again = CustomerClusters(algorithm=algorithm, features=("x", "y")).fit(frame)
        assert first.n_clusters_ == 3, algorithm
        assert agreement(first, frame, truth) > 0.95, algorithm
        assert noise_share(first) <= 0.1, algorithm
        pd.testing.assert_series_equal(first.labels_, again.labels_)
        if algorithm == "kmeans":
            # k chosen on a sample, then refitted on every row from the sample's centres: the same
            # clusters as ten random starts on every row
            pd.testing.assert_series_equal(first.labels_, unsampled.labels_)
            assert sorted(first.silhouette_by_k_) == list(range(2, 9))


def test_dbscan_marks_outliers_as_noise() -> None:
    frame, _ = blobs()
    outlier = pd.DataFrame({"customer_id": ["zzz"], "x": [60.0], "y": [-60.0]})
    model = CustomerClusters(algorithm="dbscan", features=("x", "y")).fit(
        pd.concat([frame, outlier], ignore_index=True)
    )
    assert model.labels_["zzz"] == NOISE
    assert model.profile_.loc[NOISE, "label_zh"] == "噪声点"
    assert model.eps_ > 0 and model.n_clusters_ == 3


def test_knee() -> None:
    assert knee(np.array([0.1, 0.11, 0.12, 0.13, 0.15, 2.0, 4.0])) == 0.15
    assert knee(np.array([0.0, 0.0, 0.0, 0.5, 3.0])) == 0.5  # never a zero radius
