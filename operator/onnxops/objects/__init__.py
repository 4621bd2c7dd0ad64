"""Pure helpers on Kubernetes objects (plain dicts): no I/O, no kopf, no aiohttp.

The lowest shared layer: ``kube/`` (API I/O), ``reconcile/`` (decisions) and ``local/`` (the API emulator)
all import from here, and this package imports nothing of onnxops (see the import-linter contracts in
pyproject.toml).

- ``compare``: :func:`~onnxops.objects.compare.contains` (does an observed object carry every desired field)
  and :func:`~onnxops.objects.compare.merge_diff` (the RFC 7386 merge patch from one map to another)
- ``fields``: field sets in the API server's ``managedFields`` format (FieldsV1)
- ``ownership``: ownerReferences and :class:`~onnxops.objects.ownership.NameConflict`
- ``text``: one-line, credential-scrubbed, length-capped messages for status and events
"""
