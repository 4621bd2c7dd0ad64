"""The trainer: data -> scikit-learn fit -> evaluation gates -> verified ONNX bundle + drift baseline.

Entrypoint: ``python -m onnxops.trainer`` (or ``onnxops train``) with ``--spec-json <TrainingJob spec>``
(or ``--spec-file``), ``--model``, ``--run-id``, ``--output-uri`` (docs/architecture.md, Trainer container).

Steps (modules): ``data`` (load file://, pvc://, s3://, https://, sklearn://; CSV or Parquet; sha256 pin and
digest) -> ``estimators`` (allow-list = api ESTIMATORS; params checked by scikit-learn's own constraints
before anything is loaded) -> ``evaluate`` (seeded split, stratified for classifiers; metrics; gates) ->
``export`` (skl2onnx, no ZipMap) -> ``parity`` (ONNX Runtime vs scikit-learn on the held-out rows) ->
``profile`` (drift baseline on the training rows, onnxops.profile format) -> bundle via onnxops.storage.

Bundle ``<output-uri>/<model>/<run-id>/`` (atomic; never overwritten):

- ``model.onnx``: one input ``input`` FP32 ``[-1, n_features]`` (features in ``signature.featureNames``
  order); outputs ``label`` + ``probabilities`` (classifiers; ``probabilities`` holds decision scores for
  estimators without predict_proba, see ``metadata.scores``) or ``variable`` ``[-1, 1]`` (regressors).
- ``profile.json``: onnxops.profile format, computed on the training split (features as the model sees
  them, i.e. float32 values; predictions are the ONNX model's on the training rows).
- ``metadata.json``: model, runId, createdAt, task, metrics, gates, estimator (className, scaling, params,
  effectiveParams), signature (full, never truncated), scores, categoricalEncoding, split, parity
  (rows, labelMismatches, maxAbsDiff, tolerance), lineage (dataset uri/sha256/rows, estimator,
  codeVersion), files (sha256 + sizeBytes of model.onnx and profile.json), libraries, fitWarnings.
  It is written last (the S3 commit marker).

Termination message (``$ONNXOPS_TERMINATION_LOG``, default /dev/termination-log; compact JSON < 4000 bytes):
``{"ok": true, "artifact": {uri, sha256, sizeBytes}, "profile": {uri, sha256}, "metadata": {uri, sha256},
"metrics": {...}, "signature": {...}, "dataset": {uri, sha256}, "codeVersion"}`` — when too long,
``signature.featureNames`` (then ``classLabels``) are left out and named in ``"truncated": [...]``; the
full lists are in metadata.json. Failure: ``{"ok": false, "reason", "message"}`` (+ ``metrics`` for
GateNotMet).

Exit codes / reasons: 0 ok; 2 InvalidSpec, InvalidData, TrainingFailed, ExportFailed; 3 GateNotMet;
4 ParityFailed; 5 DataError, StorageError when storage is unreachable, times out, answers 5xx or denies
(transient: retried); 6 DataError when the data does not exist or is not the pinned sha256, AlreadyExists
(final); 1 InternalError (a bug; retried). 2, 3, 4 and 6 fail the Job at once (its podFailurePolicy).

Decisions:
- Categorical features must be integer codes (listed in ``dataset.categoricalFeatures``); they are
  one-hot encoded inside the ONNX graph (OneHotEncoder(handle_unknown='ignore')), so the model keeps one
  FP32 input; unknown codes encode to zeros. skl2onnx's encoder takes only int64 or string categories,
  and strings would need a second (string) input tensor. Any other non-numeric column is refused with
  "feature 'x' is not numeric ...; list it in dataset.categoricalFeatures (as integer codes) or drop it".
  Profile categories are the codes as decimal strings ("3").
- Scaling before a tree-based estimator is refused: it cannot change the trees' predictions but the
  float32 scaler in ONNX lands values on the other side of a split now and then.
- Parity tolerances: labels exact; predict_proba 1e-4 absolute; decision scores and regression values
  1e-5 + 1e-4 * |sklearn|. scikit-learn sees the same float32 values the ONNX model sees.
- The digest of ``sklearn://<name>`` is the sha256 of ``frame.to_csv(index=False, lineterminator="\\n")``.
"""
