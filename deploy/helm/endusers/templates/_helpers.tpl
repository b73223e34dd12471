{{/* The release's name for every object, cut to the 63 characters Kubernetes allows. */}}
{{- define "endusers.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "endusers.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "endusers.labels" -}}
{{ include "endusers.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "endusers.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* More workers than partitions would sit idle: refuse them at install time. */}}
{{- define "endusers.checkReplicas" -}}
{{- if gt (int .Values.replicaCount) (int .Values.partitions) -}}
{{- fail (printf "replicaCount (%d) must be at most partitions (%d): more workers than partitions sit idle" (int .Values.replicaCount) (int .Values.partitions)) -}}
{{- end -}}
{{- end -}}
