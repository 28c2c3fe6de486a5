{{/*
Names and labels shared by every template.
*/}}
{{- define "incasso.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "incasso.fullname" -}}
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

{{- define "incasso.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries besides its name and instance. */}}
{{- define "incasso.commonLabels" -}}
helm.sh/chart: {{ include "incasso.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "incasso.labels" -}}
{{ include "incasso.commonLabels" . }}
app.kubernetes.io/name: {{ include "incasso.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The serving replicas; the migration Job's pods have component "migrate". */}}
{{- define "incasso.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incasso.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "incasso.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "incasso.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "incasso.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret the chart creates from values (database URL, keys), when any is given. */}}
{{- define "incasso.secretName" -}}
{{- printf "%s-secrets" (include "incasso.fullname" .) }}
{{- end }}

{{/* The Secret holding the database URL, and its key. */}}
{{- define "incasso.databaseSecretName" -}}
{{- if .Values.database.url }}{{ include "incasso.secretName" . }}{{ else }}{{ .Values.database.existingSecret }}{{ end }}
{{- end }}
{{- define "incasso.databaseSecretKey" -}}
{{- if .Values.database.url }}database-url{{ else }}{{ .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{- define "incasso.privacySecretName" -}}
{{- if .Values.privacy.existingSecret }}{{ .Values.privacy.existingSecret }}{{ else }}{{ include "incasso.secretName" . }}{{ end }}
{{- end }}

{{- define "incasso.acaSecretName" -}}
{{- if .Values.aca.existingSecret }}{{ .Values.aca.existingSecret }}{{ else }}{{ include "incasso.secretName" . }}{{ end }}
{{- end }}

{{/* Whether the chart creates its own Secret. */}}
{{- define "incasso.createSecret" -}}
{{- if or .Values.database.url .Values.privacy.encryptionKeyHex .Values.privacy.fiscalCodePepperHex .Values.aca.subscriptionKey }}true{{ end }}
{{- end }}

{{/* Environment shared by the server and the migration Job: the database URL. */}}
{{- define "incasso.databaseEnv" -}}
- name: INCASSO_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "incasso.databaseSecretName" . }}
      key: {{ include "incasso.databaseSecretKey" . }}
{{- end }}

{{/* The container security context: non-root, read-only root, no privilege escalation. */}}
{{- define "incasso.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "incasso.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Egress every incasso pod needs: DNS and PostgreSQL. */}}
{{- define "incasso.egressCommon" -}}
# DNS.
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.egress.dns.namespaceLabels | nindent 10 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
# PostgreSQL.
- ports:
    - protocol: TCP
      port: {{ .Values.networkPolicy.egress.postgres.port }}
  {{- with .Values.networkPolicy.egress.postgres.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
