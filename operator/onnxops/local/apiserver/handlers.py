"""HTTP routes: discovery and the resource verbs on /api/v1/... and /apis/<group>/<version>/..."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import discovery, managed, openapi, rbac
from .errors import ApiError, bad_request, success_status
from .objects import Cluster
from .patch import json_patch, merge_patch
from .registry import ResourceInfo
from .tables import table, wants_table
from .watch import WatchStream

Obj = dict[str, Any]
log = logging.getLogger(__name__)
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def respond(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=_dumps(body).encode(), status=status, headers={"Content-Type": content_type})


def error_response(exc: ApiError) -> web.Response:
    return respond(exc.status(), exc.code)


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    namespace: str | None
    name: str | None
    sub: str | None


def parse_target(cluster: Cluster, group: str, version: str, segs: list[str]) -> Target:
    namespace = None
    if len(segs) >= 3 and segs[0] == "namespaces" and segs[2] not in ("status", "finalize"):
        namespace, segs = segs[1], segs[2:]
    if not segs or len(segs) > 3:
        raise ApiError(404, "the server could not find the requested resource")
    info = cluster.registry.get(group, version, segs[0])
    if info is None or (namespace is not None and not info.namespaced):
        raise ApiError(404, "the server could not find the requested resource")
    name = segs[1] if len(segs) > 1 else None
    sub = segs[2] if len(segs) > 2 else None
    if sub is not None and sub != "status" and sub not in info.subresources:
        raise ApiError(404, "the server could not find the requested resource")
    if sub == "status" and not info.status_subresource:
        raise ApiError(404, "the server could not find the requested resource")
    return Target(info, namespace, name, sub)


class Handlers:
    def __init__(self, cluster: Cluster, stopping: asyncio.Event, bookmark_interval: float) -> None:
        self.cluster = cluster
        self.stopping = stopping
        self.bookmark_interval = bookmark_interval

    # --- discovery ------------------------------------------------------------------------------
    async def version(self, request: web.Request) -> web.Response:
        return respond(discovery.VERSION)

    async def not_found(self, request: web.Request) -> web.Response:
        return error_response(ApiError(404, "the server could not find the requested resource"))

    async def openapi_v3(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"].strip("/")
        registry = self.cluster.registry
        doc = openapi.group_version(registry, tail) if tail else openapi.root(registry)
        if doc is None:
            raise ApiError(404, "the server could not find the requested resource")
        return respond(doc)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def core(self, request: web.Request) -> web.StreamResponse:
        tail = [s for s in request.match_info["tail"].split("/") if s]
        try:
            if not tail:
                return respond(discovery.api_versions(request.host))
            if len(tail) == 1:
                doc = discovery.resource_list(self.cluster.registry, "", tail[0])
                if doc is None:
                    raise ApiError(404, "the server could not find the requested resource")
                return respond(doc)
            return await self.resource(request, parse_target(self.cluster, "", tail[0], tail[1:]))
        except ApiError as exc:
            return error_response(exc)

    async def groups(self, request: web.Request) -> web.StreamResponse:
        tail = [s for s in request.match_info["tail"].split("/") if s]
        try:
            doc: Obj | None
            if not tail:
                return respond(discovery.api_group_list(self.cluster.registry))
            if len(tail) == 1:
                doc = discovery.api_group(self.cluster.registry, tail[0])
            elif len(tail) == 2:
                doc = discovery.resource_list(self.cluster.registry, tail[0], tail[1])
            else:
                return await self.resource(request, parse_target(self.cluster, tail[0], tail[1], tail[2:]))
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return respond(doc)
        except ApiError as exc:
            return error_response(exc)

    # --- resources ------------------------------------------------------------------------------
    def _out(self, info: ResourceInfo, obj: Obj) -> Obj:
        return obj if obj.get("apiVersion") == info.api_version else {**obj, "apiVersion": info.api_version}

    async def _json_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        ctype = request.headers.get("Content-Type", "")
        if "protobuf" in ctype or "cbor" in ctype:
            raise ApiError(
                415,
                f"the local API server does not decode {ctype} bodies (imperative "
                "`kubectl create <kind>` sends protobuf): send JSON or YAML, e.g. "
                "`kubectl apply -f`; accepted media types include: application/json, "
                "application/yaml",
            )
        try:
            if "yaml" in ctype:
                import yaml

                return yaml.safe_load(raw.decode())
            return json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"error decoding the request body: {exc}") from exc

    async def resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method, q = request.method, request.query
        info, c = t.info, self.cluster
        fv = q.get("fieldValidation")
        dry = dry_run(method, q.getall("dryRun", []))
        manager = managed.manager_from(q.get("fieldManager"), request.headers.get("User-Agent"))
        writer = managed.Writer(
            manager,
            subresource=t.sub if t.sub in ("status", "scale") else None,
            force=q.get("force") in ("true", "True", "1"),
        )
        if t.name is None:
            return await self._collection(request, t, fv, dry, writer)
        if t.sub == "log":
            return self._log(t, request)
        if t.sub == "scale":
            return await self._scale(t, request, writer)
        if method == "GET":
            obj = c.lookup(info, t.namespace, t.name)
            if wants_table(request.headers.get("Accept", "")):
                return self._table(request, info, [obj], obj["metadata"]["resourceVersion"])
            return respond(self._out(info, obj))
        if method == "PUT":
            body = await self._json_body(request)
            return respond(
                self._out(
                    info, c.replace(info, t.namespace, t.name, body, t.sub, fv, dry_run=dry, writer=writer)
                )
            )
        if method == "PATCH":
            raw = await request.read()
            ctype = request.headers.get("Content-Type", "application/merge-patch+json")
            existed = c.store.get(info.group_resource, c._ns_key(info, t.namespace), t.name) is not None
            patched = c.patch(info, t.namespace, t.name, ctype, raw, t.sub, fv, dry_run=dry, writer=writer)
            return respond(self._out(info, patched), 200 if existed else 201)  # an apply may create
        if method == "DELETE":
            return await self._delete(request, t, t.name, dry)
        raise ApiError(405, f"{method} is not supported")

    async def _collection(
        self, request: web.Request, t: Target, fv: str | None, dry: bool, writer: managed.Writer
    ) -> web.StreamResponse:
        """GET (list or watch), POST and DELETE on a collection."""
        method, q, info, c = request.method, request.query, t.info, self.cluster
        if method == "GET":
            if q.get("watch") in ("1", "true", "True"):
                as_table = wants_table(request.headers.get("Accept", ""))
                stream = WatchStream(c, info, t.namespace, q, as_table, self.bookmark_interval)
                return await stream.serve(request, self.stopping)
            return self._list(request, info, t.namespace)
        if method == "POST":
            created = c.create(
                info, t.namespace, await self._json_body(request), fv, dry_run=dry, writer=writer
            )
            return respond(self._out(info, created), 201)
        if method == "DELETE":
            return self._delete_collection(request, info, t.namespace)
        raise ApiError(405, f"{method} is not supported on a collection")

    async def _delete(self, request: web.Request, t: Target, name: str, dry: bool) -> web.StreamResponse:
        """DELETE of the object ``name`` (DeleteOptions in the body or the query)."""
        method, q, info, c = request.method, request.query, t.info, self.cluster
        options = await self._json_body(request) or {}
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        for key in ("propagationPolicy", "gracePeriodSeconds"):
            if key in q and key not in options:
                options[key] = int(q[key]) if key == "gracePeriodSeconds" else q[key]
        obj = c.lookup(info, t.namespace, name)
        if dry or dry_run(method, list(options.get("dryRun") or [])):  # kubectl sends it in the body
            # nothing is removed or marked; the answer is the one a real deletion would start with
            return respond(
                self._out(info, obj)
                if obj["metadata"].get("finalizers") or not info.builtin
                else success_status(name, info.group, info.plural, obj["metadata"]["uid"])
            )
        result = c.delete(info, t.namespace, name, options)
        gone = c.store.get(info.group_resource, result["metadata"].get("namespace", ""), name) is None
        if gone and info.builtin and info.group_resource != ("", "pods"):
            return respond(success_status(name, info.group, info.plural, obj["metadata"]["uid"]))
        return respond(self._out(info, result))

    def _table(self, request: web.Request, info: ResourceInfo, objs: list[Obj], rv: str) -> web.Response:
        include = request.query.get("includeObject", "Metadata")
        doc = table(info, [self._out(info, o) for o in objs], rv, include)
        return respond(doc, content_type="application/json;as=Table;v=v1;g=meta.k8s.io")

    def _list(self, request: web.Request, info: ResourceInfo, namespace: str | None) -> web.Response:
        q = request.query
        items, rv = self.cluster.list(info, namespace, q.get("labelSelector"), q.get("fieldSelector"))
        if wants_table(request.headers.get("Accept", "")):
            return self._table(request, info, items, str(rv))
        return respond(
            {
                "kind": f"{info.kind}List",
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": [self._out(info, o) for o in items],
            }
        )

    def _delete_collection(
        self, request: web.Request, info: ResourceInfo, namespace: str | None
    ) -> web.Response:
        q = request.query
        items, _ = self.cluster.list(info, namespace, q.get("labelSelector"), q.get("fieldSelector"))
        options: Obj = {k: q[k] for k in ("propagationPolicy",) if k in q}
        if "gracePeriodSeconds" in q:
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        done = []
        for obj in items:
            meta = obj["metadata"]
            if self.cluster.store.get(info.group_resource, meta.get("namespace", ""), meta["name"]) is obj:
                done.append(self.cluster.delete(info, meta.get("namespace"), meta["name"], options))
        return respond(
            {
                "kind": f"{info.kind}List",
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(self.cluster.store.resource_version)},
                "items": [self._out(info, o) for o in done],
            }
        )

    async def _scale(self, t: Target, request: web.Request, writer: managed.Writer) -> web.Response:
        """autoscaling/v1 Scale of a Deployment/ReplicaSet: GET, PUT or PATCH of spec.replicas."""
        assert t.name is not None
        obj = self.cluster.lookup(t.info, t.namespace, t.name)
        if request.method in ("PUT", "PATCH"):
            current = scale_of(obj)
            if request.method == "PUT":
                wanted = await self._json_body(request)
            else:
                ctype = request.headers.get("Content-Type", "application/merge-patch+json")
                if "json-patch" in ctype:
                    wanted = json_patch(current, await self._json_body(request))
                else:
                    wanted = merge_patch(current, await self._json_body(request))
            replicas = ((wanted or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise bad_request("spec.replicas: Invalid value: must be a non-negative integer")
            body = json.dumps({"spec": {"replicas": replicas}}).encode()
            obj = self.cluster.patch(
                t.info, t.namespace, t.name, "application/merge-patch+json", body, writer=writer
            )
        elif request.method != "GET":
            raise ApiError(405, f"{request.method} is not supported on scale")
        return respond(scale_of(obj))

    def _log(self, t: Target, request: web.Request) -> web.Response:
        assert t.name is not None
        pod = self.cluster.lookup(t.info, t.namespace, t.name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container") or (containers[0] if containers else None)
        if container is not None and containers and container not in containers:
            raise bad_request(f"container {container} is not valid for pod {t.name}")
        tail = request.query.get("tailLines")
        provider = self.cluster.log_provider
        text = None
        if provider is not None:
            text = provider(t.namespace or "", t.name, container, int(tail) if tail else None)
        if text is None:
            raise bad_request(
                f'container "{container}" in pod "{t.name}" is waiting to start: ContainerCreating'
            )
        return web.Response(text=text, content_type="text/plain")


_OPTIONS_KIND = {
    "POST": "CreateOptions",
    "PUT": "UpdateOptions",
    "PATCH": "PatchOptions",
    "DELETE": "DeleteOptions",
}


def dry_run(method: str, values: list[str]) -> bool:
    """``?dryRun=All`` (the only value the API defines): True. Any other value is refused the way the real
    server refuses it: 422 Invalid on the request's options."""
    if method not in _OPTIONS_KIND:
        return False
    bad = [(n, v) for n, v in enumerate(values) if v != "All"]
    if bad:
        kind = _OPTIONS_KIND.get(method, "GetOptions")
        causes = [
            {
                "reason": "FieldValueNotSupported",
                "field": f"dryRun[{n}]",
                "message": f'Unsupported value: "{v}": supported values: "All"',
            }
            for n, v in bad
        ]
        detail = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        raise ApiError(
            422,
            f'{kind}.meta.k8s.io "" is invalid: {detail}',
            details={"group": "meta.k8s.io", "kind": kind, "causes": causes},
        )
    return bool(values)


def scale_of(obj: Obj) -> Obj:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    labels = ((spec.get("selector") or {}).get("matchLabels")) or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def make_app(handlers: Handlers) -> web.Application:
    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return error_response(exc)
        except web.HTTPException:
            raise
        except ValueError as exc:  # malformed query values (numbers, selectors)
            return error_response(bad_request(f"invalid request: {exc}"))
        except Exception as exc:  # a bug: answer a Status, not an HTML page, and keep the trace in the log
            log.exception("API emulator failed on %s %s", request.method, request.path_qs)
            return error_response(ApiError(500, f"internal error: {type(exc).__name__}: {exc}"))

    @web.middleware
    async def authn_authz(request: web.Request, handler: Any) -> web.StreamResponse:
        """Bearer tokens the runtime minted authenticate a ServiceAccount, whose request RBAC then
        authorises; a request without credentials is the admin kubeconfig's (system:masters)."""
        try:
            user = handlers.cluster.tokens.authenticate(request.headers.get("Authorization"))
        except KeyError:
            return error_response(ApiError(401, "Unauthorized", reason="Unauthorized"))
        if user is None:
            admin: web.StreamResponse = await handler(request)
            return admin
        attrs = rbac.attributes(user, request.method, request.path, request.query)
        if not rbac.authorize(attrs, handlers.cluster.policy()):
            log.info("RBAC denied: %s", rbac.forbidden_message(attrs))
            details: Obj = {"kind": attrs.resource}
            if attrs.api_group:
                details["group"] = attrs.api_group
            if attrs.name:
                details["name"] = attrs.name
            return error_response(
                ApiError(
                    403,
                    rbac.forbidden_message(attrs),
                    reason="Forbidden",
                    details=details if attrs.resource_request else None,
                )
            )
        allowed: web.StreamResponse = await handler(request)
        return allowed

    app = web.Application(middlewares=[errors, authn_authz], client_max_size=64 * 1024 * 1024)
    app.router.add_get("/version", handlers.version)
    app.router.add_get("/version/", handlers.version)
    for path in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(path, handlers.health)
    app.router.add_get("/openapi/v3{tail:(/.*)?}", handlers.openapi_v3)
    app.router.add_route("*", "/api{tail:(/.*)?}", handlers.core)
    app.router.add_route("*", "/apis{tail:(/.*)?}", handlers.groups)
    app.router.add_route("*", "/{tail:.*}", handlers.not_found)
    return app
