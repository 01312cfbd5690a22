"""Customer clustering (A2): k-means, hierarchical or DBSCAN on scaled per-customer features.

Input is a frame with ``customer_id`` and the feature columns, normally the output of
:func:`crmlens.models.features.customer_features` executed by the warehouse.

Scaling: money and count features (``monetary``, ``frequency``, ``aov``) are heavy-tailed, so they go
through ``log1p`` first (negative net amounts are clipped to 0, as a net refund says nothing about
size); then every feature is standardised to mean 0 and standard deviation 1.

Algorithms and metrics:

* ``"kmeans"`` — Euclidean only (k-means minimises squared Euclidean distances; any other metric is
  a :class:`~crmlens.errors.ConfigError`).
* ``"hierarchical"`` — Ward linkage for Euclidean, average linkage for Manhattan and cosine (Ward is
  only defined for Euclidean). The tree is built on at most :data:`HIERARCHICAL_MAX_ROWS` customers
  (a seeded sample; the pairwise distances grow with the square of the rows) and the others join
  the cluster of their nearest sampled customer under the same metric.
* ``"dbscan"`` — any of the three metrics; ``eps`` is the knee of the sorted ``min_samples``-th
  nearest-neighbour distances when not given, and unclustered customers get label ``-1`` (noise).

When ``n_clusters`` is None (k-means and hierarchical), k is the one from 2 to 8 with the best
silhouette score, computed on a seeded sample of at most :data:`SILHOUETTE_MAX_ROWS` customers (the
score compares every pair of customers, so its cost grows with the square of the rows). k-means
fits the candidates on a seeded sample of at most :data:`KMEANS_SEARCH_MAX_ROWS` customers (ten
starts each), then only the chosen k on every customer, starting from the sample's centres. Up to
that many customers the candidates are fitted on everyone and the chosen fit is the result.
Clusters are numbered by size, largest first.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> centres = np.repeat([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]], 50, axis=0)
>>> points = centres + rng.normal(size=(150, 2))
>>> frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(150)], "x": points[:, 0], "y": points[:, 1]})
>>> model = CustomerClusters(features=("x", "y")).fit(frame)
>>> model.n_clusters_, model.profile_["customers"].tolist()
(3, [50, 50, 50])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Self

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from sklearn.cluster import DBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from crmlens.errors import ConfigError, InsufficientDataError
from crmlens.models.base import Estimator

Algorithm = Literal["kmeans", "hierarchical", "dbscan"]
Metric = Literal["euclidean", "manhattan", "cosine"]

#: Features that are log1p-transformed before standardising.
LOG_FEATURES = frozenset({"monetary", "frequency", "aov"})
#: Candidate numbers of clusters when ``n_clusters`` is None.
K_RANGE = range(2, 9)
#: Silhouette scores (k search and the reported ``silhouette_``) use a sample of this many rows.
SILHOUETTE_MAX_ROWS = 5_000
#: k-means candidates for k are fitted on a sample of this many rows.
KMEANS_SEARCH_MAX_ROWS = 50_000
HIERARCHICAL_MAX_ROWS = 5_000
#: DBSCAN's radius is the knee of the k-distances of a sample of this many rows.
KNEE_MAX_ROWS = 20_000
#: BLAS/OpenMP threads for k-means and silhouettes. One: the work is small once k is chosen on a
#: sample (a million-row refit takes under a second), and on a busy 2-core host spinning OpenMP
#: threads made a 50,000-row k-means ten times slower than one thread.
THREADS = 1
#: |mean z-score| of a cluster above which a feature is called high or low in its label.
LABEL_Z = 0.5
NOISE = -1

_SCIPY_METRIC = {"euclidean": "euclidean", "manhattan": "cityblock", "cosine": "cosine"}
# (high, low) words per feature for the cluster labels; recency is "good" when low
_WORDS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "monetary": (("高价值", "high value"), ("低价值", "low value")),
    "frequency": (("高频", "frequent"), ("低频", "infrequent")),
    "recency_days": (("久未购买", "lapsed"), ("近期活跃", "recent")),
    "aov": (("高客单", "big baskets"), ("低客单", "small baskets")),
    "tenure_days": (("老客", "long-standing"), ("新客", "new")),
}


class CustomerClusters(Estimator):
    """Cluster customers on scaled features and describe each cluster.

    After :meth:`fit`: ``labels_`` (cluster per customer, indexed by ``customer_id``),
    ``n_clusters_``, ``silhouette_`` (score of the result, NaN when undefined),
    ``silhouette_by_k_`` (the k search, empty when k was given or for DBSCAN), ``eps_`` (DBSCAN),
    ``profile_`` (per cluster: customers, share, raw feature means, ``label_zh``/``label_en``) and
    ``projection_`` (``customer_id``, ``pc1``, ``pc2``, ``cluster``: a 2-D PCA of the scaled
    features, for scatter plots).
    """

    def __init__(
        self,
        *,
        algorithm: Algorithm = "kmeans",
        metric: Metric = "euclidean",
        n_clusters: int | None = None,
        features: Sequence[str] = ("recency_days", "frequency", "monetary"),
        eps: float | None = None,
        min_samples: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.algorithm = algorithm
        self.metric = metric
        self.n_clusters = n_clusters
        self.features = features
        self.eps = eps
        self.min_samples = min_samples
        self.random_state = random_state

    def _validate(self, n_rows: int) -> None:
        if self.algorithm not in ("kmeans", "hierarchical", "dbscan"):
            raise ConfigError(
                f"algorithm must be 'kmeans', 'hierarchical' or 'dbscan'; got {self.algorithm!r}"
            )
        if self.metric not in _SCIPY_METRIC:
            raise ConfigError(
                f"metric must be 'euclidean', 'manhattan' or 'cosine'; got {self.metric!r}"
            )
        if self.algorithm == "kmeans" and self.metric != "euclidean":
            raise ConfigError(
                f"k-means minimises squared Euclidean distances, so it cannot use "
                f"metric={self.metric!r}; use algorithm='hierarchical' (average linkage) or "
                "'dbscan' for Manhattan or cosine distance"
            )
        if self.algorithm == "dbscan" and self.n_clusters is not None:
            raise ConfigError("DBSCAN finds the number of clusters itself; leave n_clusters=None")
        if self.n_clusters is not None and not (
            isinstance(self.n_clusters, int | np.integer) and 2 <= self.n_clusters < n_rows
        ):
            raise ConfigError(
                f"n_clusters must be an integer from 2 to the number of customers - 1 "
                f"({n_rows - 1}); got {self.n_clusters!r}"
            )
        if self.eps is not None and not (np.isfinite(self.eps) and self.eps > 0):
            raise ConfigError(f"eps must be a number > 0; got {self.eps!r}")
        if self.min_samples is not None and not (
            isinstance(self.min_samples, int | np.integer) and self.min_samples >= 2
        ):
            raise ConfigError(f"min_samples must be an integer >= 2; got {self.min_samples!r}")

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, features: pd.DataFrame) -> Self:
        """Scale the features, cluster, and profile the clusters."""
        names = list(self.features)
        raw = _checked(features, names)
        self._validate(len(raw))
        scaled = scale(raw[names])
        rng = np.random.default_rng(self.random_state)
        self.silhouette_by_k_: dict[int, float] = {}
        self.eps_: float | None = None
        if self.algorithm == "kmeans":
            labels = self._kmeans(scaled, rng)
        elif self.algorithm == "hierarchical":
            labels = self._hierarchical(scaled, rng)
        else:
            labels = self._dbscan(scaled, rng)
        labels = _by_size(labels)
        clustered = labels != NOISE
        self.n_clusters_ = len(np.unique(labels[clustered]))
        self.silhouette_ = (
            self._silhouette(scaled[clustered], labels[clustered], rng)
            if 2 <= self.n_clusters_ < clustered.sum()
            else float("nan")
        )
        ids = raw["customer_id"].to_numpy()
        self.labels_ = pd.Series(labels, index=pd.Index(ids, name="customer_id"), name="cluster")
        self.profile_ = _profile(raw[names], scaled, labels)
        self.projection_ = _projection(ids, scaled, labels, self.random_state)
        return self

    def cluster_of(self, customer_ids: Sequence[str]) -> pd.Series:
        """The cluster of each given customer (NaN for a customer not in the fitted data)."""
        self._check_fitted("cluster_of")
        return self.labels_.reindex(pd.Index(customer_ids, name="customer_id"))

    def _silhouette(self, x: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> float:
        if len(x) > SILHOUETTE_MAX_ROWS:
            take = rng.choice(len(x), SILHOUETTE_MAX_ROWS, replace=False)
            x, labels = x[take], labels[take]
        if len(np.unique(labels)) < 2:
            return float("nan")
        with threadpool_limits(limits=THREADS):
            return float(silhouette_score(x, labels, metric=self.metric))

    def _best_k(self, labelling: dict[int, np.ndarray], x: np.ndarray, seed: int) -> int:
        """The k whose labelling of ``x`` has the best silhouette; every k is scored on the same
        sample."""
        for k, labels in labelling.items():
            self.silhouette_by_k_[k] = self._silhouette(x, labels, np.random.default_rng(seed))
        scored = {k: s for k, s in self.silhouette_by_k_.items() if np.isfinite(s)}
        if not scored:
            raise InsufficientDataError("no number of clusters from 2 to 8 gives distinct clusters")
        return max(scored, key=lambda k: (scored[k], -k))

    def _candidate_ks(self, n_rows: int) -> list[int]:
        if self.n_clusters is not None:
            return [int(self.n_clusters)]
        return [k for k in K_RANGE if k < n_rows]

    def _kmeans(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Labels of the best k (or the given one): candidates on a sample, the chosen on all."""
        search = x
        if len(x) > KMEANS_SEARCH_MAX_ROWS:
            search = x[np.sort(rng.choice(len(x), KMEANS_SEARCH_MAX_ROWS, replace=False))]
        with threadpool_limits(limits=THREADS):
            fits = {
                k: KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit(search)
                for k in self._candidate_ks(len(search))
            }
        if self.n_clusters is not None:
            k = int(self.n_clusters)
        else:
            k = self._best_k(
                {k: f.labels_ for k, f in fits.items()}, search, int(rng.integers(2**31))
            )
        if search is x:
            return fits[k].labels_
        # the sample's best-of-ten centres are already near a good optimum for all rows: a single
        # Lloyd run from them converges in a few passes, where ten random starts on a million
        # rows would cost ten full fits
        final = KMeans(k, init=fits[k].cluster_centers_, n_init=1, random_state=self.random_state)
        with threadpool_limits(limits=THREADS):
            return final.fit_predict(x)

    def _hierarchical(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sample = (
            np.sort(rng.choice(len(x), HIERARCHICAL_MAX_ROWS, replace=False))
            if len(x) > HIERARCHICAL_MAX_ROWS
            else np.arange(len(x))
        )
        method = "ward" if self.metric == "euclidean" else "average"
        distances = pdist(x[sample], metric=_SCIPY_METRIC[self.metric])
        if not np.isfinite(distances).all():
            raise ConfigError(
                "cosine distance is undefined for a customer whose scaled features are all 0; "
                "use another metric or add a feature"
            )
        tree = linkage(distances, method=method)
        ks = self._candidate_ks(len(sample))
        labelling = {k: fcluster(tree, k, criterion="maxclust") - 1 for k in ks}
        if self.n_clusters is not None:
            chosen = labelling[int(self.n_clusters)]
        else:
            chosen = labelling[self._best_k(labelling, x[sample], int(rng.integers(2**31)))]
        if len(sample) == len(x):
            return chosen
        nearest = NearestNeighbors(n_neighbors=1, metric=self.metric).fit(x[sample])
        index = nearest.kneighbors(x, return_distance=False)[:, 0]
        return chosen[index]

    def _dbscan(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        min_samples = self.min_samples or max(4, 2 * x.shape[1])
        if min_samples >= len(x):
            raise InsufficientDataError(
                f"DBSCAN with min_samples={min_samples} needs more than {min_samples} customers"
            )
        self.eps_ = float(self.eps) if self.eps is not None else self._knee_eps(x, min_samples, rng)
        return DBSCAN(eps=self.eps_, min_samples=min_samples, metric=self.metric).fit_predict(x)

    def _knee_eps(self, x: np.ndarray, min_samples: int, rng: np.random.Generator) -> float:
        """The knee of the sorted k-distance curve (k = min_samples), on a seeded sample."""
        sample = x
        if len(x) > KNEE_MAX_ROWS:
            sample = x[rng.choice(len(x), KNEE_MAX_ROWS, replace=False)]
        # the query point is its own first neighbour, as in DBSCAN's min_samples count
        nn = NearestNeighbors(n_neighbors=min_samples, metric=self.metric).fit(sample)
        kdist = np.sort(nn.kneighbors(sample)[0][:, -1])
        return knee(kdist)


def knee(curve: np.ndarray) -> float:
    """The value at the knee of an ascending curve: the point farthest below its chord.

    >>> knee(np.array([1.0, 1.0, 1.1, 1.2, 1.3, 5.0, 9.0]))
    1.3
    """
    y = np.asarray(curve, dtype=float)
    if len(y) < 3 or y[-1] == y[0]:
        return float(y[-1]) if y[-1] > 0 else 1.0
    xs = np.linspace(0.0, 1.0, len(y))
    ys = (y - y[0]) / (y[-1] - y[0])
    gap = xs - ys  # how far the normalised curve lies below the chord from first to last point
    value = float(y[int(np.argmax(gap))])
    # a knee at distance 0 (many duplicates) would make every cluster a single point
    return value if value > 0 else float(y[y > 0].min())


def scale(raw: pd.DataFrame) -> np.ndarray:
    """log1p the money and count features (clipped at 0), then standardise every column.

    A constant column becomes all zeros rather than NaN.
    """
    values = raw.astype(float).copy()
    for name in values.columns:
        if name in LOG_FEATURES:
            values[name] = np.log1p(values[name].clip(lower=0.0))
    array = values.to_numpy()
    std = array.std(axis=0)
    return (array - array.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _checked(features: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    if not names:
        raise ConfigError("features must name at least one column")
    missing = [c for c in ("customer_id", *names) if c not in features.columns]
    if missing:
        raise ConfigError(f"clustering features missing columns {missing}")
    raw = features[["customer_id", *names]].copy()
    for name in names:
        raw[name] = pd.to_numeric(raw[name], errors="coerce").astype(float)
    bad = [n for n in names if not np.isfinite(raw[n]).all()]
    if bad:
        raise ConfigError(f"clustering features {bad} have missing or non-numeric values")
    if raw["customer_id"].duplicated().any():
        raise ConfigError("clustering needs one row per customer_id")
    if len(raw) < 3:
        raise InsufficientDataError(f"clustering needs at least 3 customers; got {len(raw)}")
    return raw.sort_values("customer_id", kind="stable").reset_index(drop=True)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, … by decreasing size (ties: first appearance); noise stays -1."""
    labels = np.asarray(labels)
    kept = labels != NOISE
    ids, first, counts = np.unique(labels[kept], return_index=True, return_counts=True)
    new_of = np.empty(len(ids), dtype=np.int64)  # new number of the cluster ids[i]
    new_of[np.lexsort((first, -counts))] = np.arange(len(ids))
    out = np.full(len(labels), NOISE, dtype=np.int64)
    out[kept] = new_of[np.searchsorted(ids, labels[kept])]
    return out


def _label(z: pd.Series) -> tuple[str, str]:
    """A short Chinese and English label from the cluster's mean z-scores."""
    words = []
    # known features first, in _WORDS order (value before frequency before recency)
    ordered = sorted(z.index, key=lambda n: list(_WORDS).index(n) if n in _WORDS else len(_WORDS))
    for name, value in z[ordered].items():
        high, low = _WORDS.get(
            str(name), ((f"{name}高", f"high {name}"), (f"{name}低", f"low {name}"))
        )
        if value > LABEL_Z:
            words.append(high)
        elif value < -LABEL_Z:
            words.append(low)
    return ("".join(w[0] for w in words) or "一般", ", ".join(w[1] for w in words) or "average")


def _profile(raw: pd.DataFrame, scaled: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    grouped = raw.groupby(labels)
    profile = grouped.mean().add_prefix("mean_")
    profile.insert(0, "customers", grouped.size())
    profile.insert(1, "share", profile["customers"] / len(raw))
    if "monetary" in raw.columns and raw["monetary"].sum() != 0:
        revenue_share = grouped["monetary"].sum() / raw["monetary"].sum()
        profile.insert(2, "revenue_share", revenue_share)
    z = pd.DataFrame(scaled, columns=raw.columns).groupby(labels).mean()
    texts = [("噪声点", "noise") if c == NOISE else _label(z.loc[c]) for c in profile.index]
    seen: dict[tuple[str, str], int] = {}
    for i, text in enumerate(texts):
        # two clusters can read alike; number the repeats so a legend tells them apart
        seen[text] = seen.get(text, 0) + 1
        if seen[text] > 1:
            texts[i] = (f"{text[0]}({seen[text]})", f"{text[1]} ({seen[text]})")
    profile["label_zh"] = [t[0] for t in texts]
    profile["label_en"] = [t[1] for t in texts]
    return profile.rename_axis("cluster")


def _projection(
    ids: np.ndarray, scaled: np.ndarray, labels: np.ndarray, random_state: int
) -> pd.DataFrame:
    components = min(2, scaled.shape[1])
    points = PCA(n_components=components, random_state=random_state).fit_transform(scaled)
    if components == 1:
        points = np.column_stack([points[:, 0], np.zeros(len(points))])
    return pd.DataFrame(
        {"customer_id": ids, "pc1": points[:, 0], "pc2": points[:, 1], "cluster": labels}
    )
