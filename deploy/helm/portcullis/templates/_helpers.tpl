{{/* Names, labels and the rendered portcullis.yaml shared by the templates. */}}

{{- define "portcullis.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portcullis.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "portcullis.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "portcullis.secretName" -}}
{{- required "existingSecret is required: a Secret with the store URL and the master key (see values.yaml)" .Values.existingSecret -}}
{{- end -}}

{{/* The store URL from the Secret; the master key only where keys are opened (the replicas). */}}
{{- define "portcullis.storeUrlEnv" -}}
- name: PORTCULLIS_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "portcullis.secretName" . }}
      key: {{ .Values.secretKeys.storeUrl }}
{{- end -}}

{{/*
portcullis.yaml: what the chart owns (listen, store, public_url, data_dir, metrics) with
.Values.config merged over it, and the policy files of .Values.policies listed beside it.
*/}}
{{- define "portcullis.config" -}}
{{- $base := dict
  "listen" (dict "host" "0.0.0.0" "port" 7070 "trusted_proxies" .Values.trustedProxies "proxy_protocol" .Values.proxyProtocol)
  "store" (dict "kind" "postgres" "url_env" "PORTCULLIS_STORE_URL" "pool" .Values.store.pool)
  "public_url" (required "publicUrl is required: the URL clients reach Portcullis at (see values.yaml)" .Values.publicUrl)
  "data_dir" "/var/lib/portcullis"
  "metrics" (dict "listen" (dict "host" "0.0.0.0" "port" .Values.service.metricsPort))
  "audit" (dict "witness" (dict "url" (include "portcullis.witnessUrl" .)))
-}}
{{- $cfg := mustMergeOverwrite $base (deepCopy (default (dict) .Values.config)) -}}
{{- if .Values.policies -}}
{{- $files := list -}}
{{- range $name, $_ := .Values.policies -}}
{{- $files = append $files (printf "./%s" $name) -}}
{{- end -}}
{{- $_ := set $cfg "policies" $files -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "portcullis.witnessUrl" -}}
{{- required "witnessUrl is required: a PostgreSQL store needs an outside witness for its audit checkpoints (see values.yaml)" .Values.witnessUrl -}}
{{- end -}}

{{/*
The config the migrate hook loads (the full ConfigMap does not exist yet before an install): the
store, and the witness a PostgreSQL store's config must name.
*/}}
{{- define "portcullis.migrateConfig" -}}
{{- toYaml (dict
  "store" (dict "kind" "postgres" "url_env" "PORTCULLIS_STORE_URL" "pool" 1)
  "data_dir" "/var/lib/portcullis"
  "audit" (dict "witness" (dict "url" (include "portcullis.witnessUrl" .)))) -}}
{{- end -}}
