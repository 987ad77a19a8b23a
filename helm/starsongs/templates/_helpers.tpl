{{/* Names and labels. */}}
{{- define "starsongs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "starsongs.fullname" -}}
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

{{- define "starsongs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "starsongs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "starsongs.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "starsongs.selectorLabels" . }}
app.kubernetes.io/version: {{ include "starsongs.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: starsongs
{{- end }}

{{- define "starsongs.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given (it wins). */}}
{{- define "starsongs.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "starsongs.imageTag" .) }}
{{- end }}
{{- end }}

{{- define "starsongs.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secrets" (include "starsongs.fullname" .)) }}
{{- end }}

{{- define "starsongs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "starsongs.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/*
The `config` values as STARSONGS__SECTION__KEY variables (nested maps add a level:
server.tls.cert_file -> STARSONGS__SERVER__TLS__CERT_FILE; lists are comma-separated).
Whole numbers are printed as integers (YAML numbers reach templates as float64).
*/}}
{{- define "starsongs.flattenConfig" -}}
{{- $prefix := .prefix }}
{{- range $key, $value := .value }}
{{- $name := printf "%s__%s" $prefix (upper $key) }}
{{- if kindIs "map" $value }}
{{- include "starsongs.flattenConfig" (dict "prefix" $name "value" $value) }}
{{- else if kindIs "slice" $value }}
{{ $name }}: {{ join "," $value | quote }}
{{- else if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) }}
{{ $name }}: {{ int64 $value | toString | quote }}
{{- else if kindIs "invalid" $value }}
{{- else }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "starsongs.configData" -}}
STARSONGS_ENV: {{ .Values.environment | quote }}
{{- include "starsongs.flattenConfig" (dict "prefix" "STARSONGS" "value" .Values.config) }}
{{- end }}

{{- define "starsongs.redisEnabled" -}}
{{- if eq (toString .Values.config.rate_limit.backend) "redis" }}true{{ end }}
{{- end }}

{{/*
Whether the Secret holds jwt-secret: with HS256, an existing Secret always does (the
service needs it in production); a chart-made one when secret.jwtSecret is set (without
it, development makes a random key at each start).
*/}}
{{- define "starsongs.hasJwtSecret" -}}
{{- if eq (toString .Values.config.auth.jwt_algorithm | default "HS256") "HS256" }}
{{- if or .Values.secret.existingSecret .Values.secret.jwtSecret }}true{{ end }}
{{- end }}
{{- end }}

{{/* Secrets are read from files (the *_FILE variables), never from the environment. */}}
{{- define "starsongs.secretEnv" -}}
- name: STARSONGS__DATABASE__URL_FILE
  value: /run/secrets/starsongs/database-url
{{- if include "starsongs.hasJwtSecret" . }}
- name: STARSONGS__AUTH__JWT_SECRET_FILE
  value: /run/secrets/starsongs/jwt-secret
{{- end }}
{{- if .Values.secret.previousJwtSecret }}
- name: STARSONGS__AUTH__JWT_PREVIOUS_SECRET_FILE
  value: /run/secrets/starsongs/jwt-previous-secret
{{- end }}
{{- if include "starsongs.redisEnabled" . }}
- name: STARSONGS__RATE_LIMIT__REDIS_URL_FILE
  value: /run/secrets/starsongs/redis-url
{{- end }}
{{- if .Values.sentry.enabled }}
- name: STARSONGS__SENTRY__DSN_FILE
  value: /run/secrets/starsongs/sentry-dsn
{{- end }}
{{- end }}

{{/* Seconds from SIGTERM until the service is done: the drain delay plus the grace period. */}}
{{- define "starsongs.shutdownSecs" -}}
{{- add (int64 .Values.config.server.shutdown_delay_secs) (int64 .Values.config.server.shutdown_grace_secs) }}
{{- end }}

{{/* terminationGracePeriodSeconds: as set, or the shutdown time plus a 10 s margin. */}}
{{- define "starsongs.terminationGracePeriod" -}}
{{- if .Values.terminationGracePeriodSeconds }}
{{- int64 .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- add (include "starsongs.shutdownSecs" .) 10 }}
{{- end }}
{{- end }}

{{- define "starsongs.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "starsongs.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Refuses, at render time, values the service would refuse at start-up (or that would
quietly misbehave), so a bad release fails in `helm upgrade`, not in CrashLoopBackOff.
*/}}
{{- define "starsongs.validate" -}}
{{- $v := .Values }}
{{- $replicas := int64 $v.replicaCount }}
{{- if $v.autoscaling.enabled }}{{ $replicas = int64 $v.autoscaling.maxReplicas }}{{ end }}
{{- if and (gt $replicas 1) (not (include "starsongs.redisEnabled" .)) $v.config.rate_limit.enabled }}
{{- fail "config.rate_limit.backend must be \"redis\" when more than one replica can run (replicaCount or autoscaling.maxReplicas > 1): in-memory limits would be per pod" }}
{{- end }}
{{- if and (not $v.secret.existingSecret) (not $v.secret.create) }}
{{- fail "set secret.existingSecret (recommended) or secret.create=true" }}
{{- end }}
{{- if $v.secret.create }}
{{- if not $v.secret.databaseUrl }}{{ fail "secret.databaseUrl is required with secret.create" }}{{ end }}
{{- if and $v.secret.create $v.secret.previousJwtSecret (lt (len (toString $v.secret.jwtPreviousSecret)) 32) }}
{{- fail "secret.jwtPreviousSecret must be at least 32 bytes while secret.previousJwtSecret is true (auth.jwt_previous_secret)" }}
{{- end }}
{{- if and $v.secret.jwtSecret (lt (len (toString $v.secret.jwtSecret)) 32) }}
{{- fail "secret.jwtSecret must be at least 32 bytes (auth.jwt_secret)" }}
{{- end }}
{{- if and (eq $v.environment "production") (eq (toString $v.config.auth.jwt_algorithm | default "HS256") "HS256") (not $v.secret.jwtSecret) }}
{{- fail "secret.jwtSecret is required in production (auth.jwt_secret)" }}
{{- end }}
{{- if and (include "starsongs.redisEnabled" .) (not $v.secret.redisUrl) }}{{ fail "secret.redisUrl is required when config.rate_limit.backend is redis" }}{{ end }}
{{- if and $v.sentry.enabled (not $v.secret.sentryDsn) }}{{ fail "secret.sentryDsn is required when sentry.enabled" }}{{ end }}
{{- end }}
{{- if and (or $v.secret.previousJwtSecret $v.config.auth.jwt_previous_public_key_file) (not $v.config.auth.jwt_rotated_at) }}
{{- fail "config.auth.jwt_rotated_at (RFC 3339: when the current key replaced the previous one) is required with a previous key (secret.previousJwtSecret or config.auth.jwt_previous_public_key_file)" }}
{{- end }}
{{- if eq $v.environment "production" }}
{{- range $v.config.server.trusted_proxies }}
{{- if hasSuffix "/0" (trim (toString .)) }}{{ fail "config.server.trusted_proxies must not contain 0.0.0.0/0 or ::/0 in production: every client could choose its own address" }}{{ end }}
{{- end }}
{{- if has "*" $v.config.cors.allowed_origins }}{{ fail "config.cors.allowed_origins must not contain \"*\" in production" }}{{ end }}
{{- if $v.config.database.seed_demo_data }}{{ fail "config.database.seed_demo_data must be false in production" }}{{ end }}
{{- if $v.config.auth.create_dev_admin }}{{ fail "config.auth.create_dev_admin must be false in production" }}{{ end }}
{{- if $v.config.admin.debug_endpoints }}{{ fail "config.admin.debug_endpoints must be false in production" }}{{ end }}
{{- end }}
{{- if le (int64 (include "starsongs.terminationGracePeriod" .)) (int64 (include "starsongs.shutdownSecs" .)) }}
{{- fail (printf "terminationGracePeriodSeconds (%s) must be greater than config.server.shutdown_delay_secs + shutdown_grace_secs (%s)" (include "starsongs.terminationGracePeriod" .) (include "starsongs.shutdownSecs" .)) }}
{{- end }}
{{- end }}
