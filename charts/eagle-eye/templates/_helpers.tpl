{{/* Chart name. */}}
{{- define "eagle-eye.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: <release>-eagle-eye, or fullnameOverride. */}}
{{- define "eagle-eye.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "eagle-eye.gateway.fullname" -}}
{{- printf "%s-gateway" (include "eagle-eye.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "eagle-eye.probe.fullname" -}}
{{- printf "%s-probe" (include "eagle-eye.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels. */}}
{{- define "eagle-eye.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "eagle-eye.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "eagle-eye.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eagle-eye.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eagle-eye.gateway.selectorLabels" -}}
{{ include "eagle-eye.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "eagle-eye.probe.selectorLabels" -}}
{{ include "eagle-eye.selectorLabels" . }}
app.kubernetes.io/component: probe
{{- end -}}

{{/* The gateway's in-cluster base URL. */}}
{{- define "eagle-eye.gateway.url" -}}
{{- printf "http://%s.%s.svc:%v" (include "eagle-eye.gateway.fullname" .) .Release.Namespace .Values.gateway.service.ports.http -}}
{{- end -}}

{{- define "eagle-eye.gateway.image" -}}
{{- printf "%s:%s" .Values.gateway.image.repository (default .Chart.AppVersion .Values.gateway.image.tag) -}}
{{- end -}}

{{- define "eagle-eye.probe.image" -}}
{{- printf "%s:%s" .Values.probe.image.repository (default .Chart.AppVersion .Values.probe.image.tag) -}}
{{- end -}}

{{/* The gateway configuration file: gateway.config plus forwarding when configured. */}}
{{- define "eagle-eye.gateway.config" -}}
{{- $cfg := deepCopy (default dict .Values.gateway.config) -}}
{{- if not .Values.zmq.enabled -}}
{{- $_ := set $cfg "hot_series" (mergeOverwrite (default dict (get $cfg "hot_series")) (dict "zmq" (dict "enabled" false))) -}}
{{- end -}}
{{- if .Values.alerting.alertmanagers -}}
{{- $alerting := dict "alertmanagers" .Values.alerting.alertmanagers -}}
{{- with .Values.alerting.alertRelabelConfigs -}}
{{- $_ := set $alerting "alert_relabel_configs" . -}}
{{- end -}}
{{- $_ := set $cfg "alerting" $alerting -}}
{{- end -}}
{{- if .Values.forwarding.remoteWrite -}}
{{- $_ := set $cfg "remote_write" .Values.forwarding.remoteWrite -}}
{{- with .Values.forwarding.queue -}}
{{- $_ := set $cfg "forward" . -}}
{{- end -}}
{{- end -}}
{{- if $cfg -}}
{{ toYaml $cfg }}
{{- else -}}
# Bundled defaults (cmd/gateway/default.yml); set gateway.config to change them.
{}
{{- end -}}
{{- end -}}
