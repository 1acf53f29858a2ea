"""Gallery: the model registry's API over one store, one artifact store and one alias bus.

Versions are numbered by the store's atomic insert (retrying the next number on a lost race), aliases move
by compare-and-set with their history in the same atomic step, and every alias change is broadcast so
serving caches invalidate at once.
"""

from __future__ import annotations

import getpass
import random
import shutil
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ma_ray.config import Settings
from ma_ray.gallery.artifacts import ArtifactStore
from ma_ray.gallery.broadcast import AliasBus, AliasChange, Propagation
from ma_ray.gallery.cache import AliasCache
from ma_ray.gallery.errors import (
    AliasConflictError,
    GalleryError,
    ModelExistsError,
    NothingToRollBackError,
    PropagationTimeoutError,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
)
from ma_ray.gallery.flavors import flavor as flavor_for
from ma_ray.gallery.lineage import LineageSink, RecordFn, as_sink
from ma_ray.gallery.models import (
    AliasEvent,
    AliasState,
    Framework,
    InputSignature,
    ModelSpec,
    ModelVersion,
    RegisteredModel,
    VersionSpec,
    utc_now,
)
from ma_ray.gallery.names import check_alias_name, check_model_name
from ma_ray.gallery.store import GalleryStore, open_gallery_store


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Final = _Any()  # set_alias(expected=ANY): whatever the alias points at now (still one atomic swap)
_CAS_ATTEMPTS = 50


class Gallery:
    def __init__(
        self,
        store: GalleryStore,
        artifacts: ArtifactStore | None = None,
        bus: AliasBus | None = None,
        lineage: LineageSink | RecordFn | None = None,
        user: str | None = None,
    ) -> None:
        self.store, self.artifacts, self.bus = store, artifacts, bus
        self.lineage = as_sink(lineage)
        self.user = user or getpass.getuser()

    @classmethod
    def from_settings(
        cls, settings: Settings, lineage: LineageSink | RecordFn | None = None, bus: AliasBus | None = None
    ) -> Gallery:
        from ma_ray.gallery.bus_factory import open_alias_bus

        return cls(
            open_gallery_store(settings),
            ArtifactStore.from_settings(settings),
            bus if bus is not None else open_alias_bus(settings),
            lineage,
        )

    def close(self) -> None:
        if self.bus is not None:
            self.bus.close()
        self.store.close()

    # ---- models --------------------------------------------------------------------------------------------
    def register_model(self, spec: ModelSpec | None = None, **fields: Any) -> RegisteredModel:
        """Register a model (idempotent for identical metadata; ModelExistsError if it differs)."""
        spec = spec or ModelSpec(**fields)
        record = RegisteredModel(**spec.model_dump(), created_at=utc_now(), created_by=self.user)
        if self.store.create_model(record):
            return record
        existing = self.model(spec.name)
        if ModelSpec(**existing.model_dump(include=set(ModelSpec.model_fields))) != spec:
            raise ModelExistsError(
                f"model '{spec.name}' is registered already (owner {existing.owner}, tier {existing.tier}, "
                f"{existing.framework}) with different metadata; pick another name"
            )
        return existing

    def model(self, name: str) -> RegisteredModel:
        found = self.store.get_model(check_model_name(name))
        if found is None:
            known = ", ".join(m.name for m in self.store.list_models()[:20]) or "none"
            raise UnknownModelError(f"no model '{name}' in Gallery (registered: {known}); register it first")
        return found

    def models(self) -> list[RegisteredModel]:
        return self.store.list_models()

    # ---- versions ------------------------------------------------------------------------------------------
    def register_version(self, model: str, spec: VersionSpec) -> ModelVersion:
        """Register a published artifact as the model's next version. Every byte is verified against the
        checksum and the lineage refs are checked first: on any error nothing is written."""
        self.model(model)
        refs = spec.signature.palette_refs
        if self.lineage is not None:
            self.lineage.check(refs, spec.training_snapshot)
        manifest = ArtifactStore.verify(spec.artifact_uri, spec.checksum)
        if manifest.size_bytes != spec.size_bytes or manifest.flavor != spec.flavor:
            raise GalleryError(
                f"artifact {spec.artifact_uri} holds {manifest.size_bytes} bytes of {manifest.flavor}, the version "
                f"says {spec.size_bytes} bytes of {spec.flavor}"
            )
        number = self.store.latest_version(model) + 1
        while True:
            record = ModelVersion(
                **spec.model_dump(), model=model, version=number, created_at=utc_now(), created_by=self.user
            )
            if self.store.insert_version(record):
                break
            number = max(number + 1, self.store.latest_version(model) + 1)
        if self.lineage is not None and (refs or spec.training_snapshot):
            self.lineage.record(model, number, refs, spec.training_snapshot)
        return record

    def log_model(
        self,
        model: str,
        obj: Any,
        *,
        framework: Framework | str | None = None,
        signature: InputSignature | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        training_job_id: str | None = None,
        training_snapshot: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        **flavor_options: Any,
    ) -> ModelVersion:
        """Save ``obj`` with its framework's saver, publish the artifact and register it as a new version."""
        registered = self.model(model)
        flavor = flavor_for(framework or registered.framework)
        with tempfile.TemporaryDirectory(prefix="ma_ray_save_") as tmp:
            metadata = flavor.save(obj, Path(tmp) / "artifact", **flavor_options)
            published = self._artifacts().publish(model, Path(tmp) / "artifact", flavor.framework.value, metadata)
        spec = VersionSpec(
            artifact_uri=published.uri,
            checksum=published.checksum,
            size_bytes=published.size_bytes,
            flavor=flavor.framework,
            signature=signature or InputSignature(),
            params=params or {},
            metrics=metrics or {},
            training_job_id=training_job_id,
            training_snapshot=training_snapshot,
            description=description,
            tags=tags or {},
        )
        return self.register_version(model, spec)

    def _artifacts(self) -> ArtifactStore:
        if self.artifacts is None:
            raise GalleryError("this Gallery has no artifact store; build it with Gallery.from_settings(...)")
        return self.artifacts

    def version(self, model: str, ref: int | str) -> ModelVersion:
        """A version by number, alias or "latest"."""
        number = self.resolve(model, ref)
        found = self.store.get_version(model, number)
        if found is None:
            raise UnknownVersionError(self._no_version(model, number))
        return found

    def versions(self, model: str) -> list[ModelVersion]:
        self.model(model)
        return self.store.list_versions(model)

    def _no_version(self, model: str, number: int) -> str:
        latest = self.store.latest_version(model)
        return (
            f"model '{model}' has no version {number} (versions 1..{latest})"
            if latest
            else (f"model '{model}' has no versions yet")
        )

    def load(self, model: str, ref: int | str, dest: str | Path | None = None) -> Any:
        """Fetch, verify and load a version with its framework's loader. A corrupted artifact raises
        CorruptArtifactError and is never loaded."""
        record = self.version(model, ref)
        flavor = flavor_for(record.flavor)
        target = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="ma_ray_load_"))
        try:
            manifest = ArtifactStore.fetch(record.artifact_uri, record.checksum, target)
            return flavor.load(target, manifest.metadata)
        finally:
            if dest is None and flavor.in_memory:
                shutil.rmtree(target, ignore_errors=True)

    # ---- resolution ------------------------------------------------------------------------------------------
    def resolve(self, model: str, ref: int | str) -> int:
        """A version number from a number, "latest", or an alias."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            number = int(ref)
            if self.store.get_version(model, number) is None:
                self.model(model)
                raise UnknownVersionError(self._no_version(model, number))
            return number
        if ref == "latest":
            number = self.store.latest_version(model)
            if number == 0:
                self.model(model)
                raise UnknownVersionError(self._no_version(model, 0))
            return number
        state = self.store.alias_state(model, ref)
        if state is None or state.version is None:
            check_alias_name(ref)
            self.model(model)
            known = ", ".join(a for a, s in self.store.aliases(model).items() if s.version is not None) or "none"
            raise UnknownAliasError(f"model '{model}' has no alias '{ref}' (aliases: {known})")
        return state.version

    def cached_resolver(self, replica_id: str | None = None, ttl_s: float = 1.0) -> AliasCache:
        """An alias cache for one serving replica, invalidated by this Gallery's bus."""
        cache = AliasCache(self.resolve, ttl_s=ttl_s)
        if self.bus is not None:
            self.bus.subscribe(replica_id or f"replica-{uuid.uuid4().hex[:8]}", cache.on_change)
        return cache

    # ---- aliases -------------------------------------------------------------------------------------------
    def set_alias(
        self,
        model: str,
        alias: str,
        version: int | None,
        expected: int | _Any | None = ANY,
        reason: str = "",
        wait_s: float | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (None removes it) if it still points at ``expected`` (None: unset;
        ANY: whatever it points at). Loses with AliasConflictError. ``wait_s``: also wait for every subscribed
        replica to acknowledge (PropagationTimeoutError lists the laggards; the change itself stands)."""
        check_alias_name(alias)
        self.model(model)
        if version is not None and self.store.get_version(model, version) is None:
            raise UnknownVersionError(self._no_version(model, version))
        event = self._swap(model, alias, version, expected, reason)
        self._broadcast(event, wait_s)
        return event

    def _swap(
        self, model: str, alias: str, version: int | None, expected: int | _Any | None, reason: str
    ) -> AliasEvent:
        for attempt in range(_CAS_ATTEMPTS):
            state = self.store.alias_state(model, alias)
            current = state.version if state else None
            if expected is not ANY and current != expected:
                raise AliasConflictError(model, alias, expected, current)  # type: ignore[arg-type]
            event = AliasEvent(
                event_id=uuid.uuid4().hex,
                model=model,
                alias=alias,
                seq=(state.seq if state else 0) + 1,
                from_version=current,
                to_version=version,
                at=utc_now(),
                by=self.user,
                reason=reason,
            )
            if self.store.cas_alias(event, state):
                return event
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # lost a race: re-read and try again
        raise AliasConflictError(model, alias, None if expected is ANY else expected, current)  # type: ignore[arg-type]

    def _broadcast(self, event: AliasEvent, wait_s: float | None) -> None:
        if self.bus is None:
            return
        change = AliasChange(event.model, event.alias, event.to_version, event.seq, event.event_id)
        self.bus.publish(change)
        if wait_s is not None:
            result = self.wait_for_propagation(event.event_id, wait_s)
            if not result.complete:
                raise PropagationTimeoutError(
                    f"alias '{event.alias}' of '{event.model}' now points at version {event.to_version}, but "
                    f"{len(result.laggards)} replica(s) did not acknowledge within {wait_s}s: "
                    f"{', '.join(result.laggards)}",
                    result.laggards,
                )

    def wait_for_propagation(self, event_id: str, timeout_s: float = 5.0) -> Propagation:
        if self.bus is None:
            return Propagation(event_id, [], [])
        return self.bus.wait_for_propagation(event_id, timeout_s)

    def aliases(self, model: str) -> dict[str, int]:
        self.model(model)
        return {a: s.version for a, s in self.store.aliases(model).items() if s.version is not None}

    def alias_state(self, model: str, alias: str) -> AliasState | None:
        return self.store.alias_state(model, check_alias_name(alias))

    def alias_history(self, model: str, alias: str) -> list[AliasEvent]:
        check_alias_name(alias)
        self.model(model)
        return self.store.alias_history(model, alias)

    def alias_at(self, model: str, alias: str, when: datetime) -> int | None:
        """What the alias pointed at, at time ``when`` (None: unset then)."""
        if when.tzinfo is None:
            raise ValueError("alias_at needs a timezone-aware datetime (UTC)")
        version = None
        for event in self.alias_history(model, alias):
            if event.at > when:
                break
            version = event.to_version
        return version

    def rollback(self, model: str, alias: str, wait_s: float | None = None) -> AliasEvent:
        """Undo the alias's last change in one compare-and-set (fails if someone moved it meanwhile)."""
        history = self.alias_history(model, alias)
        if not history:
            raise NothingToRollBackError(f"alias '{alias}' of model '{model}' was never set: nothing to roll back")
        last = history[-1]
        if last.from_version is None:
            raise NothingToRollBackError(
                f"alias '{alias}' of model '{model}' was unset before its last change (#{last.seq}): nothing to "
                "roll back to"
            )
        return self.set_alias(
            model, alias, last.from_version, expected=last.to_version, reason=f"rollback of #{last.seq}", wait_s=wait_s
        )
