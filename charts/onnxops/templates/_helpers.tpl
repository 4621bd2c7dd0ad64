{{/* Chart name, overridable. */}}
{{- define "onnxops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the operator's objects: <release>-<chart> unless the release already contains it. */}}
{{- define "onnxops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "onnxops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "onnxops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "onnxops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels on every object. */}}
{{- define "onnxops.labels" -}}
helm.sh/chart: {{ include "onnxops.chart" . }}
app.kubernetes.io/name: {{ include "onnxops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: onnxops
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "onnxops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "onnxops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest] with the tag defaulting to the chart's appVersion. */}}
{{- define "onnxops.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* Namespaces the operator serves: the watch list, or nothing (= cluster-wide). */}}
{{- define "onnxops.clusterWide" -}}
{{- if .Values.watchNamespaces }}false{{ else }}true{{ end }}
{{- end }}

{{/* Namespaces that get the embedded artifact PVC: the release namespace, the watched and the extra ones. */}}
{{- define "onnxops.pvcNamespaces" -}}
{{- $all := list .Release.Namespace }}
{{- range .Values.watchNamespaces }}{{ $all = append $all . }}{{ end }}
{{- range .Values.artifacts.pvc.extraNamespaces }}{{ $all = append $all . }}{{ end }}
{{- $all | uniq | toJson }}
{{- end }}

{{/* The default storage URI handed to the operator. */}}
{{- define "onnxops.defaultStorageURI" -}}
{{- if .Values.artifacts.s3.enabled }}
{{- printf "s3://%s/%s" .Values.artifacts.s3.bucket (.Values.artifacts.s3.prefix | trimAll "/") | trimSuffix "/" }}
{{- else }}
{{- printf "pvc://%s/models" .Values.artifacts.pvc.name }}
{{- end }}
{{- end }}

{{/* Restricted container securityContext (Pod Security Standards "restricted"). */}}
{{- define "onnxops.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
ONNXOPS_NOTIFY_SINKS: the global sinks without their URLs (each URL is ONNXOPS_NOTIFY_URL_<index>, from
its Secret).
*/}}
{{- define "onnxops.notifySinks" -}}
{{- $out := list -}}
{{- range $i, $s := .Values.notifications.sinks -}}
{{- $out = append $out (dict "name" ($s.name | default (printf "global-%d" $i)) "format" ($s.format | default "JSON") "events" ($s.events | default list) "urlEnv" (printf "ONNXOPS_NOTIFY_URL_%d" $i)) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
