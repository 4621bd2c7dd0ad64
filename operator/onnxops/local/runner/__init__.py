"""The local runtime's node and built-in controllers: they watch the API server (the local emulator, or in
principle any API server) through `client.ResourceClient` (onnxops/k8s) and play the parts of a cluster.

- `pods.PodRunner` ("kubelet", node `local`): runs every Pod's containers as local processes
  (`images` maps our images to the local Python; any other image cannot be pulled: the container waits
  with `ErrImagePull`, then `ImagePullBackOff`, with `Failed`/`BackOff` Events, as with a real kubelet);
  `podspec` emulates the pod's filesystem (PVC ->
  `<state>/pvc/<claim>`, shared; emptyDir/ConfigMap/Secret -> `<state>/pods/<ns>_<pod>_<uid8>/volumes/`;
  the termination-message file) and network (its own `127.0.x.y`, given as `status.podIP` and
  `ONNXOPS_HOST`); probes (httpGet, tcpSocket) are performed for real; logs go to
  `<state>/logs/<ns>_<pod>_<container>.log` (the run before a restart: `.log.previous`). `containerID` is
  `local://<pid>`. Pods without a node are
  bound to `local` (pods/binding, else `spec.nodeName`), so graceful deletion applies: SIGTERM, SIGKILL
  after the grace period, then the pod is deleted with gracePeriodSeconds=0. No finalizers are added.
- `jobs.JobController` (batch/v1), `deployments.DeploymentController` (apps/v1; owns pods directly, no
  ReplicaSets), `endpoints.EndpointsController` (core/v1 Endpoints for Services with a selector).
- `proxy.ServiceProxy`: a per-Service reverse proxy on 127.0.0.1 (round robin per request) standing in
  for kube-proxy, since ClusterIPs cannot be reached locally.

Each controller is a level-based loop (`base.Controller`): a pure decision function (`decide_*`) over the
informer caches, plus thin I/O. HPAs are left alone (nothing scales Deployments locally).
"""
