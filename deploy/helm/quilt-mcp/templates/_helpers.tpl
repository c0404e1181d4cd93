{{/* The chart's name. */}}
{{- define "quilt-mcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "quilt-mcp.fullname" -}}
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

{{- define "quilt-mcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quilt-mcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "quilt-mcp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "quilt-mcp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "quilt-mcp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "quilt-mcp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (default appVersion). */}}
{{- define "quilt-mcp.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The accepted Host values: allowedHosts, then every Ingress host, without repeats. */}}
{{- define "quilt-mcp.allowedHosts" -}}
{{- $hosts := list }}
{{- range .Values.allowedHosts }}
{{- $hosts = append $hosts . }}
{{- end }}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}
{{- $hosts = append $hosts .host }}
{{- end }}
{{- end }}
{{- toJson (uniq $hosts) }}
{{- end }}

{{/* The environment variable and file name of each kind of verification key. */}}
{{- define "quilt-mcp.keyVariable" -}}
{{- $variables := dict "secret" "QUILT_MCP_JWT_SECRET" "publicKey" "QUILT_MCP_JWT_PUBLIC_KEY" "jwks" "QUILT_MCP_JWKS" }}
{{- $variable := get $variables .Values.auth.type }}
{{- if not $variable }}
{{- fail (printf "auth.type must be secret, publicKey or jwks, not %q" .Values.auth.type) }}
{{- end }}
{{- $variable }}
{{- end }}
