"""The values table of charts/onnxops/README.md is generated from values.yaml's `# --` comments by
`onnxops gen-chart-docs` and is never stale; the parser reads helm-docs' comment convention."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from _chart import CHART

from onnxops import chartdocs

SAMPLE = """\
# Section header: not part of the table.
image:
  # -- Image repository.
  repository: r/op
  # -- Tag; empty uses
  # the appVersion.
  tag: ""
# -- Replicas | count.
replicaCount: 1
noComment: true
list:
  - a
# -- Extra env.
extraEnv: []
"""


def test_rows_follow_the_comment_convention() -> None:
    rows = chartdocs.rows(SAMPLE)
    assert [(r.key, r.type, r.default, r.description) for r in rows] == [
        ("image.repository", "string", '"r/op"', "Image repository."),
        ("image.tag", "string", '""', "Tag; empty uses the appVersion."),
        ("replicaCount", "int", "1", "Replicas | count."),
        ("extraEnv", "list", "[]", "Extra env."),
    ]
    assert "| `replicaCount` | int | `1` | Replicas \\| count. |" in chartdocs.table(SAMPLE)


def test_committed_table_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert chartdocs.main(["--check"]) == 0
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = chartdocs.rows((CHART / "values.yaml").read_text())
    assert len(rows) > 100
    for r in rows:  # each default is the value Helm reads (an independent YAML load)
        node = values
        for part in r.key.split("."):
            node = node[part]
        assert json.loads(r.default) == node, r.key
        assert f"| `{r.key}` |" in readme
    for key in (
        "metrics.serviceMonitor.enabled",
        "crds.keep",
        "servingPods.resources",
        "childImages.serving.digest",
        "rbac.aggregateToDefaultRoles",
        "networkPolicy.enabled",
    ):
        assert f"| `{key}` |" in readme, key


def test_check_fails_when_values_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values, readme = tmp_path / "values.yaml", tmp_path / "README.md"
    shutil.copy(CHART / "values.yaml", values)
    shutil.copy(CHART / "README.md", readme)
    args = ["--values", str(values), "--readme", str(readme)]
    assert chartdocs.main([*args, "--check"]) == 0
    values.write_text(values.read_text().replace("  port: 8081\n", "  port: 9100\n", 1))
    assert chartdocs.main([*args, "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    assert chartdocs.main(args) == 0
    assert "| `metrics.port` | int | `9100` |" in readme.read_text()
    assert chartdocs.main([*args, "--check"]) == 0
    readme.write_text("# no markers\n")
    assert chartdocs.main([*args, "--check"]) == 2
