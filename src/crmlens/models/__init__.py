"""Customer models: the estimator contract and the CLV models (BG/NBD, Gamma-Gamma)."""

from crmlens.models.base import Estimator
from crmlens.models.churn import ChurnModel, warning_rules
from crmlens.models.churn_features import churn_feature_table, churn_labels
from crmlens.models.churn_purchases import ChurnedPurchases, churned_purchases
from crmlens.models.clustering import CustomerClusters
from crmlens.models.clv import BetaGeoModel, GammaGammaModel, summarise_transactions
from crmlens.models.features import customer_features, transactions
from crmlens.models.lifecycle import LifecycleStages
from crmlens.models.personas import Persona, persona, tier_profile
from crmlens.models.rfm import RFMModel, migration, transition_matrix

__all__ = ["BetaGeoModel", "Estimator", "GammaGammaModel", "summarise_transactions"]

# Segmentation models: per-customer features, RFM, clusters, personas, lifecycle stages.
__all__ += [
    "CustomerClusters",
    "LifecycleStages",
    "Persona",
    "RFMModel",
    "customer_features",
    "migration",
    "persona",
    "tier_profile",
    "transactions",
    "transition_matrix",
]

# Churn: risk with reasons, early warning, what churned customers bought.
__all__ += [
    "ChurnModel",
    "ChurnedPurchases",
    "churn_feature_table",
    "churn_labels",
    "churned_purchases",
    "warning_rules",
]
