"""The local Kubernetes API emulator: an in-memory API server that kubectl, kopf and the official
`kubernetes` client talk to over plain HTTP on 127.0.0.1.

    server = ApiServer(port=0, log_provider=read_log)   # in-process, on the caller's event loop
    url = await server.start(); server.register_crd(crd); ...; await server.stop()

    with ApiServerThread() as srv:                      # for synchronous code: its own loop and thread
        write_kubeconfig(tmp_path / "kubeconfig", srv.url)

Where it knowingly differs from a real API server (keep tests away from these):
- JSON and YAML bodies only: imperative `kubectl create <kind>` (protobuf bodies) is refused with 415;
  `kubectl apply -f`/`create -f` work.
- Authentication: a request without credentials is the admin's (`system:admin` in `system:masters`,
  always allowed); a bearer token minted by `mint_service_account_token` (the runtime projects one into
  every pod of a ServiceAccount) is that ServiceAccount, and its requests are authorised with RBAC from
  the stored Roles/ClusterRoles/bindings (rbac.py), 403 Forbidden otherwise; any other token is 401.
  No client certificates, no TokenReview/SubjectAccessReview APIs, no impersonation.
- Server-side dry run (`?dryRun=All`, or `dryRun` in DeleteOptions) runs defaulting and admission and
  answers the object as it would be stored, storing nothing (no resourceVersion, no watch event), so
  `kubectl apply --dry-run=server` and `kubectl diff` work; another value is 422 Invalid, as on a real
  server. A dry-run create answers without a resourceVersion.
- Field ownership (`metadata.managedFields`, FieldsV1) is recorded per (manager, operation, subresource):
  the manager is `?fieldManager=`, else the User-Agent up to its first '/'. An update owns the fields
  whose value it changed; a server-side apply (`application/apply-patch+yaml`) owns its configuration's
  fields, answers 409 on a field another manager owns with a different value unless `force=true` (which
  takes it over), and removes the fields it applied before and no longer applies when nobody else owns
  them. The merge itself is strategic (built-ins) or JSON merge (custom resources), lists are keyed by
  the fixed merge-key table below, and there is no upgrade of client-side-apply ownership (a first
  `kubectl apply --server-side` over a client-side apply conflicts: use `--force-conflicts`).
  Incoming managedFields are ignored (they cannot be reset by a client).
- Strategic merge uses a fixed table of list merge keys (containers/env/volumes by name, volumeMounts by
  mountPath, ports by containerPort/port, conditions by type, ...), not the Go struct tags.
- Built-in kinds are not validated (beyond names) and get only the defaults clients rely on (Pod phase,
  Job selector/labels/backoffLimit, Deployment replicas/strategy, Service clusterIP); pod specs are not
  immutable. Custom resources get full admission through `onnxops.validate`; `fieldValidation=Strict`
  (kubectl's default) refuses unknown fields with 400, other modes prune them silently (no warnings).
- OpenAPI: `/openapi/v3` declares the PATCH/PUT parameters (so kubectl leaves validation to the server)
  and publishes the custom resources' schemas (with a small ObjectMeta), so `kubectl explain <custom
  kind>.<field>` (and `--recursive`) works; built-in kinds have no schema. `/openapi/v2` is 404.
- Lists are never paginated (`limit`/`continue` ignored); core/v1 and events.k8s.io/v1 Events are stored
  separately; all versions of a CRD share one store without conversion (the apiVersion is rewritten).
- Deletion: finalizers, graceful deletion of pods bound to a node (`spec.nodeName`), Orphan/Background/
  Foreground propagation and garbage collection of dependents work; garbage collection is synchronous
  (right after the owner goes), and dependents whose owners never existed are left alone. As on a real
  cluster, a batch/v1 Job deleted without a propagationPolicy orphans its pods.
- Pod logs come from the `log_provider` hook (namespace, pod, container, tailLines) and are returned whole:
  `follow` (`kubectl logs -f`) prints what is there and ends; `previous`, `sinceSeconds` and `timestamps`
  are ignored.
- Watch bookmarks are sent every `bookmark_interval` seconds (default 15) when asked for; the history
  window is the last `history_size` events (older resourceVersions answer an in-stream 410 ERROR).
"""

from .errors import ApiError
from .objects import Cluster, LogProvider
from .server import ApiServer, ApiServerThread, kubeconfig, write_kubeconfig

__all__ = [
    "ApiError",
    "ApiServer",
    "ApiServerThread",
    "Cluster",
    "LogProvider",
    "kubeconfig",
    "write_kubeconfig",
]
