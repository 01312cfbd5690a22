"""Customer models: the estimator contract and the CLV models (BG/NBD, Gamma-Gamma)."""

from crmlens.models.base import Estimator
from crmlens.models.clv import BetaGeoModel, GammaGammaModel, summarise_transactions

__all__ = ["BetaGeoModel", "Estimator", "GammaGammaModel", "summarise_transactions"]
