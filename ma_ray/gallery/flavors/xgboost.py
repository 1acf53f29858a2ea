"""XGBoost models in XGBoost's own binary JSON (UBJ) format: portable across versions, no pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ma_ray.gallery.models import Framework

FILE = "model.ubj"


class XGBoostFlavor:
    framework = Framework.XGBOOST
    in_memory = True

    def save(self, model: Any, dest: Path, **options: Any) -> dict[str, Any]:
        import xgboost as xgb

        booster = model.get_booster() if hasattr(model, "get_booster") else model
        if not isinstance(booster, xgb.Booster):
            raise TypeError(f"the xgboost flavor saves an xgboost.Booster or XGBModel, not {type(model).__name__}")
        dest.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(dest / FILE))
        return {"xgboost_version": xgb.__version__, "num_features": booster.num_features()}

    def load(self, src: Path, metadata: dict[str, Any]) -> Any:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(src / FILE))
        return booster
