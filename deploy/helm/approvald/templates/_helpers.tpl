{{/* Names and labels shared by every template. */}}

{{- define "approvald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; every object is named from it. */}}
{{- define "approvald.fullname" -}}
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

{{- define "approvald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "approvald.labels" -}}
helm.sh/chart: {{ include "approvald.chart" . }}
{{ include "approvald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: approvald
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "approvald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "approvald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* The evaluation Redis (redis.bundled). */}}
{{- define "approvald.redis.fullname" -}}
{{- printf "%s-redis" (include "approvald.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "approvald.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "approvald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "approvald.redis.labels" -}}
helm.sh/chart: {{ include "approvald.chart" . }}
{{ include "approvald.redis.selectorLabels" . }}
app.kubernetes.io/part-of: approvald
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "approvald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "approvald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "approvald.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the auth configuration: the chart's own when auth.config is set. */}}
{{- define "approvald.authSecretName" -}}
{{- if .Values.auth.config }}
{{- printf "%s-auth" (include "approvald.fullname" .) }}
{{- else }}
{{- .Values.auth.existingSecret }}
{{- end }}
{{- end }}

{{/* Where the Redis URL Secret is mounted (APPROVALD_REDIS_URL_FILE). */}}
{{- define "approvald.redisMountPath" -}}/etc/approvald/redis{{- end }}

{{/* The port the kubelet probes: the plaintext health port when TLS is on. */}}
{{- define "approvald.probePort" -}}
{{- if .Values.tls.enabled }}{{ .Values.ports.health }}{{ else }}{{ .Values.ports.grpc }}{{ end }}
{{- end }}

{{/* appProtocol of the gRPC Service port (see service.grpcAppProtocol). */}}
{{- define "approvald.grpcAppProtocol" -}}
{{- if .Values.service.grpcAppProtocol }}{{ .Values.service.grpcAppProtocol }}
{{- else if .Values.tls.enabled }}https
{{- else }}grpc
{{- end }}
{{- end }}

{{/*
Whether the preStop pause uses the Kubernetes `sleep` lifecycle handler
(KEP-3960: beta and on by default since 1.30, GA in 1.34). The distroless
image has no `sleep` binary, so an exec handler is not an option.
*/}}
{{- define "approvald.preStopSleep" -}}
{{- $mode := .Values.preStop.mode }}
{{- if eq $mode "sleep" }}true
{{- else if and (eq $mode "auto") (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) }}true
{{- end }}
{{- end }}

{{/* Fails the render on combinations that cannot work. */}}
{{- define "approvald.validate" -}}
{{- $v := .Values }}
{{- if and (not $v.auth.enabled) (not $v.insecureAllowUnauthenticated) }}
{{- fail "approvald listens on the pod network, which needs either auth.enabled=true (with auth.existingSecret or auth.config holding auth.toml) or, for evaluation only, insecureAllowUnauthenticated=true; see SECURITY.md and deploy/README.md" }}
{{- end }}
{{- if and $v.auth.enabled (not $v.auth.config) (not $v.auth.existingSecret) }}
{{- fail "auth.enabled=true needs auth.existingSecret (a Secret whose key auth.secretKey holds auth.toml) or inline auth.config; see SECURITY.md" }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.existingSecret) }}
{{- fail "tls.enabled=true needs tls.existingSecret: a kubernetes.io/tls Secret with tls.crt and tls.key (kubectl create secret tls NAME --cert=... --key=...)" }}
{{- end }}
{{- if and $v.tls.clientCASecret (not $v.tls.enabled) }}
{{- fail "tls.clientCASecret (mutual TLS) needs tls.enabled=true and tls.existingSecret" }}
{{- end }}
{{- if and $v.tls.enabled (has (int $v.ports.health) (list (int $v.ports.grpc) (int $v.ports.metrics))) }}
{{- fail (printf "ports.health (%d) must differ from ports.grpc and ports.metrics" (int $v.ports.health)) }}
{{- end }}
{{- if and (not $v.redis.bundled.enabled) (not $v.redis.existingSecret) }}
{{- fail "set redis.existingSecret (a Secret whose key redis.existingSecretKey holds the Redis URL), or redis.bundled.enabled=true for an evaluation Redis" }}
{{- end }}
{{- $pause := 0 }}
{{- if include "approvald.preStopSleep" . }}{{ $pause = int $v.preStop.sleepSeconds }}{{ end }}
{{- $needed := add $pause (int $v.config.shutdownGraceSeconds) 5 }}
{{- if lt (int $v.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStop.sleepSeconds + config.shutdownGraceSeconds + 5s of margin (%d), or Kubernetes kills approvald before its waiters are told to re-attach elsewhere" (int $v.terminationGracePeriodSeconds) (int $needed)) }}
{{- end }}
{{- end }}
