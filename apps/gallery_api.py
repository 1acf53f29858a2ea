"""Gallery's admin HTTP API under `/v1/admin/`: reads are open, writes need `Authorization: Bearer <token>`
with the token from `MA_RAY_ADMIN_TOKEN` (no token configured: writes are refused). OpenAPI at `/docs`.

Run with `serve run apps.gallery_api:app`; the prediction application mounts the same routes.
No `from __future__ import annotations` here: FastAPI reads the request models from the real annotations.
"""

from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from ma_ray.config import load_settings
from ma_ray.gallery import Gallery, GalleryError, admin_refusal, error_status
from ma_ray.serving import Rollout, ServePool

api = FastAPI(title="ma-ray Gallery admin API", version="1", description="Models, versions and aliases.")


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(ge=1, description="the version to point at; null removes the alias")
    expected: int | None = Field(default=None, description="compare-and-set: the version it must point at now")
    expect_unset: bool = Field(default=False, description="compare-and-set: the alias must be unset now")
    reason: str = Field(default="", max_length=500)
    wait_s: float | None = Field(default=None, gt=0, le=60, description="wait until every replica acknowledged")


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | str = Field(description='a version number, "latest", or an alias whose version to deploy')
    alias: str | None = Field(default="production", description="the alias to move; null only loads the version")
    app: str = Field(default="prediction", description="the Serve application serving the model")


class AdminGallery:
    """The routes' logic over one Gallery, separate from Serve so it is easy to reason about."""

    def __init__(self, gallery: Gallery, token: str | None) -> None:
        self.gallery = gallery
        self.token = token

    def authorize(self, authorization: str | None) -> None:
        refusal = admin_refusal(self.token, authorization)
        if refusal is not None:
            raise HTTPException(*refusal)


def _http_error(error: Exception) -> HTTPException:
    return HTTPException(error_status(error), str(error))


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1})
@serve.ingress(api)
class GalleryAdminAPI:
    def __init__(self, settings_overrides: dict[str, Any] | None = None) -> None:
        settings = load_settings(**(settings_overrides or {}))
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.admin = AdminGallery(Gallery.from_settings(settings), token)

    def _call(self, action: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return action(*args, **kwargs)
        except (GalleryError, KeyError, ValueError) as error:
            raise _http_error(error) from None

    @api.get("/v1/admin/models")
    def list_models(self) -> list[dict]:
        return [m.model_dump(mode="json") for m in self._call(self.admin.gallery.models)]

    @api.get("/v1/admin/models/{model}")
    def describe(self, model: str) -> dict:
        registered = self._call(self.admin.gallery.model, model)
        return {**registered.model_dump(mode="json"), "aliases": self._call(self.admin.gallery.aliases, model)}

    @api.get("/v1/admin/models/{model}/versions")
    def versions(self, model: str) -> list[dict]:
        return [v.model_dump(mode="json") for v in self._call(self.admin.gallery.versions, model)]

    @api.get("/v1/admin/models/{model}/aliases/{alias}")
    def alias_history(self, model: str, alias: str) -> dict:
        history = self._call(self.admin.gallery.alias_history, model, alias)
        current = history[-1].to_version if history else None
        return {
            "model": model,
            "alias": alias,
            "version": current,
            "history": [e.model_dump(mode="json") for e in history],
        }

    @api.put("/v1/admin/models/{model}/aliases/{alias}")
    def set_alias(
        self, model: str, alias: str, update: AliasUpdate, authorization: str | None = Header(default=None)
    ) -> dict:
        self.admin.authorize(authorization)
        expected: Any = None if update.expect_unset else update.expected
        kwargs = {"reason": update.reason, "wait_s": update.wait_s}
        if update.expected is not None or update.expect_unset:
            kwargs["expected"] = expected
        event = self._call(self.admin.gallery.set_alias, model, alias, update.version, **kwargs)
        return event.model_dump(mode="json")

    @api.post("/v1/admin/models/{model}/aliases/{alias}:rollback")
    def rollback(self, model: str, alias: str, authorization: str | None = Header(default=None)) -> dict:
        self.admin.authorize(authorization)
        return self._call(self.admin.gallery.rollback, model, alias).model_dump(mode="json")

    @api.post("/v1/admin/models/{model}:deploy", responses={409: {}, 422: {}})
    def deploy(self, model: str, request: DeployRequest, authorization: str | None = Header(default=None)) -> dict:
        """Deploy a version through the rollout flow: shadow load on every replica of the model's pool, atomic
        alias flip, every ingress switched. 422: the version failed to load and was rolled back; 409: another
        deployment of the model is in progress."""
        self.admin.authorize(authorization)
        rollout = Rollout(self.admin.gallery, ServePool(self.admin.gallery, request.app))
        return self._call(rollout.deploy, model, request.version, request.alias).to_dict()


def build_app(args: dict[str, Any]) -> serve.Application:
    """Serve config entry point: ``import_path: apps.gallery_api:build_app``."""
    return GalleryAdminAPI.bind(args.get("settings"))


app = GalleryAdminAPI.bind()
