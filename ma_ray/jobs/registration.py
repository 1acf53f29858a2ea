"""Completion of a training job: its published artifact registered in Gallery as the next version of its model,
with the lineage the job knows (features, transforms, snapshots, params, metrics, job id)."""

from __future__ import annotations

import json
from typing import Any

from ma_ray.config import Settings
from ma_ray.gallery import Gallery, InputSignature, PaletteLineage, VersionSpec
from ma_ray.jobs.spec import TrainingJobSpec
from ma_ray.jobs.workflow import JobRecord
from ma_ray.palette import FeatureRegistry
from ma_ray.palette.meta_store import open_meta_store


def register_in_gallery(settings: Settings, record: JobRecord, spec: TrainingJobSpec, outcome: dict[str, Any]) -> str:
    """Register the attempt's published artifact as the next version of ``spec.name`` with its lineage (features,
    snapshots, params, metrics, job id); returns ``<model>:<version>``. Idempotent per job: a version already
    registered by this job is returned instead of a second one."""
    artifact = outcome.get("artifact")
    if not artifact:
        raise ValueError("the attempt reported success but published no artifact")
    meta = open_meta_store(settings)
    gallery = Gallery.from_settings(settings, lineage=PaletteLineage(FeatureRegistry(meta)))
    try:
        gallery.register_model(
            name=spec.name,
            owner=spec.owner,
            tier=spec.tier,
            framework=spec.trainer_framework,
            description=spec.description,
        )
        done = [v for v in gallery.versions(spec.name) if v.training_job_id == record.job_id]
        version = (
            done[0]
            if done
            else gallery.register_version(
                spec.name,
                VersionSpec(
                    artifact_uri=artifact["uri"],
                    checksum=artifact["checksum"],
                    size_bytes=artifact["size_bytes"],
                    flavor=artifact["flavor"],
                    signature=InputSignature(features=spec.features, transforms=spec.transforms),
                    params={k: json.dumps(v) if isinstance(v, list) else v for k, v in spec.hyperparameters.items()},
                    metrics=outcome.get("metrics", {}),
                    training_job_id=record.job_id,
                    training_snapshot=record.training_snapshot,
                    description=spec.description,
                ),
            )
        )
        if spec.alias:
            gallery.set_alias(spec.name, spec.alias, version.version, reason=f"training job {record.job_id}")
        return version.model_id
    finally:
        gallery.close()
        meta.close()
