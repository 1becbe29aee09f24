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

{{/*
The Secret holding the configuration file of configFile.* (the chart's own
when configFile.inline is set); empty when configFile is unset, and then the
file is auth.*'s (approvald.authSecretName) while auth.enabled.
*/}}
{{- define "approvald.configSecretName" -}}
{{- if .Values.configFile.inline }}
{{- printf "%s-config" (include "approvald.fullname" .) }}
{{- else if .Values.configFile.existingSecret }}
{{- .Values.configFile.existingSecret }}
{{- end }}
{{- end }}

{{/* Whether any volume is mounted into the approvald container. */}}
{{- define "approvald.hasVolumes" -}}
{{- $v := .Values }}
{{- if or $v.auth.enabled $v.tls.enabled (not $v.redis.bundled.enabled) (include "approvald.configSecretName" .) $v.webhooks.secrets }}true{{ end }}
{{- end }}

{{/*
Checks an inline configuration file (configFile.inline) against the values:
valid TOML, authentication sections exactly when auth.enabled (approvald
turns authentication on when the file has one), every webhook secret_file a
file the chart mounts. Approvald checks the rest at start (check-config).
*/}}
{{- define "approvald.validateInlineConfig" -}}
{{- $v := .Values }}
{{- $file := fromToml $v.configFile.inline }}
{{- if hasKey $file "Error" }}
{{- fail (printf "configFile.inline is not valid TOML: %s (check it with: approvald check-config FILE)" $file.Error) }}
{{- end }}
{{- $sections := list }}
{{- if and (hasKey $file "tokens") (gt (len $file.tokens) 0) }}{{ $sections = append $sections "[[tokens]]" }}{{ end }}
{{- if hasKey $file "jwt" }}{{ $sections = append $sections "[jwt]" }}{{ end }}
{{- if hasKey $file "certificates" }}{{ $sections = append $sections "[certificates]" }}{{ end }}
{{- if and $v.auth.enabled (not $sections) }}
{{- fail "configFile.inline has no authentication section ([[tokens]], [jwt] or [certificates]), so approvald would run with authentication OFF while auth.enabled=true says on: add the section, or (evaluation only) set auth.enabled=false and insecureAllowUnauthenticated=true" }}
{{- end }}
{{- if and (not $v.auth.enabled) $sections }}
{{- fail (printf "configFile.inline has %s, so approvald turns authentication ON: set auth.enabled=true (and drop insecureAllowUnauthenticated), or remove the section" (join ", " $sections)) }}
{{- end }}
{{- $mounted := list }}
{{- range $v.webhooks.secrets }}
{{- $mounted = append $mounted (printf "%s/%s/%s" (trimSuffix "/" $v.webhooks.mountPath) .name .key) }}
{{- end }}
{{- range $i, $hook := (get $file "webhooks" | default list) }}
{{- with $hook.secret_file }}
{{- $path := ternary . (clean (printf "%s/%s" $v.configFile.mountPath .)) (isAbs .) }}
{{- if not (has $path $mounted) }}
{{- fail (printf "configFile.inline: webhooks[%d].secret_file %q (%s in the pod) is no file the chart mounts: list its Secret in webhooks.secrets and write the path it gets, %s/<name>/<key>%s" $i . $path (trimSuffix "/" $v.webhooks.mountPath) (ternary "" (printf " (mounted: %s)" (join ", " $mounted)) (empty $mounted))) }}
{{- end }}
{{- end }}
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
{{- fail "approvald listens on the pod network, which needs either auth.enabled=true (with a configuration file holding an authentication section: configFile.*, or auth.existingSecret / auth.config) or, for evaluation only, insecureAllowUnauthenticated=true; see SECURITY.md and deploy/README.md" }}
{{- end }}
{{- $configSecret := include "approvald.configSecretName" . }}
{{- if and $v.auth.enabled (not $configSecret) (not $v.auth.config) (not $v.auth.existingSecret) }}
{{- fail "auth.enabled=true needs the configuration file: configFile.existingSecret or configFile.inline (or the older auth.existingSecret, a Secret whose key auth.secretKey holds auth.toml, or inline auth.config); see SECURITY.md" }}
{{- end }}
{{- if and $v.configFile.inline $v.configFile.existingSecret }}
{{- fail "configFile.inline and configFile.existingSecret both set: approvald reads one configuration file; keep one" }}
{{- end }}
{{- if and $configSecret $v.auth.enabled $v.auth.config }}
{{- fail "configFile and auth.config both set: approvald reads one configuration file (--config), which holds authentication, policies and webhooks together. Move auth.config's sections into the configuration file and drop auth.config" }}
{{- end }}
{{- if $v.configFile.inline }}
{{- include "approvald.validateInlineConfig" . }}
{{- end }}
{{- $others := list (clean $v.webhooks.mountPath) (include "approvald.redisMountPath" .) }}
{{- if $v.tls.enabled }}{{ $others = append $others (clean $v.tls.mountPath) }}{{ end }}
{{- if and $configSecret (has (clean $v.configFile.mountPath) $others) }}
{{- fail (printf "configFile.mountPath %s is another volume's mount path: give it a folder of its own" $v.configFile.mountPath) }}
{{- end }}
{{- $names := dict }}
{{- range $v.webhooks.secrets }}
{{- if hasKey $names .name }}
{{- fail (printf "webhooks.secrets: the name %q is given twice; each secret gets its own folder %s/<name>" .name $v.webhooks.mountPath) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- end }}
{{- $webhooksInFile := and $v.configFile.inline (get (fromToml $v.configFile.inline) "webhooks") }}
{{- if and $v.networkPolicy.enabled $v.networkPolicy.egress.enabled (not $v.networkPolicy.egress.webhookPorts) (or $v.webhooks.secrets $webhooksInFile) }}
{{- fail "webhooks are configured but the egress NetworkPolicy lets no webhook leave the pod: set networkPolicy.egress.webhookPorts (e.g. [443]) and, to narrow it, networkPolicy.egress.webhookTo; or networkPolicy.egress.enabled=false" }}
{{- end }}
{{- if and (not $v.auth.enabled) (has "*" (splitList "," ($v.config.corsOrigins | nospace))) }}
{{- fail "config.corsOrigins \"*\" needs authentication (approvald refuses to start with it while auth is off: any web page a user opens could list and approve): with auth.enabled=false list the origins of your inbox pages, or set it to \"\" (only pages approvald serves itself)" }}
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
